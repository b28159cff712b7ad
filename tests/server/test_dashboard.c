/*
 * server/dashboard: the live dashboard (GET /) in headless Chromium, driven
 * through chromedriver's W3C WebDriver HTTP protocol with libcurl.
 *
 * An in-process server on the tiny fixtures; chromedriver on a free port; a
 * session with headless Chromium (--headless=new --no-sandbox --disable-gpu)
 * and the browser log at ALL. The page must go "live" (a /stats poll
 * succeeded) and show both models; then real requests go to the server and
 * the page's request count must reach exactly their number, the same figure
 * /stats reports, with latency and throughput figures shown. The browser's
 * console log, read through chromedriver's log endpoint, must hold no
 * warning or error. To prove that check can fail, the test then injects an
 * uncaught exception and a console.error into the page and requires the log
 * to report both.
 *
 * SKIP when chromium or chromedriver is missing (Debian: chromium,
 * chromium-driver; IA_CHROMIUM and IA_CHROMEDRIVER name other binaries).
 * GET /stats's JSON (and / and /stats staying open when keys are required)
 * is checked without a browser in stats_json_and_open_routes.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server_util.h"
#include "test_fs.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define GPT2 "tests/fixtures/decoders/gpt2"

/* A binary from the environment variable, else the first of names on PATH. */
static const char *find_binary(const char *env_name, const char *const *names, size_t n,
                               char *found, size_t cap) {
    const char *env = getenv(env_name);
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    for (size_t k = 0; k < n; k++) {
        const char *p = path ? path : "/usr/bin:/bin";
        while (*p) {
            size_t len = strcspn(p, ":");
            snprintf(found, cap, "%.*s/%s", (int)len, p, names[k]);
            if (len && access(found, X_OK) == 0)
                return found;
            p += len + (p[len] == ':');
        }
    }
    return NULL;
}

static uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* ---- WebDriver over HTTP --------------------------------------------------------------- */

typedef struct webdriver {
    uint16_t port;
    pid_t pid;
    char session[128];
} webdriver;

/* One WebDriver command; the reply's "value" (new reference), or NULL after a
 * failed check naming the command. */
