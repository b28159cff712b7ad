/*
 * The S3 client: one libcurl easy handle per client, every request signed
 * with SigV4 (sigv4.c), XML answers read with the bounded scanner in
 * s3_xml.c.
 *
 * Addressing: with a custom endpoint (MinIO, moto, a gateway) URLs are
 * path-style, ENDPOINT/bucket/key; against AWS itself they are
 * virtual-hosted, https://bucket.s3.REGION.amazonaws.com/key, unless the
 * bucket name has a dot (TLS wildcard certificates do not cover those) or
 * path style was asked for. The path is URI-encoded once, '/' kept, and
 * libcurl is told to send it exactly so (no dot-segment squashing), since
 * the signature covers the bytes on the wire.
 *
 * Every request carries x-amz-content-sha256 with the real SHA-256 of its
 * body: parts are hashed before they are sent, so the server verifies the
 * payload as well as the headers. Bodies come from memory (a whole object
 * below the multipart threshold, or one part); a response body goes either
 * to the caller's sink (a successful GET) or to a bounded buffer (XML, and
 * every error document).
 *
 * Failures name the operation and the s3:// URL, the HTTP status and S3's
 * error code and message. The secret key and the Authorization header are
 * never part of a message; libcurl's verbose mode is never switched on.
 * Retries with backoff belong to the resilience layer above this one.
 */
#include "ia/s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/s3_xml.h"

#define MIB ((uint64_t)1 << 20)
#define DEFAULT_THRESHOLD (16 * MIB)
#define DEFAULT_PART_SIZE (8 * MIB)
#define MAX_PARTS 10000u
#define MAX_PART_SIZE (5 * 1024 * MIB) /* S3's limit for one part or one PUT */
#define MAX_XML_BODY ((size_t)32 << 20)
#define MAX_ERROR_BODY ((size_t)1 << 20)

struct ia_s3_client {
    CURL *curl;
    char *scheme; /* "http" or "https" */
    char *host;   /* host[:port] of the custom endpoint, NULL for AWS */
    char *region, *access_key_id, *secret_access_key, *session_token;
    bool path_style;
    long connect_timeout_s, timeout_s;
    long last_status;
    char last_code[64];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- client lifetime ------------------------------------------------------------------ */

static void free_secret(char *s) {
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void ia_s3_client_destroy(ia_s3_client *c) {
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->scheme);
    free(c->host);
    free(c->region);
    free(c->access_key_id);
    free_secret(c->secret_access_key);
    free_secret(c->session_token);
    free(c);
}

/* "http://host[:port][/]" -> scheme and host. */
static ia_status parse_endpoint(ia_s3_client *c, const char *url) {
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) {
        c->scheme = ia_strdup("http");
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        c->scheme = ia_strdup("https");
        rest = url + 8;
    } else {
        return ia_error_set(IA_EINVAL, "s3 endpoint '%s': not an http:// or https:// URL", url);
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || (rest[n] && strcmp(rest + n, "/") != 0))
        return ia_error_set(
            IA_EINVAL, "s3 endpoint '%s': want scheme://host[:port] with no path or query", url);
    for (size_t i = 0; i < n; i++)
        if (rest[i] == '@' || rest[i] <= ' ')
            return ia_error_set(IA_EINVAL, "s3 endpoint '%s': user info and spaces are not allowed",
                                url);
    c->host = ia_strndup(rest, n);
    return c->scheme && c->host ? IA_OK : IA_ENOMEM;
}

static bool valid_region(const char *r) {
    if (!*r || strlen(r) > 32)
        return false;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') || *r == '-'))
            return false;
    return true;
}

ia_status ia_s3_client_create(const ia_s3_config *cfg, ia_s3_client **out) {
    ia_status st = IA_OK;
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    ia_s3_client *c = ia_calloc(1, sizeof *c);
    if (!c)
        return IA_ENOMEM;
    const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
    if (!cfg->access_key_id || !*cfg->access_key_id || !cfg->secret_access_key ||
        !*cfg->secret_access_key) {
        st = ia_error_set(IA_EINVAL, "s3: no credentials (set AWS_ACCESS_KEY_ID and "
                                     "AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials)");
        goto fail;
    }
    if (!valid_region(region)) {
        st = ia_error_set(IA_EINVAL, "s3: '%s' is not a region name like us-east-1", region);
        goto fail;
    }
    if (cfg->endpoint && *cfg->endpoint) {
        if ((st = parse_endpoint(c, cfg->endpoint)))
            goto fail;
        c->path_style = true;
    } else {
        c->path_style = cfg->path_style;
        if (!(c->scheme = ia_strdup("https"))) {
            st = IA_ENOMEM;
            goto fail;
        }
    }
    c->region = ia_strdup(region);
    c->access_key_id = ia_strdup(cfg->access_key_id);
    c->secret_access_key = ia_strdup(cfg->secret_access_key);
    if (cfg->session_token && *cfg->session_token)
        c->session_token = ia_strdup(cfg->session_token);
    if (!c->region || !c->access_key_id || !c->secret_access_key ||
        (cfg->session_token && *cfg->session_token && !c->session_token)) {
        st = IA_ENOMEM;
        goto fail;
    }
    c->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
    c->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : 0;
    if (!(c->curl = curl_easy_init())) {
        st = ia_error_set(IA_ENOMEM, "s3: libcurl could not make a handle");
        goto fail;
    }
    *out = c;
    return IA_OK;
fail:
    ia_s3_client_destroy(c);
    return st;
}

