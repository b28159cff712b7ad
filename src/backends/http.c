/*
 * The HTTP transport for remote providers: one request, one libcurl easy
 * handle driven by its own multi handle, so that this loop (not libcurl's
 * once-a-second progress callback) decides when a deadline has passed.
 *
 * Four limits bound a call. connect_ms is libcurl's connect timeout.
 * first_byte_ms is checked here between polls: connected but no response
 * head yet. Once the body flows, a stall (no byte for first_byte_ms) ends
 * it too, so a server that goes quiet mid-stream does not hold the caller
 * until the whole-call limit. total_ms bounds everything (an endless stream
 * ends there). max_body bounds memory: a body past it aborts the transfer.
 *
 * A 2xx body goes to the sink when one is given (streaming parsers) and is
 * kept otherwise; other statuses always keep the first 64 KiB of their body
 * so that the provider's error message can be quoted. Retry-After,
 * retry-after-ms and x-should-retry are read from the response head.
 */
#define _GNU_SOURCE /* strcasestr */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/backends_internal.h"

#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define ERROR_BODY_KEEP ((size_t)64 << 10)
#define POLL_MS 20

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;
static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *ia_http_fail_str(ia_http_fail f) {
    switch (f) {
    case IA_HTTP_FAIL_NONE:
        return "none";
    case IA_HTTP_FAIL_CONNECT:
        return "could not connect";
    case IA_HTTP_FAIL_CONNECT_TIMEOUT:
        return "connect timeout";
    case IA_HTTP_FAIL_FIRST_BYTE_TIMEOUT:
        return "first-byte timeout";
    case IA_HTTP_FAIL_STALL:
        return "stalled body";
    case IA_HTTP_FAIL_TOTAL_TIMEOUT:
        return "total timeout";
    case IA_HTTP_FAIL_RESET:
        return "connection reset";
    case IA_HTTP_FAIL_TOO_BIG:
        return "body too large";
    case IA_HTTP_FAIL_ABORTED:
        return "aborted";
    case IA_HTTP_FAIL_OTHER:
        return "transfer failed";
    }
    return "transfer failed";
}

long ia_http_parse_retry_after(const char *value, time_t now) {
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end;
        double s = strtod(value, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end != 0 || s < 0 || s > 86400.0 * 7)
            return -1;
        return (long)(s * 1000.0 + 0.5);
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if (t <= now)
        return 0;
    double d = difftime(t, now);
    return d > 86400.0 * 7 ? -1 : (long)(d * 1000.0);
}

typedef struct transfer {
    const ia_http_request *req;
    ia_http_response *resp;
    size_t max_body;
    size_t kept_cap;
    bool head_done; /* a final (non-1xx) status line arrived */
    double start, last_byte;
    bool too_big;
} transfer;

static ia_status keep_bytes(transfer *t, const char *data, size_t n, size_t limit) {
    ia_http_response *r = t->resp;
    if (r->body_len + n > limit)
        n = limit > r->body_len ? limit - r->body_len : 0;
    if (r->body_len + n + 1 > t->kept_cap) {
        size_t cap = t->kept_cap ? t->kept_cap : 4096;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return IA_ENOMEM;
        r->body = b;
        t->kept_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return IA_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    transfer *t = ud;
    ia_http_response *r = t->resp;
    size_t n = size * nmemb;
    t->last_byte = ia_time_now();
    if (r->bytes_received + n > t->max_body) {
        t->too_big = true;
        return 0;
    }
    r->bytes_received += n;
    bool ok = r->status >= 200 && r->status < 300;
    if (ok && t->req->sink) {
        ia_status st = t->req->sink(t->req->sink_ctx, data, n);
        if (st != IA_OK) {
            r->sink_status = st;
            return 0;
        }
        return n;
    }
    if (keep_bytes(t, data, n, ok ? t->max_body : ERROR_BODY_KEEP) != IA_OK) {
        r->sink_status = IA_ENOMEM;
        return 0;
    }
    return n;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    *value = line + k + 1;
    return true;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
    transfer *t = ud;
    ia_http_response *r = t->resp;
    size_t n = size * nmemb;
    t->last_byte = ia_time_now();
    if (r->first_byte_ms < 0)
        r->first_byte_ms = (t->last_byte - t->start) * 1000.0;
    char line[512];
    size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, data, k);
    line[k] = 0;
    while (k > 0 && (line[k - 1] == '\r' || line[k - 1] == '\n'))
        line[--k] = 0;
    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        long code = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->status = code;
        t->head_done = code >= 200;
        r->retry_after_ms = -1;
        r->should_retry = -1;
        return n;
    }
    const char *v;
    if (header_is(line, k, "retry-after-ms", &v)) {
        char *end;
        double ms = strtod(v, &end);
        if (end != v && ms >= 0 && ms < 86400.0 * 7000)
            r->retry_after_ms = (long)ms;
    } else if (header_is(line, k, "retry-after", &v)) {
        long ms = ia_http_parse_retry_after(v, time(NULL));
        if (ms >= 0 && r->retry_after_ms < 0)
            r->retry_after_ms = ms;
    } else if (header_is(line, k, "x-should-retry", &v)) {
        while (*v == ' ')
            v++;
        r->should_retry = strncasecmp(v, "true", 4) == 0    ? 1
                          : strncasecmp(v, "false", 5) == 0 ? 0
                                                            : -1;
    }
    return n;
}

