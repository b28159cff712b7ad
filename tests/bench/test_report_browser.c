/*
 * bench/report_browser: the HTML report opened in headless Chromium.
 *
 * A database with several runs (embeddings latency at three batch sizes, a
 * history of five runs whose last one regressed, generation TTFT/TPOT, two
 * server rates, a llama-bench import, a failure) is written as an HTML
 * report, which Chromium loads with --dump-dom and --screenshot in one
 * launch. The test fails on any console message in Chromium's log (the report
 * has no scripts, so any message is a problem: Chromium logs console.error,
 * console.log and uncaught exceptions alike as `INFO:CONSOLE:<line>] "<text>",
 * source: <url> (<line>)`, older builds as `CONSOLE(<line>)`), when the
 * rendered DOM lacks the report's SVG charts, or when the screenshot is blank
 * (decoded with zlib, loaded with dlopen: some pixels must be the charts'
 * bar blue and a real share must be non-white). The check is shown to fail:
 * a copy of the report with a console.error call and an uncaught exception
 * injected must produce both lines.
 *
 * SKIP when chromium is not installed (IA_CHROMIUM names another binary).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/bench.h"
#include "test.h"
#include "test_fs.h"

static const char *find_chromium(void) {
    static char found[1024];
    const char *env = getenv("IA_CHROMIUM");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
    for (size_t n = 0; n < 3; n++) {
        const char *p = path ? path : "/usr/bin:/bin";
        while (*p) {
            size_t len = strcspn(p, ":");
            snprintf(found, sizeof found, "%.*s/%s", (int)len, p, names[n]);
            if (len && access(found, X_OK) == 0)
                return found;
            p += len + (p[len] == ':');
        }
    }
    return NULL;
}

/* Runs chromium on url; stdout and stderr to files. Returns the exit status
 * (-1 on timeout: its process group is killed). */
static int run_chromium(const char *chromium, const char *url, const char *shot,
                        const char *out_path, const char *err_path, const char *profile) {
    char shot_arg[4200], profile_arg[4200];
    snprintf(shot_arg, sizeof shot_arg, "--screenshot=%s", shot ? shot : "");
    snprintf(profile_arg, sizeof profile_arg, "--user-data-dir=%s", profile);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        const char *argv[16];
        int k = 0;
        argv[k++] = chromium;
        argv[k++] = "--headless=new";
        argv[k++] = "--no-sandbox";
        argv[k++] = "--disable-gpu";
        argv[k++] = "--no-first-run";
        argv[k++] = "--enable-logging=stderr";
        argv[k++] = "--v=0";
        argv[k++] = profile_arg;
        argv[k++] = "--window-size=1280,2400";
        argv[k++] = "--dump-dom";
        if (shot)
            argv[k++] = shot_arg;
        argv[k++] = url;
        argv[k] = NULL;
        execv(chromium, (char *const *)argv);
        _exit(127);
    }
    if (pid < 0)
        return -2;
    setpgid(pid, pid);
    double t0 = ia_time_now();
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (ia_time_now() - t0 > 60) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(20000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Console lines in Chromium's log: how many, the text of up to 3 in buf. */
static size_t console_lines(const char *log, char *buf, size_t cap) {
    size_t n = 0, used = 0;
    buf[0] = '\0';
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *l = strndup(line, len);
        if (l && (strstr(l, ":CONSOLE") || strstr(l, "CONSOLE(") || strstr(l, "Uncaught"))) {
            if (n < 3 && used + len + 2 < cap)
                used += (size_t)snprintf(buf + used, cap - used, "%s\n", l);
            n++;
        }
        free(l);
        line = end ? end + 1 : NULL;
    }
    return n;
}