static json_t *wd_call(webdriver *wd, const char *method, const char *path, json_t *body) {
    char url[400];
    snprintf(url, sizeof url, "%s%s%.200s", wd->session[0] ? "/session/" : "", wd->session, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    http_resp r = http_do(wd->port, method, url,
                          text ? text : (strcmp(method, "POST") ? NULL : "{}"), NULL, NULL);
    free(text);
    json_t *j = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    json_t *v = json_object_get(j, "value");
    CHECK_MSG(r.status == 200 && v, "WebDriver %s %s: HTTP %ld: %.400s", method, url, r.status,
              r.body ? r.body : "(no body)");
    json_t *out = r.status == 200 && v ? json_incref(v) : NULL;
    json_decref(j);
    http_free(&r);
    return out;
}

static bool wd_start(webdriver *wd, const char *driver, const char *chromium, const char *profile,
                     const char *log_path) {
    memset(wd, 0, sizeof *wd);
    wd->port = free_port();
    char port_arg[32];
    snprintf(port_arg, sizeof port_arg, "--port=%u", (unsigned)wd->port);
    wd->pid = fork();
    if (wd->pid == 0) {
        setpgid(0, 0);
        FILE *f = freopen(log_path, "w", stderr);
        (void)f;
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(driver, driver, port_arg, (char *)NULL);
        _exit(127);
    }
    if (wd->pid < 0)
        return false;
    setpgid(wd->pid, wd->pid);
    /* ready when /status says so */
    bool ready = false;
    for (int i = 0; i < 200 && !ready; i++) {
        http_resp s = http_get(wd->port, "/status");
        json_t *j = s.status == 200 ? json_loadb(s.body, s.len, 0, NULL) : NULL;
        ready = json_is_true(json_object_get(json_object_get(j, "value"), "ready"));
        json_decref(j);
        http_free(&s);
        if (!ready)
            usleep(50000);
    }
    CHECK_MSG(ready, "chromedriver did not come up on port %u (log: %s)", (unsigned)wd->port,
              log_path);
    if (!ready)
        return false;
    char profile_arg[4200];
    snprintf(profile_arg, sizeof profile_arg, "--user-data-dir=%s", profile);
    json_t *caps =
        json_pack("{s:{s:{s:s, s:{s:s, s:[s,s,s,s,s,s]}, s:{s:s}}}}", "capabilities", "alwaysMatch",
                  "browserName", "chrome", "goog:chromeOptions", "binary", chromium, "args",
                  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", profile_arg, "goog:loggingPrefs", "browser", "ALL");
    json_t *v = wd_call(wd, "POST", "/session", caps);
    const char *id = json_string_value(json_object_get(v, "sessionId"));
    if (id)
        snprintf(wd->session, sizeof wd->session, "%s", id);
    json_decref(v);
    return wd->session[0] != 0;
}

static void wd_stop(webdriver *wd) {
    if (wd->session[0])
        json_decref(wd_call(wd, "DELETE", "", NULL));
    if (wd->pid > 0) {
        kill(-wd->pid, SIGTERM);
        int status;
        for (int i = 0; i < 100 && waitpid(wd->pid, &status, WNOHANG) == 0; i++)
            usleep(20000);
        kill(-wd->pid, SIGKILL);
        waitpid(wd->pid, &status, 0);
    }
}

/* The rendered text of the element matching a CSS selector ("" when none:
 * the caller's checks then fail). */
static void wd_text(webdriver *wd, const char *css, char *out, size_t cap) {
    out[0] = 0;
    json_t *el = wd_call(wd, "POST", "/element",
                         json_pack("{s:s, s:s}", "using", "css selector", "value", css));
    /* the W3C element reference key */
    const char *eid = json_string_value(json_object_get(el, "element-6066-11e4-a52e-4f735466cecf"));
    if (eid) {
        char path[256];
        snprintf(path, sizeof path, "/element/%s/text", eid);
        json_t *t = wd_call(wd, "GET", path, NULL);
        snprintf(out, cap, "%s", json_string_value(t) ? json_string_value(t) : "");
        json_decref(t);
    }
    json_decref(el);
}

/* Waits up to 20 s for the element's text to equal want; returns the last text seen. */
static bool wd_wait_text(webdriver *wd, const char *css, const char *want, char *last, size_t cap) {
    for (int i = 0; i < 200; i++) {
        wd_text(wd, css, last, cap);
        if (strcmp(last, want) == 0)
            return true;
        usleep(100000);
    }
    return false;
}

/* The browser's console entries since the last call: how many at WARNING or
 * SEVERE, their messages in buf. */
static int wd_console_problems(webdriver *wd, char *buf, size_t cap) {
    buf[0] = 0;
    json_t *logs = wd_call(wd, "POST", "/se/log", json_pack("{s:s}", "type", "browser"));
    int bad = 0;
    size_t i, len = 0;
    json_t *e;
    json_array_foreach(logs, i, e) {
        const char *level = json_string_value(json_object_get(e, "level"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (level && (strcmp(level, "SEVERE") == 0 || strcmp(level, "WARNING") == 0)) {
            bad++;
            int n = snprintf(buf + len, cap - len, "[%s] %s\n", level, msg ? msg : "");
            if (n > 0 && (size_t)n < cap - len)
                len += (size_t)n;
        }
    }
    json_decref(logs);
    return bad;
}

/* ---- the test ------------------------------------------------------------------------------ */

TEST(dashboard_renders_live_figures_in_chromium) {
    static const char *const chromes[] = {"chromium", "chromium-browser", "google-chrome"};
    static const char *const drivers[] = {"chromedriver"};
    char chrome_buf[1024], driver_buf[1024];
    const char *chromium = find_binary("IA_CHROMIUM", chromes, 3, chrome_buf, sizeof chrome_buf);
    const char *driver = find_binary("IA_CHROMEDRIVER", drivers, 1, driver_buf, sizeof driver_buf);
    if (!chromium || !driver)
        SKIP("%s is not installed (apt-get install chromium chromium-driver; or set %s)",
             chromium ? "chromedriver" : "chromium", chromium ? "IA_CHROMEDRIVER" : "IA_CHROMIUM");

    const char *models[] = {test_source_path(BERT), test_source_path(GPT2)};
    ia_server *srv = start_server(models, 2, NULL);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    char profile[4096], log_path[4096];
    snprintf(profile, sizeof profile, "%s", scratch_path("chrome-profile"));
    snprintf(log_path, sizeof log_path, "%s", scratch_path("chromedriver.log"));
    webdriver wd;
    if (!wd_start(&wd, driver, chromium, profile, log_path)) {
        wd_stop(&wd);
        ia_server_stop(srv);
        return;
    }
    char url[128], text[4096], problems[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)port);
    json_decref(wd_call(&wd, "POST", "/url", json_pack("{s:s}", "url", url)));
    json_t *title = wd_call(&wd, "GET", "/title", NULL);
    CHECK(json_string_value(title) &&
          strcmp(json_string_value(title), "ipfs-accelerate serve") == 0);
    json_decref(title);

    /* live: a /stats poll landed and filled the figures */
    CHECK_MSG(wd_wait_text(&wd, "#state", "live", text, sizeof text), "#state is '%s'", text);
    wd_text(&wd, "#requests", text, sizeof text);
    CHECK_MSG(strcmp(text, "0") == 0, "#requests before any request: '%s'", text);
    wd_text(&wd, "#models", text, sizeof text);
    CHECK_MSG(strstr(text, "tiny-bert embeddings ready") && strstr(text, "gpt2 generation ready"),
              "#models: '%s'", text);

    /* real traffic: 5 embeddings and 1 completion */
    for (int i = 0; i < 5; i++) {
        http_resp e =
            http_post(port, "/v1/embeddings",
                      "{\"model\":\"tiny-bert\",\"input\":\"the dashboard counts this request\"}");
        CHECK_EQ_INT(e.status, 200);
        http_free(&e);
    }
    http_resp c = http_post(port, "/v1/completions",
                            "{\"model\":\"gpt2\",\"prompt\":\"hello\",\"max_tokens\":4}");
    CHECK_EQ_INT(c.status, 200);
    http_free(&c);

    /* the page catches up: exactly the 6 requests (its own polls do not count) */
    CHECK_MSG(wd_wait_text(&wd, "#requests", "6", text, sizeof text), "#requests is '%s'", text);
    http_resp s = http_get(port, "/stats");
    json_t *st = http_json(&s);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(st, "requests"), "total")), 6);
    json_decref(st);
    http_free(&s);
    wd_text(&wd, "#p50", text, sizeof text);
    CHECK_MSG(atof(text) > 0, "#p50 is '%s'", text);
    wd_text(&wd, "#p99", text, sizeof text);
    CHECK_MSG(atof(text) > 0, "#p99 is '%s'", text);
    wd_text(&wd, "#ttft", text, sizeof text);
    CHECK_MSG(atof(text) > 0, "#ttft is '%s'", text);
    wd_text(&wd, "#tokens", text, sizeof text);
    unsigned long tin = 0, tout = 0;
    CHECK_MSG(sscanf(text, "%lu / %lu", &tin, &tout) == 2 && tin > 0 && tout > 0, "#tokens is '%s'",
              text);
    wd_text(&wd, "#rps", text, sizeof text);
    CHECK_MSG(strcmp(text, "-") != 0 && text[0], "#rps is '%s'", text);
    wd_text(&wd, "#routes", text, sizeof text);
    CHECK_MSG(strstr(text, "/v1/embeddings 5 0"), "#routes: '%s'", text);

    int bad = wd_console_problems(&wd, problems, sizeof problems);
    CHECK_MSG(bad == 0, "the browser console has %d warnings or errors:\n%s", bad, problems);

    /* the check can fail: an uncaught exception and a console.error in the page */
    json_decref(
        wd_call(&wd, "POST", "/execute/sync",
                json_pack("{s:s, s:[]}", "script",
                          "setTimeout(() => { throw new Error('injected dashboard failure'); }, 0);"
                          "console.error('injected console error'); return 1;",
                          "args")));
    bool both = false;
    for (int i = 0; i < 50 && !both; i++) {
        usleep(50000);
        char more[8192];
        bad += wd_console_problems(&wd, more, sizeof more);
        size_t len = strlen(problems);
        snprintf(problems + len, sizeof problems - len, "%s", more);
        both = strstr(problems, "injected dashboard failure") &&
               strstr(problems, "injected console error");
    }
    CHECK_MSG(both && bad >= 2, "injected errors not reported (%d): %s", bad, problems);

    wd_stop(&wd);
    ia_server_stop(srv);
}