static void set_fail(ia_http_response *r, ia_http_fail f, const char *fmt, const char *detail) {
    r->fail = f;
    snprintf(r->error, sizeof r->error, fmt, detail);
}

ia_status ia_http_perform(const ia_http_request *req, ia_http_response *resp) {
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    resp->should_retry = -1;
    resp->first_byte_ms = -1;
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK) {
        set_fail(resp, IA_HTTP_FAIL_OTHER, "libcurl did not initialise: %s",
                 curl_easy_strerror(curl_init_result));
        return ia_error_set(IA_EIO, "%s", resp->error);
    }
    transfer t = {
        .req = req, .resp = resp, .max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY};
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();
    struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    ia_status st = IA_OK;
    if (!e || !m) {
        set_fail(resp, IA_HTTP_FAIL_OTHER, "%s", "libcurl handles could not be created");
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *n = curl_slist_append(hl, req->headers[i]);
        if (!n) {
            set_fail(resp, IA_HTTP_FAIL_OTHER, "%s", "out of memory building headers");
            st = IA_ENOMEM;
            goto done;
        }
        hl = n;
    }
    /* libcurl would otherwise send "Expect: 100-continue" for larger bodies. */
    struct curl_slist *n2 = curl_slist_append(hl, "Expect:");
    if (n2)
        hl = n2;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ipfs-accelerate/0.1");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (req->connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms);
    if (req->total_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->total_ms);
    if (req->body || strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_multi_add_handle(m, e);
    t.start = t.last_byte = ia_time_now();
    int running = 1;
    ia_http_fail local_fail = IA_HTTP_FAIL_NONE;
    while (running) {
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            set_fail(resp, IA_HTTP_FAIL_OTHER, "libcurl: %s", curl_multi_strerror(mc));
            break;
        }
        if (!running)
            break;
        double now = ia_time_now();
        long connected = 0;
        curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
        if (req->first_byte_ms > 0 && !t.head_done && resp->first_byte_ms < 0 && connected > 0 &&
            (now - t.start) * 1000.0 > (double)req->first_byte_ms) {
            local_fail = IA_HTTP_FAIL_FIRST_BYTE_TIMEOUT;
            break;
        }
        if (req->first_byte_ms > 0 && t.head_done &&
            (now - t.last_byte) * 1000.0 > (double)req->first_byte_ms) {
            local_fail = IA_HTTP_FAIL_STALL;
            break;
        }
        if (req->total_ms > 0 && (now - t.start) * 1000.0 > (double)req->total_ms + 50) {
            local_fail = IA_HTTP_FAIL_TOTAL_TIMEOUT;
            break;
        }
        curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
    }
    resp->latency_ms = (ia_time_now() - t.start) * 1000.0;
    if (local_fail != IA_HTTP_FAIL_NONE) {
        char what[64];
        snprintf(what, sizeof what, "%.0f ms", resp->latency_ms);
        set_fail(resp, local_fail,
                 local_fail == IA_HTTP_FAIL_FIRST_BYTE_TIMEOUT ? "no response head after %s"
                 : local_fail == IA_HTTP_FAIL_STALL ? "the body stopped arriving (after %s)"
                                                    : "the call took longer than allowed (%s)",
                 what);
        st = IA_EIO;
        goto done;
    }
    if (resp->fail != IA_HTTP_FAIL_NONE) {
        st = IA_EIO;
        goto done;
    }
    CURLcode rc = CURLE_OK;
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE)
            rc = msg->data.result;
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_WRITE_ERROR:
        if (t.too_big) {
            char lim[48];
            snprintf(lim, sizeof lim, "%zu", t.max_body);
            set_fail(resp, IA_HTTP_FAIL_TOO_BIG, "the response body passed the %s-byte limit", lim);
        } else {
            set_fail(resp, IA_HTTP_FAIL_ABORTED, "the response was abandoned: %s",
                     resp->sink_status != IA_OK ? ia_error_message() : detail);
        }
        break;
    case CURLE_FILESIZE_EXCEEDED:
        set_fail(resp, IA_HTTP_FAIL_TOO_BIG, "%s", "the response body passed the size limit");
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        set_fail(resp, IA_HTTP_FAIL_CONNECT, "could not connect: %s", detail);
        break;
    case CURLE_OPERATION_TIMEDOUT: {
        long connected = 0;
        curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
        if (connected == 0 && resp->first_byte_ms < 0)
            set_fail(resp, IA_HTTP_FAIL_CONNECT_TIMEOUT, "connect timeout: %s", detail);
        else
            set_fail(resp, IA_HTTP_FAIL_TOTAL_TIMEOUT, "the call took longer than allowed: %s",
                     detail);
        break;
    }
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2_STREAM:
        set_fail(resp, IA_HTTP_FAIL_RESET, "connection reset or cut short: %s", detail);
        break;
    default:
        set_fail(resp, IA_HTTP_FAIL_OTHER, "transfer failed: %s", detail);
        break;
    }
    if (resp->fail != IA_HTTP_FAIL_NONE)
        st = IA_EIO;