static size_t count_of(const char *s, const char *needle) {
    size_t n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- PNG ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

typedef struct png_stats {
    uint32_t w, h;
    double non_white; /* share of pixels not near white */
    size_t blue;      /* pixels of the charts' bar colour #3b7dd8 */
} png_stats;

/* Decodes an 8-bit RGB or RGBA PNG (what Chromium writes); zlib's
 * uncompress comes from libz.so.1 by dlopen. 0 on success. */
static int png_decode(const uint8_t *d, size_t n, png_stats *out, char *why, size_t cap) {
    typedef int (*uncompress_fn)(uint8_t *, unsigned long *, const uint8_t *, unsigned long);
    memset(out, 0, sizeof *out);
    if (n < 33 || memcmp(d, "\x89PNG\r\n\x1a\n", 8) != 0)
        return snprintf(why, cap, "not a PNG"), -1;
    void *z = dlopen("libz.so.1", RTLD_NOW);
    uncompress_fn unc = z ? (uncompress_fn)dlsym(z, "uncompress") : NULL;
    if (!unc)
        return snprintf(why, cap, "libz.so.1 not loadable"), 1;
    uint8_t depth = 0, ctype = 0;
    uint8_t *idat = NULL;
    size_t idat_n = 0;
    int rc = -1;
    for (size_t p = 8; p + 12 <= n;) {
        uint32_t len = be32(d + p);
        const uint8_t *type = d + p + 4, *data = d + p + 8;
        if (p + 12 + len > n)
            break;
        if (!memcmp(type, "IHDR", 4)) {
            out->w = be32(data);
            out->h = be32(data + 4);
            depth = data[8];
            ctype = data[9];
        } else if (!memcmp(type, "IDAT", 4)) {
            uint8_t *g = realloc(idat, idat_n + len);
            if (!g)
                goto done;
            idat = g;
            memcpy(idat + idat_n, data, len);
            idat_n += len;
        }
        p += 12 + len;
    }
    size_t bpp = ctype == 6 ? 4 : ctype == 2 ? 3 : 0;
    if (depth != 8 || !bpp || !out->w || !out->h || out->w > 20000 || out->h > 20000) {
        snprintf(why, cap, "unexpected PNG format (depth %u, colour type %u)", depth, ctype);
        goto done;
    }
    size_t stride = out->w * bpp;
    unsigned long raw_n = (unsigned long)((stride + 1) * out->h);
    uint8_t *raw = malloc(raw_n), *prev = calloc(stride, 1), *cur = malloc(stride);
    if (!raw || !prev || !cur || unc(raw, &raw_n, idat, idat_n) != 0 ||
        raw_n != (stride + 1) * out->h) {
        snprintf(why, cap, "PNG data does not inflate");
        free(raw);
        free(prev);
        free(cur);
        goto done;
    }
    size_t non_white = 0;
    for (uint32_t y = 0; y < out->h; y++) {
        const uint8_t *row = raw + y * (stride + 1);
        uint8_t f = row[0];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
            int x = row[1 + i];
            int v = f == 0   ? x
                    : f == 1 ? x + a
                    : f == 2 ? x + b
                    : f == 3 ? x + (a + b) / 2
                             : x + paeth(a, b, c);
            cur[i] = (uint8_t)v;
        }
        for (uint32_t px = 0; px < out->w; px++) {
            const uint8_t *q = cur + px * bpp;
            if (q[0] < 240 || q[1] < 240 || q[2] < 240)
                non_white++;
            if (abs(q[0] - 0x3b) <= 6 && abs(q[1] - 0x7d) <= 6 && abs(q[2] - 0xd8) <= 6)
                out->blue++;
        }
        memcpy(prev, cur, stride);
    }
    out->non_white = (double)non_white / ((double)out->w * out->h);
    free(raw);
    free(prev);
    free(cur);
    rc = 0;
done:
    free(idat);
    dlclose(z);
    return rc;
}

/* ---- the database ---------------------------------------------------------------------- */

static void add(ia_bench_db *db, int64_t run, const char *scenario, const char *metric,
                const char *unit, int batch, double center, int gen, const char *params) {
    double x[40];
    uint32_t s = (uint32_t)(center * 1e6) + (uint32_t)batch;
    for (int i = 0; i < 40; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = center * (0.9 + 0.2 * (double)(s >> 8) / 16777216.0);
    }
    ia_bench_result res = {"cpu",          "f32", scenario, batch,  32,   x,   40,
                           batch / center, 1.0,   NAN,      metric, unit, gen, params};
    CHECK_OK(ia_bench_result_add(db, run, &res, NULL));
}

static void make_db(const char *url) {
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    ia_bench_run_info info = {
        .engine = "ipfs-accelerate",
        .model_name = "tiny-bert",
        .model_content_id = "sha256:1",
        .model_family = "text-encoder",
        .hw_key = "Test CPU|",
        .cpu_model = "Test CPU",
        .threads = 1,
        .env_json = "{}",
    };
    for (int k = 0; k < 5; k++) {
        int64_t run = -1;
        CHECK_OK(ia_bench_run_begin(db, &info, &run));
        double slow = k == 4 ? 1.5 : 1.0; /* the last run regressed */
        for (int b = 1; b <= 4; b *= 2)
            add(db, run, "single-stream", "latency", "samples/s", b, 0.002 * b * slow, 0, NULL);
        CHECK_OK(ia_bench_run_finish(db, run, "complete", 0.1, 1e7, NAN, NULL));
    }
    info.model_name = "llama/model.gguf";
    info.model_family = "text-decoder";
    int64_t run = -1;
    CHECK_OK(ia_bench_run_begin(db, &info, &run));
    add(db, run, "single-stream", "ttft", "tokens/s", 1, 0.0004, 8, NULL);
    add(db, run, "single-stream", "tpot", "tokens/s", 1, 0.00005, 8, NULL);
    add(db, run, "server", "server", "queries/s", 1, 0.001, 8,
        "{\"target_rate\":100.0,\"passed\":true}");
    add(db, run, "server", "server", "queries/s", 1, 0.009, 8,
        "{\"target_rate\":900.0,\"passed\":false}");
    CHECK_OK(ia_bench_failure_add(db, run, "cpu", "q4_k", "single-stream", 1, 32,
                                  IA_BENCH_FAIL_UNSUPPORTED, "q4_k <needs> 256-wide rows & more"));
    CHECK_OK(ia_bench_run_finish(db, run, "complete", 0.1, 1e7, NAN, NULL));
    int64_t imp = -1;
    CHECK_OK(
        ia_bench_import_llama(db, test_source_path("tests/fixtures/bench/llama-bench.json"), &imp));
    ia_bench_db_close(db);
}