/* /stats without a browser: its fields follow the traffic, / serves the page
 * (HTML, no external assets), and both stay open when keys are required. */
TEST(stats_json_and_open_routes) {
    const char *models[] = {test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    const char *keys[] = {"sekrit"};
    o.api_keys = keys;
    o.n_api_keys = 1;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    http_resp page = http_get(port, "/");
    CHECK_EQ_INT(page.status, 200);
    CHECK(strstr(http_header(&page, "Content-Type"), "text/html") != NULL);
    CHECK(page.body && strstr(page.body, "<!DOCTYPE html>") && strstr(page.body, "fetch('/stats'"));
    /* self-contained: nothing loaded from elsewhere */
    CHECK(page.body && !strstr(page.body, "src=\"http") && !strstr(page.body, "href=\"http") &&
          !strstr(page.body, "<script src"));
    http_free(&page);

    http_resp s = http_get(port, "/stats");
    CHECK_EQ_INT(s.status, 200);
    json_t *j = http_json(&s);
    json_t *req = json_object_get(j, "requests");
    CHECK_EQ_INT(json_integer_value(json_object_get(req, "total")), 0);
    json_t *m0 = json_array_get(json_object_get(j, "models"), 0);
    CHECK(json_string_value(json_object_get(m0, "id")) &&
          strcmp(json_string_value(json_object_get(m0, "id")), "tiny-bert") == 0);
    CHECK(json_string_value(json_object_get(m0, "state")) &&
          strcmp(json_string_value(json_object_get(m0, "state")), "ready") == 0);
    CHECK(json_real_value(json_object_get(j, "uptime_s")) > 0);
    json_decref(j);
    http_free(&s);

    /* 3 good requests, 1 unauthorised, 1 bad */
    for (int i = 0; i < 3; i++) {
        http_resp e = http_do(port, NULL, "/v1/embeddings",
                              "{\"model\":\"tiny-bert\",\"input\":[\"one two\",\"three\"]}",
                              "Authorization: Bearer sekrit", NULL);
        CHECK_EQ_INT(e.status, 200);
        http_free(&e);
    }
    http_resp u = http_post(port, "/v1/embeddings", "{\"input\":\"x\"}");
    CHECK_EQ_INT(u.status, 401);
    http_free(&u);
    http_resp b =
        http_do(port, NULL, "/v1/embeddings", "{\"input\":", "Authorization: Bearer sekrit", NULL);
    CHECK_EQ_INT(b.status, 400);
    http_free(&b);
    static const char *const needles[] = {
        "ia_http_requests_total{route=\"/v1/embeddings\",code=\"200\"} 3",
        "ia_http_requests_total{route=\"/v1/embeddings\",code=\"401\"} 1",
        "ia_http_requests_total{route=\"/v1/embeddings\",code=\"400\"} 1", NULL};
    http_resp mt = metrics_when(port, needles);
    http_free(&mt);

    s = http_get(port, "/stats");
    j = http_json(&s);
    req = json_object_get(j, "requests");
    CHECK_EQ_INT(json_integer_value(json_object_get(req, "total")), 5);
    CHECK_EQ_INT(json_integer_value(json_object_get(req, "errors")), 2);
    json_t *lat = json_object_get(j, "latency_ms");
    CHECK_EQ_INT(json_integer_value(json_object_get(lat, "count")), 5);
    double p50 = json_real_value(json_object_get(lat, "p50"));
    double p99 = json_real_value(json_object_get(lat, "p99"));
    CHECK_MSG(p50 > 0 && p99 >= p50, "p50 %g p99 %g", p50, p99);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "tokens"), "in")) > 0);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "batches"), "count")) >= 1);
    size_t i;
    json_t *r;
    bool found = false;
    json_array_foreach(json_object_get(j, "routes"), i, r) {
        const char *name = json_string_value(json_object_get(r, "route"));
        if (name && strcmp(name, "/v1/embeddings") == 0) {
            found = true;
            CHECK_EQ_INT(json_integer_value(json_object_get(r, "requests")), 5);
            CHECK_EQ_INT(json_integer_value(json_object_get(r, "errors")), 2);
        }
    }
    CHECK(found);
    json_decref(j);
    http_free(&s);
    ia_server_stop(srv);
}