const char *ia_s3_client_last_error(const ia_s3_client *c, long *http_status) {
    if (http_status)
        *http_status = c->last_status;
    return c->last_code;
}

/* ---- s3:// URLs ----------------------------------------------------------------------- */

ia_status ia_s3_url_parse(const char *url, char **bucket, char **key) {
    *bucket = *key = NULL;
    if (strncmp(url, "s3://", 5) != 0)
        return ia_error_set(IA_EINVAL, "'%s' is not an s3://bucket/key URL", url);
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t n = slash ? (size_t)(slash - b) : strlen(b);
    if (n < 3 || n > 63)
        return ia_error_set(IA_EINVAL, "'%s': a bucket name has 3 to 63 characters", url);
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return ia_error_set(
                IA_EINVAL, "'%s': bucket names use lowercase letters, digits, '-' and '.'", url);
    }
    *bucket = ia_strndup(b, n);
    *key = ia_strdup(slash ? slash + 1 : "");
    if (!*bucket || !*key) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
        return IA_ENOMEM;
    }
    return IA_OK;
}

/* ---- one signed request ------------------------------------------------------------------ */

typedef struct response {
    long status;
    char *body;
    size_t len, cap, limit;
    bool overflow;
    ia_s3_write_fn sink; /* for a 2xx body */
    void *sink_ctx;
    ia_status sink_status;
    bool sink_failed;
    ia_s3_object_info info;
    bool have_total;
} response;

typedef struct request {
    const char *method;
    const char *bucket, *key; /* key NULL: a bucket-level request */
    const char *query;        /* encoded */
    const ia_sigv4_header *extra;
    size_t n_extra;
    const void *body;
    size_t body_len;
    const char *content_type;
    const char *what; /* "PUT" etc. for messages */
} request;

static size_t on_body(char *data, size_t size, size_t n, void *ctx) {
    response *r = ctx;
    size_t len = size * n;
    if (r->sink && r->status >= 200 && r->status < 300) {
        ia_status st = r->sink(r->sink_ctx, data, len);
        if (st) {
            r->sink_status = st;
            r->sink_failed = true;
            return 0;
        }
        return len;
    }
    if (r->len + len > r->limit) {
        r->overflow = true;
        return 0;
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (!p)
            return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = 0;
    return len;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value,
                      size_t *vlen) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

static void copy_field(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx) {
    response *r = ctx;
    size_t len = size * n;
    const char *v;
    size_t vn;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue or a redirect): start over */
        const char *sp = memchr(data, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        memset(&r->info, 0, sizeof r->info);
        r->have_total = false;
    } else if (header_is(data, len, "ETag", &v, &vn)) {
        copy_field(r->info.etag, sizeof r->info.etag, v, vn);
    } else if (header_is(data, len, "Last-Modified", &v, &vn)) {
        copy_field(r->info.last_modified, sizeof r->info.last_modified, v, vn);
    } else if (header_is(data, len, "Content-Length", &v, &vn)) {
        if (!r->have_total)
            r->info.size = strtoull(v, NULL, 10);
    } else if (header_is(data, len, "Content-Range", &v, &vn)) {
        const char *slash = memchr(v, '/', vn);
        if (slash && slash[1] != '*') {
            r->info.size = strtoull(slash + 1, NULL, 10);
            r->have_total = true;
        }
    }
    return len;
}

/* "/bucket/key" or "/key" (virtual-hosted), key encoded with '/' kept. */
static ia_status build_path(const ia_s3_client *c, const request *q, bool virtual_host,
                            char **out) {
    char *ekey = NULL;
    ia_status st;
    *out = NULL;
    if ((st = ia_sigv4_uri_encode(q->key ? q->key : "", q->key ? strlen(q->key) : 0, true, &ekey)))
        return st;
    size_t n = strlen(ekey) + strlen(q->bucket ? q->bucket : "") + 4;
    char *p = ia_malloc(n);
    if (!p) {
        free(ekey);
        return IA_ENOMEM;
    }
    if (virtual_host || !q->bucket)
        snprintf(p, n, "/%s", ekey);
    else if (q->key)
        snprintf(p, n, "/%s/%s", q->bucket, ekey);
    else
        snprintf(p, n, "/%s", q->bucket);
    free(ekey);
    *out = p;
    return IA_OK;
}

static void describe(const request *q, char *buf, size_t cap) {
    snprintf(buf, cap, "%s s3://%s%s%s", q->what ? q->what : q->method, q->bucket ? q->bucket : "",
             q->key ? "/" : "", q->key ? q->key : "");
}

static ia_status status_for_http(long status) {
    if (status == 404)
        return IA_ENOTFOUND;
    if (status >= 400 && status < 500)
        return IA_EINVAL;
    return IA_EIO;
}