TEST(html_report_renders_in_chromium) {
    const char *chromium = find_chromium();
    if (!chromium)
        SKIP("chromium is not installed (apt-get install chromium; or set IA_CHROMIUM)");
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", scratch_path("browser.db"));
    make_db(url);
    ia_bench_db *db = NULL;
    CHECK_OK(ia_bench_db_open(url, &db));
    if (!db)
        return;
    char html[4200], file_url[4300], shot[4200], out[4200], err[4200], profile[4200];
    snprintf(html, sizeof html, "%s", scratch_path("report.html"));
    snprintf(shot, sizeof shot, "%s", scratch_path("report.png"));
    snprintf(out, sizeof out, "%s", scratch_path("dom.html"));
    snprintf(err, sizeof err, "%s", scratch_path("chromium.log"));
    snprintf(profile, sizeof profile, "%s", scratch_path("profile"));
    FILE *f = fopen(html, "w");
    CHECK_OK(ia_bench_report_write(db, "html", NULL, f));
    fclose(f);
    ia_bench_db_close(db);
    char *report = NULL, *dom = NULL, *log = NULL, *png = NULL;
    size_t report_n = 0, dom_n = 0, log_n = 0, png_n = 0;
    CHECK_OK(ia_file_read_all(html, 1 << 24, &report, &report_n));
    size_t svgs = count_of(report, "<svg ");
    CHECK_MSG(svgs >= 5, "%zu charts in the report", svgs);
    CHECK(!strstr(report, "<script"));

    snprintf(file_url, sizeof file_url, "file://%s", html);
    int rc = run_chromium(chromium, file_url, shot, out, err, profile);
    CHECK_MSG(rc == 0, "chromium exit status %d (log: %s)", rc, err);
    CHECK_OK(ia_file_read_all(err, 1 << 24, &log, &log_n));
    char lines[2048];
    size_t n_console = console_lines(log, lines, sizeof lines);
    CHECK_MSG(n_console == 0, "%zu console messages:\n%s", n_console, lines);
    /* the charts are in the rendered DOM */
    CHECK_OK(ia_file_read_all(out, 1 << 24, &dom, &dom_n));
    CHECK_MSG(count_of(dom, "<svg ") == svgs, "%zu of %zu charts in the DOM",
              count_of(dom, "<svg "), svgs);
    CHECK(count_of(dom, "<polyline") >= 2 && count_of(dom, "class=\"regression\"") >= 1);
    CHECK(strstr(dom, "tokens/s") && strstr(dom, "queries/s") && strstr(dom, "samples/s"));
    /* and on the screen */
    CHECK_OK(ia_file_read_all(shot, 1 << 26, &png, &png_n));
    png_stats ps = {0};
    char why[256] = "";
    int prc = png ? png_decode((const uint8_t *)png, png_n, &ps, why, sizeof why) : -1;
    if (prc == 1) {
        fprintf(stderr, "  %s: screenshot checked by size only\n", why);
        CHECK(png_n > 20000);
    } else {
        CHECK_MSG(prc == 0, "screenshot: %s", why);
        CHECK_EQ_INT(ps.w, 1280);
        CHECK_MSG(ps.non_white > 0.02, "%.2f%% of the screenshot is not white", ps.non_white * 100);
        CHECK_MSG(ps.blue > 2000, "%zu pixels of chart blue", ps.blue);
    }

    /* The check can fail: a copy with a console.error and an exception. */
    char bad[4200], bad_url[4300];
    snprintf(bad, sizeof bad, "%s", scratch_path("bad.html"));
    f = fopen(bad, "w");
    char *body_end = report ? strstr(report, "</body>") : NULL;
    if (f && body_end) {
        fwrite(report, 1, (size_t)(body_end - report), f);
        fputs("<script>console.error('ia-probe: console error');</script>\n"
              "<script>iaNoSuchFunction();</script>\n",
              f);
        fputs(body_end, f);
    }
    if (f)
        fclose(f);
    snprintf(bad_url, sizeof bad_url, "file://%s", bad);
    rc = run_chromium(chromium, bad_url, NULL, out, err, profile);
    CHECK_MSG(rc == 0, "chromium exit status %d", rc);
    free(log);
    log = NULL;
    CHECK_OK(ia_file_read_all(err, 1 << 24, &log, &log_n));
    n_console = console_lines(log, lines, sizeof lines);
    CHECK_MSG(n_console == 2, "%zu console messages from the broken copy:\n%s", n_console, lines);
    CHECK(strstr(lines, "ia-probe: console error") != NULL);
    CHECK(strstr(lines, "Uncaught ReferenceError: iaNoSuchFunction") != NULL);
    free(report);
    free(dom);
    free(log);
    free(png);
}