done:
    if (m && e)
        curl_multi_remove_handle(m, e);
    if (e)
        curl_easy_cleanup(e);
    if (m)
        curl_multi_cleanup(m);
    curl_slist_free_all(hl);
    if (st != IA_OK)
        return ia_error_set(st, "%s", resp->error);
    return IA_OK;
}

void ia_http_response_free(ia_http_response *resp) {
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* ---- classification ---------------------------------------------------------------- */

/* Wording providers use when an account's spending or quota limit (not a
 * momentary rate) is reached: retrying cannot help. */
static bool spend_limit(const char *body) {
    static const char *const words[] = {"insufficient_quota", "billing_hard_limit", "spend limit",
                                        "credit balance is too low", "quota exceeded for"};
    if (!body)
        return false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(body, words[i]))
            return true;
    return false;
}

ia_call_class ia_api_classify(const ia_http_response *r) {
    if (r->fail == IA_HTTP_FAIL_ABORTED && r->sink_status != IA_OK)
        return IA_CALL_FATAL;
    if (r->fail == IA_HTTP_FAIL_TOO_BIG)
        return IA_CALL_FATAL;
    if (r->fail != IA_HTTP_FAIL_NONE)
        return IA_CALL_RETRYABLE;
    long s = r->status;
    if (s >= 200 && s < 300)
        return IA_CALL_OK;
    if (s == 429)
        return spend_limit(r->body) ? IA_CALL_FATAL : IA_CALL_RATE_LIMITED;
    if (r->should_retry == 1)
        return IA_CALL_RETRYABLE;
    if (r->should_retry == 0)
        return IA_CALL_FATAL;
    if (s == 408 || s == 409 || s >= 500)
        return IA_CALL_RETRYABLE;
    return IA_CALL_FATAL;
}