/* Turns a non-2xx answer into a message (and the client's last error). */
static ia_status http_failure(ia_s3_client *c, const request *q, response *r) {
    char what[1200], code[64] = "", msg[512] = "";
    describe(q, what, sizeof what);
    c->last_status = r->status;
    if (r->len > 0 && ia_s3_xml_error(r->body, r->len, code, sizeof code, msg, sizeof msg) != IA_OK)
        code[0] = msg[0] = 0;
    ia_error_clear();
    if (!code[0] && r->status == 404)
        snprintf(code, sizeof code, "NotFound");
    snprintf(c->last_code, sizeof c->last_code, "%s", code);
    const char *hint = "";
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        hint = " (check the secret access key)";
    else if (strcmp(code, "InvalidAccessKeyId") == 0)
        hint = " (check the access key id)";
    else if (strcmp(code, "RequestTimeTooSkewed") == 0)
        hint = " (this machine's clock is off by more than 15 minutes)";
    return ia_error_set(status_for_http(r->status), "%s: HTTP %ld%s%s%s%s%s", what, r->status,
                        code[0] ? " " : "", code, msg[0] ? ": " : "", msg, hint);
}

static struct curl_slist *add_header(struct curl_slist *list, bool *ok, const char *name,
                                     const char *value) {
    char line[2048];
    if (snprintf(line, sizeof line, "%s: %s", name, value) >= (int)sizeof line) {
        *ok = false;
        return list;
    }
    struct curl_slist *l = curl_slist_append(list, line);
    if (!l) {
        *ok = false;
        return list;
    }
    return l;
}

/* Sends one signed request; r must be zeroed with limit (and sink) set.
 * A non-2xx answer is an error with S3's code and message. */
static ia_status s3_call(ia_s3_client *c, const request *q, response *r) {
    ia_status st = IA_OK;
    char *path = NULL, *url = NULL, *auth = NULL;
    struct curl_slist *hl = NULL;
    char host[320], amz_date[17], payload[65], what[1200];
    bool virtual_host = !c->path_style && q->bucket && !strchr(q->bucket, '.');
    c->last_status = 0;
    c->last_code[0] = 0;
    describe(q, what, sizeof what);

    if (c->host)
        snprintf(host, sizeof host, "%s", c->host);
    else if (virtual_host)
        snprintf(host, sizeof host, "%s.s3.%s.amazonaws.com", q->bucket, c->region);
    else
        snprintf(host, sizeof host, "s3.%s.amazonaws.com", c->region);
    if ((st = build_path(c, q, virtual_host, &path)))
        goto done;
    size_t ulen =
        strlen(c->scheme) + strlen(host) + strlen(path) + (q->query ? strlen(q->query) : 0) + 8;
    if (!(url = ia_malloc(ulen))) {
        st = IA_ENOMEM;
        goto done;
    }
    snprintf(url, ulen, "%s://%s%s%s%s", c->scheme, host, path, q->query && *q->query ? "?" : "",
             q->query ? q->query : "");

    ia_sigv4_sha256_hex(q->body ? q->body : "", q->body ? q->body_len : 0, payload);
    ia_sigv4_amz_date_now(amz_date);
    ia_sigv4_header hs[16];
    size_t n = 0;
    hs[n++] = (ia_sigv4_header){"host", host};
    hs[n++] = (ia_sigv4_header){"x-amz-date", amz_date};
    hs[n++] = (ia_sigv4_header){"x-amz-content-sha256", payload};
    if (c->session_token)
        hs[n++] = (ia_sigv4_header){"x-amz-security-token", c->session_token};
    for (size_t i = 0; i < q->n_extra && n < 16; i++)
        hs[n++] = q->extra[i];
    ia_sigv4_request sreq = {q->method, path, q->query, hs, n, payload};
    ia_sigv4_credentials cred = {c->access_key_id, c->secret_access_key, c->region, "s3"};
    if ((st = ia_sigv4_authorization(&sreq, &cred, amz_date, &auth, NULL))) {
        ia_error_prefix("%s", what);
        goto done;
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        hl = add_header(hl, &ok, hs[i].name, hs[i].value);
    hl = add_header(hl, &ok, "Authorization", auth);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    if (q->body)
        hl = add_header(hl, &ok, "Content-Type",
                        q->content_type ? q->content_type : "application/octet-stream");
    if (!ok || !hl) {
        st = ia_error_set(IA_ENOMEM, "%s: cannot build the request headers", what);
        goto done;
    }

    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    /* a transfer that moves nothing for a minute is dead, timeout or not */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
        if (q->body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
        }
    }
    CURLcode rc = curl_easy_perform(h);
    if (r->sink_failed) {
        st = r->sink_status;
        ia_error_prefix("%s", what);
        goto done;
    }
    if (r->overflow) {
        st = ia_error_set(IA_ERANGE, "%s: the response body is over %zu bytes", what, r->limit);
        goto done;
    }
    if (rc != CURLE_OK) {
        st = ia_error_set(IA_EIO, "%s: %s://%s: %s", what, c->scheme, host, curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    c->last_status = r->status;
    if (r->status < 200 || r->status >= 300)
        st = http_failure(c, q, r);
done:
    curl_slist_free_all(hl);
    if (auth) {
        OPENSSL_cleanse(auth, strlen(auth));
        free(auth);
    }
    free(path);
    free(url);
    return st;
}

static ia_status check_key(const char *bucket, const char *key) {
    if (!bucket || !*bucket)
        return ia_error_set(IA_EINVAL, "s3: no bucket name");
    if (!key || !*key)
        return ia_error_set(IA_EINVAL, "s3://%s/: no object key", bucket);
    if (strlen(key) > 1024)
        return ia_error_set(IA_EINVAL, "s3://%s/%.40s...: keys are at most 1024 bytes", bucket,
                            key);
    return IA_OK;
}

/* A request with a bounded buffered response that the caller frees. */
static ia_status call_buffered(ia_s3_client *c, const request *q, size_t limit, response *r) {
    memset(r, 0, sizeof *r);
    r->limit = limit;
    return s3_call(c, q, r);
}

/* ---- buckets and small objects ------------------------------------------------------------- */

ia_status ia_s3_bucket_create(ia_s3_client *c, const char *bucket) {
    char body[512];
    bool located = strcmp(c->region, "us-east-1") != 0;
    snprintf(body, sizeof body,
             "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
             "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
             c->region);
    request q = {.method = "PUT",
                 .bucket = bucket,
                 .body = located ? body : "",
                 .body_len = located ? strlen(body) : 0,
                 .content_type = "application/xml",
                 .what = "create bucket"};
    response r;
    ia_status st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    free(r.body);
    return st;
}

ia_status ia_s3_bucket_delete(ia_s3_client *c, const char *bucket) {
    request q = {.method = "DELETE", .bucket = bucket, .what = "delete bucket"};
    response r;
    ia_status st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    free(r.body);
    return st;
}

ia_status ia_s3_object_put(ia_s3_client *c, const char *bucket, const char *key, const void *data,
                           size_t len) {
    ia_status st = check_key(bucket, key);
    if (st)
        return st;
    request q = {.method = "PUT",
                 .bucket = bucket,
                 .key = key,
                 .body = data ? data : "",
                 .body_len = len,
                 .what = "PUT"};
    response r;
    st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    free(r.body);
    return st;
}

ia_status ia_s3_object_get(ia_s3_client *c, const char *bucket, const char *key, bool range,
                           uint64_t first, uint64_t last, ia_s3_write_fn write, void *ctx,
                           ia_s3_object_info *info) {
    ia_status st = check_key(bucket, key);
    if (st)
        return st;
    if (!write)
        return ia_error_set(IA_EINVAL, "s3://%s/%s: GET needs a write callback", bucket, key);
    char rbuf[64];
    ia_sigv4_header extra[1];
    if (range) {
        if (last < first)
            return ia_error_set(IA_EINVAL, "s3://%s/%s: range %llu-%llu ends before it starts",
                                bucket, key, (unsigned long long)first, (unsigned long long)last);
        if (last == UINT64_MAX)
            snprintf(rbuf, sizeof rbuf, "bytes=%llu-", (unsigned long long)first);
        else
            snprintf(rbuf, sizeof rbuf, "bytes=%llu-%llu", (unsigned long long)first,
                     (unsigned long long)last);
        extra[0] = (ia_sigv4_header){"range", rbuf};
    }
    request q = {.method = "GET",
                 .bucket = bucket,
                 .key = key,
                 .extra = extra,
                 .n_extra = range ? 1 : 0,
                 .what = "GET"};
    response r = {.limit = MAX_ERROR_BODY, .sink = write, .sink_ctx = ctx};
    st = s3_call(c, &q, &r);
    if (st == IA_OK && info)
        *info = r.info;
    free(r.body);
    return st;
}

ia_status ia_s3_object_head(ia_s3_client *c, const char *bucket, const char *key,
                            ia_s3_object_info *info) {
    ia_status st = check_key(bucket, key);
    if (st)
        return st;
    request q = {.method = "HEAD", .bucket = bucket, .key = key, .what = "HEAD"};
    response r;
    st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    if (st == IA_OK && info)
        *info = r.info;
    free(r.body);
    return st;
}

ia_status ia_s3_object_delete(ia_s3_client *c, const char *bucket, const char *key) {
    ia_status st = check_key(bucket, key);
    if (st)
        return st;
    request q = {.method = "DELETE", .bucket = bucket, .key = key, .what = "DELETE"};
    response r;
    st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    free(r.body);
    return st;
}

/* ---- listing -----------------------------------------------------------------------------------
 */

void ia_s3_list_page_free(ia_s3_list_page *page) {
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++)
        free(page->entries[i].key);
    free(page->entries);
    for (size_t i = 0; i < page->n_prefixes; i++)
        free(page->prefixes[i]);
    free(page->prefixes);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

typedef struct list_ctx {
    ia_s3_list_page *page;
    ia_s3_list_entry cur;
    bool root_ok;
    size_t cap, prefix_cap;
} list_ctx;

static bool parse_u64(const char *s, uint64_t *out) {
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static ia_status on_list(void *ctx, const char *path, const char *text, size_t len) {
    list_ctx *l = ctx;
    ia_s3_list_page *p = l->page;
    if (strncmp(path, "ListBucketResult", 16) != 0 || (path[16] && path[16] != '/'))
        return ia_error_set(IA_EPARSE, "S3 list response: <%s> is not in a <ListBucketResult>",
                            path);
    const char *rel = path[16] ? path + 17 : "";
    if (!*rel) {
        l->root_ok = true;
    } else if (strcmp(rel, "Contents/Key") == 0) {
        free(l->cur.key);
        if (!(l->cur.key = ia_strndup(text, len)))
            return IA_ENOMEM;
    } else if (strcmp(rel, "Contents/Size") == 0) {
        if (!parse_u64(text, &l->cur.info.size))
            return ia_error_set(IA_EPARSE, "S3 list response: Size '%.40s' is not a number", text);
    } else if (strcmp(rel, "Contents/ETag") == 0) {
        copy_field(l->cur.info.etag, sizeof l->cur.info.etag, text, len);
    } else if (strcmp(rel, "Contents/LastModified") == 0) {
        copy_field(l->cur.info.last_modified, sizeof l->cur.info.last_modified, text, len);
    } else if (strcmp(rel, "Contents") == 0) {
        if (!l->cur.key)
            return ia_error_set(IA_EPARSE, "S3 list response: a <Contents> without a <Key>");
        if (p->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 64;
            ia_s3_list_entry *e = ia_realloc_array(p->entries, cap, sizeof *e);
            if (!e)
                return IA_ENOMEM;
            p->entries = e;
            l->cap = cap;
        }
        p->entries[p->n++] = l->cur;
        memset(&l->cur, 0, sizeof l->cur);
    } else if (strcmp(rel, "CommonPrefixes/Prefix") == 0) {
        if (p->n_prefixes == l->prefix_cap) {
            size_t cap = l->prefix_cap ? l->prefix_cap * 2 : 16;
            char **e = ia_realloc_array(p->prefixes, cap, sizeof *e);
            if (!e)
                return IA_ENOMEM;
            p->prefixes = e;
            l->prefix_cap = cap;
        }
        if (!(p->prefixes[p->n_prefixes] = ia_strndup(text, len)))
            return IA_ENOMEM;
        p->n_prefixes++;
    } else if (strcmp(rel, "IsTruncated") == 0) {
        if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
            return ia_error_set(IA_EPARSE, "S3 list response: IsTruncated '%.40s'", text);
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(rel, "NextContinuationToken") == 0) {
        free(p->next_token);
        if (!(p->next_token = ia_strndup(text, len)))
            return IA_ENOMEM;
    }
    return IA_OK;
}

ia_status ia_s3_list_page_parse(const char *xml, size_t len, ia_s3_list_page *out) {
    memset(out, 0, sizeof *out);
    list_ctx l = {.page = out};
    ia_status st = ia_s3_xml_walk(xml, len, on_list, &l);
    free(l.cur.key);
    if (st == IA_OK && !l.root_ok)
        st = ia_error_set(IA_EPARSE, "S3 list response: no <ListBucketResult>");
    if (st == IA_OK && out->truncated && (!out->next_token || !*out->next_token))
        st = ia_error_set(IA_EPARSE, "S3 list response: IsTruncated is true but there is no "
                                     "NextContinuationToken");
    if (st)
        ia_s3_list_page_free(out);
    return st;
}

/* Appends "&name=encoded(value)" (or the first "name=..."). */
static ia_status query_add(char **q, const char *name, const char *value) {
    char *ev = NULL;
    ia_status st = ia_sigv4_uri_encode(value, strlen(value), false, &ev);
    if (st)
        return st;
    size_t old = *q ? strlen(*q) : 0, n = old + strlen(name) + strlen(ev) + 3;
    char *p = realloc(*q, n);
    if (!p) {
        free(ev);
        return ia_error_set(IA_ENOMEM, "s3: out of memory building a query");
    }
    snprintf(p + old, n - old, "%s%s=%s", old ? "&" : "", name, ev);
    free(ev);
    *q = p;
    return IA_OK;
}

ia_status ia_s3_list_page_get(ia_s3_client *c, const char *bucket, const char *prefix,
                              const char *delimiter, uint32_t max_keys, const char *token,
                              ia_s3_list_page *out) {
    char *query = NULL, num[16];
    response r = {0};
    memset(out, 0, sizeof *out);
    ia_status st = query_add(&query, "list-type", "2");
    if (!st && max_keys) {
        snprintf(num, sizeof num, "%u", max_keys);
        st = query_add(&query, "max-keys", num);
    }
    if (!st && prefix && *prefix)
        st = query_add(&query, "prefix", prefix);
    if (!st && delimiter && *delimiter)
        st = query_add(&query, "delimiter", delimiter);
    if (!st && token && *token)
        st = query_add(&query, "continuation-token", token);
    if (st)
        goto done;
    request q = {.method = "GET", .bucket = bucket, .query = query, .what = "list"};
    if ((st = call_buffered(c, &q, MAX_XML_BODY, &r)))
        goto done;
    if ((st = ia_s3_list_page_parse(r.body ? r.body : "", r.len, out)))
        ia_error_prefix("list s3://%s/%s", bucket, prefix ? prefix : "");
done:
    free(query);
    free(r.body);
    return st;
}

ia_status ia_s3_list(ia_s3_client *c, const char *bucket, const char *prefix, uint32_t page_size,
                     ia_s3_list_fn fn, void *ctx) {
    ia_status st = IA_OK;
    char *token = NULL;
    for (;;) {
        ia_s3_list_page page;
        if ((st = ia_s3_list_page_get(c, bucket, prefix, NULL, page_size, token, &page)))
            break;
        for (size_t i = 0; i < page.n && st == IA_OK; i++)
            st = fn(ctx, &page.entries[i]);
        free(token);
        token = page.truncated ? page.next_token : NULL;
        if (page.truncated)
            page.next_token = NULL;
        ia_s3_list_page_free(&page);
        if (st || !token)
            break;
    }
    free(token);
    return st;
}

ia_status ia_s3_multipart_pending(ia_s3_client *c, const char *bucket, const char *prefix,
                                  size_t *count) {
    char *query = ia_strdup("uploads=");
    response r = {0};
    *count = 0;
    if (!query)
        return IA_ENOMEM;
    ia_status st = prefix && *prefix ? query_add(&query, "prefix", prefix) : IA_OK;
    request q = {.method = "GET", .bucket = bucket, .query = query, .what = "list uploads"};
    if (!st && !(st = call_buffered(c, &q, MAX_XML_BODY, &r)))
        st = ia_s3_xml_count(r.body ? r.body : "", r.len, "ListMultipartUploadsResult/Upload",
                             count);
    free(query);
    free(r.body);
    return st;
}

/* ---- uploads ------------------------------------------------------------------------------------
 */

typedef struct part_etag {
    char etag[80];
} part_etag;

/* Appends s to *b with &, < and > escaped. */
static void xml_escaped(char *b, size_t cap, size_t *n, const char *s) {
    for (; *s && *n + 6 < cap; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (e) {
            memcpy(b + *n, e, strlen(e));
            *n += strlen(e);
        } else {
            b[(*n)++] = *s;
        }
    }
    b[*n] = 0;
}

static ia_status complete_upload(ia_s3_client *c, const char *bucket, const char *key,
                                 const char *query, const part_etag *parts, uint32_t n,
                                 ia_s3_put_report *rep) {
    /* room for every ETag fully escaped (5 bytes per character at worst) */
    size_t cap = 128 + (size_t)n * (sizeof parts[0].etag * 5 + 64), len = 0;
    char *body = ia_malloc(cap);
    response r = {0};
    ia_status st = IA_OK;
    if (!body)
        return IA_ENOMEM;
    len += (size_t)snprintf(body, cap, "<CompleteMultipartUpload>");
    for (uint32_t i = 0; i < n; i++) {
        len += (size_t)snprintf(body + len, cap - len, "<Part><PartNumber>%u</PartNumber><ETag>",
                                i + 1);
        xml_escaped(body, cap, &len, parts[i].etag);
        len += (size_t)snprintf(body + len, cap - len, "</ETag></Part>");
    }
    len += (size_t)snprintf(body + len, cap - len, "</CompleteMultipartUpload>");
    request q = {.method = "POST",
                 .bucket = bucket,
                 .key = key,
                 .query = query,
                 .body = body,
                 .body_len = len,
                 .content_type = "application/xml",
                 .what = "complete multipart upload of"};
    if ((st = call_buffered(c, &q, MAX_XML_BODY, &r)))
        goto done;
    /* S3 may answer 200 and still fail: the error is then in the body */
    char code[64], msg[512];
    if (r.len && ia_s3_xml_error(r.body, r.len, code, sizeof code, msg, sizeof msg) == IA_OK) {
        snprintf(c->last_code, sizeof c->last_code, "%s", code);
        st = ia_error_set(IA_EIO, "complete multipart upload of s3://%s/%s: %s: %s", bucket, key,
                          code, msg);
        goto done;
    }
    ia_error_clear();
    /* AWS names the root ...Result; moto 5 answers ...Response */
    char *etag = NULL;
    if (r.len &&
        (ia_s3_xml_find(r.body, r.len, "CompleteMultipartUploadResult/ETag", &etag) == IA_OK ||
         ia_s3_xml_find(r.body, r.len, "CompleteMultipartUploadResponse/ETag", &etag) == IA_OK)) {
        copy_field(rep->etag, sizeof rep->etag, etag, strlen(etag));
        free(etag);
    }
    ia_error_clear();
done:
    free(body);
    free(r.body);
    return st;
}

static ia_status upload_parts(ia_s3_client *c, const char *bucket, const char *key,
                              const char *upload_id, uint64_t size, uint64_t part_size,
                              ia_s3_read_fn read, void *ctx, ia_s3_put_report *rep) {
    ia_status st = IA_OK;
    uint32_t n_parts = (uint32_t)((size + part_size - 1) / part_size);
    char *id_query = NULL, *query = NULL;
    part_etag *etags = ia_calloc(n_parts ? n_parts : 1, sizeof *etags);
    uint8_t *buf = ia_malloc(part_size ? (size_t)part_size : 1);
    if (!etags || !buf) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = query_add(&id_query, "uploadId", upload_id)))
        goto done;
    for (uint32_t i = 0; i < n_parts; i++) {
        uint64_t off = (uint64_t)i * part_size;
        size_t len = (size_t)(size - off < part_size ? size - off : part_size);
        if ((st = read(ctx, off, buf, len))) {
            ia_error_prefix("s3://%s/%s: reading part %u at byte %llu", bucket, key, i + 1,
                            (unsigned long long)off);
            goto done;
        }
        char num[16];
        snprintf(num, sizeof num, "%u", i + 1);
        free(query);
        query = NULL;
        if ((st = query_add(&query, "partNumber", num)) ||
            (st = query_add(&query, "uploadId", upload_id)))
            goto done;
        request q = {.method = "PUT",
                     .bucket = bucket,
                     .key = key,
                     .query = query,
                     .body = buf,
                     .body_len = len,
                     .what = "upload part of"};
        response r;
        st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
        if (st == IA_OK && !r.info.etag[0])
            st = ia_error_set(IA_EPARSE, "s3://%s/%s: part %u was accepted without an ETag", bucket,
                              key, i + 1);
        if (st == IA_OK)
            memcpy(etags[i].etag, r.info.etag, sizeof etags[i].etag);
        free(r.body);
        if (st) {
            ia_error_prefix("part %u of %u", i + 1, n_parts);
            goto done;
        }
        rep->parts = i + 1;
    }
    st = complete_upload(c, bucket, key, id_query, etags, n_parts, rep);
done:
    free(query);
    free(id_query);
    free(etags);
    free(buf);
    return st;
}

static ia_status abort_upload(ia_s3_client *c, const char *bucket, const char *key,
                              const char *upload_id) {
    char *query = NULL;
    response r = {0};
    ia_status st = query_add(&query, "uploadId", upload_id);
    request q = {.method = "DELETE",
                 .bucket = bucket,
                 .key = key,
                 .query = query,
                 .what = "abort multipart upload of"};
    if (!st)
        st = call_buffered(c, &q, MAX_ERROR_BODY, &r);
    free(query);
    free(r.body);
    return st;
}

static ia_status put_multipart(ia_s3_client *c, const char *bucket, const char *key, uint64_t size,
                               uint64_t part_size, ia_s3_read_fn read, void *ctx,
                               ia_s3_put_report *rep) {
    char *upload_id = NULL;
    response r = {0};
    request q = {.method = "POST",
                 .bucket = bucket,
                 .key = key,
                 .query = "uploads=",
                 .body = "",
                 .what = "start multipart upload of"};
    ia_status st = call_buffered(c, &q, MAX_XML_BODY, &r);
    if (st) {
        free(r.body);
        return st;
    }
    if ((st = ia_s3_xml_find(r.body ? r.body : "", r.len, "InitiateMultipartUploadResult/UploadId",
                             &upload_id)) == IA_OK &&
        !*upload_id)
        st = ia_error_set(IA_EPARSE, "empty UploadId");
    free(r.body);
    if (st) {
        ia_error_prefix("start multipart upload of s3://%s/%s", bucket, key);
        free(upload_id);
        return st;
    }
    rep->multipart = true;
    st = upload_parts(c, bucket, key, upload_id, size, part_size, read, ctx, rep);
    if (st) {
        /* keep the cause; aborting overwrites the thread's message */
        char cause[1024];
        snprintf(cause, sizeof cause, "%s", ia_error_message());
        long status = c->last_status;
        char code[64];
        snprintf(code, sizeof code, "%s", c->last_code);
        ia_status ast = abort_upload(c, bucket, key, upload_id);
        if (ast == IA_OK) {
            rep->aborted = true;
            ia_error_set(st, "%s; the multipart upload was aborted", cause);
        } else {
            char why[512];
            snprintf(why, sizeof why, "%s", ia_error_message());
            ia_error_set(st, "%s; aborting the multipart upload (id %s) failed too: %s", cause,
                         upload_id, why);
        }
        c->last_status = status;
        snprintf(c->last_code, sizeof c->last_code, "%s", code);
    }
    free(upload_id);
    return st;
}

ia_status ia_s3_object_put_from(ia_s3_client *c, const char *bucket, const char *key, uint64_t size,
                                ia_s3_read_fn read, void *ctx, const ia_s3_put_options *opts,
                                ia_s3_put_report *report) {
    ia_s3_put_report dummy;
    ia_s3_put_report *rep = report ? report : &dummy;
    memset(rep, 0, sizeof *rep);
    ia_status st = check_key(bucket, key);
    if (st)
        return st;
    uint64_t threshold =
        opts && opts->multipart_threshold ? opts->multipart_threshold : DEFAULT_THRESHOLD;
    uint64_t part = opts && opts->part_size ? opts->part_size : DEFAULT_PART_SIZE;
    if (size < threshold || size == 0) {
        if (size > MAX_PART_SIZE || size > SIZE_MAX)
            return ia_error_set(IA_ERANGE,
                                "s3://%s/%s: %llu bytes is over S3's 5 GiB limit for one PUT "
                                "(lower the multipart threshold)",
                                bucket, key, (unsigned long long)size);
        uint8_t *buf = ia_malloc(size ? (size_t)size : 1);
        if (!buf)
            return IA_ENOMEM;
        if (size && (st = read(ctx, 0, buf, (size_t)size)))
            ia_error_prefix("s3://%s/%s", bucket, key);
        if (!st)
            st = ia_s3_object_put(c, bucket, key, buf, (size_t)size);
        free(buf);
        return st;
    }
    if (part < (size + MAX_PARTS - 1) / MAX_PARTS)
        part = (size + MAX_PARTS - 1) / MAX_PARTS;
    if (part > MAX_PART_SIZE || part > SIZE_MAX)
        return ia_error_set(IA_ERANGE, "s3://%s/%s: a part of %llu bytes is over S3's 5 GiB limit",
                            bucket, key, (unsigned long long)part);
    return put_multipart(c, bucket, key, size, part, read, ctx, rep);
}

typedef struct file_src {
    int fd;
    const char *path;
} file_src;

static ia_status read_file_at(void *ctx, uint64_t offset, void *buf, size_t len) {
    file_src *f = ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ia_error_set(IA_EIO, "%s: %s", f->path, strerror(errno));
        if (n == 0)
            return ia_error_set(IA_EIO, "%s: the file got shorter while it was being uploaded",
                                f->path);
        done += (size_t)n;
    }
    return IA_OK;
}

ia_status ia_s3_object_put_file(ia_s3_client *c, const char *bucket, const char *key,
                                const char *path, const ia_s3_put_options *opts,
                                ia_s3_put_report *report) {
    file_src f = {open(path, O_RDONLY | O_CLOEXEC), path};
    struct stat sb;
    if (f.fd < 0)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: %s", path,
                            strerror(errno));
    if (fstat(f.fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(f.fd);
        return ia_error_set(IA_EINVAL, "%s: not a regular file", path);
    }
    ia_status st =
        ia_s3_object_put_from(c, bucket, key, (uint64_t)sb.st_size, read_file_at, &f, opts, report);
    close(f.fd);
    return st;
}

/* ---- credentials from the environment -----------------------------------------------------------
 */

void ia_s3_env_free(ia_s3_env *env) {
    free(env->endpoint);
    free(env->region);
    free(env->access_key_id);
    free_secret(env->secret_access_key);
    free_secret(env->session_token);
    memset(env, 0, sizeof *env);
}

static char *env_dup(const char *a, const char *b) {
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? ia_strdup(v) : NULL;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = 0;
    return s;
}

/* The [profile] section of an AWS shared credentials file, which must be
 * private to its owner (it holds a secret). */
static ia_status read_credentials_file(const char *path, const char *profile, ia_s3_env *env) {
    ia_status st = IA_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FILE *f = NULL;
    struct stat sb;
    char line[4096];
    bool in = false, found = false;
    if (fd < 0)
        return ia_error_set(IA_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ia_error_set(IA_EINVAL, "%s: not a regular file", path);
    }
    if (sb.st_mode & 077) {
        close(fd);
        return ia_error_set(IA_EINVAL,
                            "%s: holds secrets but is open to group or others (mode %03o); "
                            "run 'chmod 600 %s'",
                            path, (unsigned)(sb.st_mode & 0777), path);
    }
    if (!(f = fdopen(fd, "r"))) {
        close(fd);
        return ia_error_set(IA_EIO, "%s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line);
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (e)
                *e = 0;
            in = strcmp(trim(s + 1), profile) == 0;
            found |= in;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq || *s == '#' || *s == ';')
            continue;
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        char **dst = strcmp(k, "aws_access_key_id") == 0       ? &env->access_key_id
                     : strcmp(k, "aws_secret_access_key") == 0 ? &env->secret_access_key
                     : strcmp(k, "aws_session_token") == 0     ? &env->session_token
                                                               : NULL;
        if (dst && !*dst && !(*dst = ia_strdup(v)))
            st = IA_ENOMEM;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (st == IA_OK && !found)
        st = ia_error_set(IA_ENOTFOUND, "%s: no [%s] profile", path, profile);
    return st;
}

ia_status ia_s3_config_from_env(ia_s3_env *env, ia_s3_config *cfg) {
    ia_status st = IA_OK;
    memset(env, 0, sizeof *env);
    memset(cfg, 0, sizeof *cfg);
    env->endpoint = env_dup("IA_S3_ENDPOINT", "AWS_ENDPOINT_URL");
    env->region = env_dup("AWS_REGION", "AWS_DEFAULT_REGION");
    env->access_key_id = env_dup("AWS_ACCESS_KEY_ID", NULL);
    env->secret_access_key = env_dup("AWS_SECRET_ACCESS_KEY", NULL);
    if (env->access_key_id && env->secret_access_key) {
        env->session_token = env_dup("AWS_SESSION_TOKEN", NULL);
    } else {
        free(env->access_key_id);
        free_secret(env->secret_access_key);
        env->access_key_id = env->secret_access_key = NULL;
        char path[4096];
        const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
        const char *profile = getenv("AWS_PROFILE");
        if (!file || !*file) {
            snprintf(path, sizeof path, "%s/.aws/credentials", home ? home : "");
            file = path;
        }
        st = read_credentials_file(file, profile && *profile ? profile : "default", env);
        if (st == IA_ENOTFOUND && !getenv("AWS_SHARED_CREDENTIALS_FILE"))
            st = ia_error_set(IA_ENOTFOUND,
                              "s3: no credentials: set AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, or write them to %s (mode 600)",
                              file);
        else if (st == IA_OK && (!env->access_key_id || !env->secret_access_key))
            st = ia_error_set(IA_ENOTFOUND,
                              "%s: the profile lacks aws_access_key_id or aws_secret_access_key",
                              file);
    }
    if (st) {
        ia_s3_env_free(env);
        return st;
    }
    cfg->endpoint = env->endpoint;
    cfg->region = env->region;
    cfg->access_key_id = env->access_key_id;
    cfg->secret_access_key = env->secret_access_key;
    cfg->session_token = env->session_token;
    return IA_OK;
}
