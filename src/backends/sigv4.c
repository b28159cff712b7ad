/*
 * AWS Signature Version 4: how every S3 request proves who sent it.
 *
 * A request is reduced to a canonical text (method, encoded path, sorted
 * query, lowercase sorted headers with trimmed values, the signed header
 * names and the payload's SHA-256), hashed into a "string to sign" together
 * with the time and the credential scope (date/region/service), and signed
 * with HMAC-SHA256 under a key derived from the secret by four HMACs over
 * the date, region, service and "aws4_request". The server repeats the
 * computation; any byte of difference (a header value with an extra space,
 * a query parameter out of order) is a SignatureDoesNotMatch.
 *
 * Everything here is pure string work over OpenSSL's SHA-256 and HMAC; the
 * HTTP client in s3.c decides what goes into a request. The derived key and
 * the secret live only in local buffers, which are wiped before returning.
 */
#include "ia/s3.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a growable string ------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    size_t need;
    if (!ia_size_add(b->n, n + 1, &need)) {
        b->failed = true;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_chr(sbuf *b, char c) { sb_add(b, &c, 1); }

/* Hands the string over (*out) or fails with IA_ENOMEM. */
static ia_status sb_finish(sbuf *b, char **out) {
    if (b->failed || !b->p) {
        free(b->p);
        *out = NULL;
        return ia_error_set(IA_ENOMEM, "sigv4: out of memory building a request");
    }
    *out = b->p;
    return IA_OK;
}

/* ---- hashing -------------------------------------------------------------------- */

static void hex(const unsigned char *d, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

void ia_sigv4_sha256_hex(const void *data, size_t n, char out[65]) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, n, d);
    hex(d, sizeof d, out);
}

static ia_status hmac(const unsigned char *key, size_t key_len, const char *msg,
                      unsigned char out[32]) {
    unsigned int len = 32;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &len))
        return ia_error_set(IA_EINTERNAL, "sigv4: HMAC-SHA256 failed in OpenSSL");
    return IA_OK;
}

void ia_sigv4_amz_date_now(char out[17]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- encoding ------------------------------------------------------------------- */

static bool unreserved(unsigned char c) {
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void encode_into(sbuf *b, const char *s, size_t n, bool keep_slash) {
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 128 && unreserved(c)) || (keep_slash && c == '/')) {
            sb_chr(b, (char)c);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            sb_add(b, e, 3);
        }
    }
}

ia_status ia_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, char **out) {
    sbuf b = {0};
    sb_add(&b, "", 0);
    encode_into(&b, s, n, keep_slash);
    return sb_finish(&b, out);
}

/* ---- canonical request -------------------------------------------------------------- */

typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_cmp(span a, span b) {
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

typedef struct qparam {
    span key, value;
} qparam;

static int qparam_cmp(const void *a, const void *b) {
    const qparam *x = a, *y = b;
    int c = span_cmp(x->key, y->key);
    return c ? c : span_cmp(x->value, y->value);
}

/* "b=2&a=1&c" -> "a=1&b=2&c=": pairs sorted by key, then value, by byte. */
static ia_status canonical_query(sbuf *b, const char *query) {
    if (!query || !*query)
        return IA_OK;
    size_t n = 1;
    for (const char *p = query; *p; p++)
        n += *p == '&';
    qparam *ps = ia_malloc_array(n, sizeof *ps);
    if (!ps)
        return IA_ENOMEM;
    size_t k = 0;
    for (const char *p = query;;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            ps[k].key = (span){p, eq ? (size_t)(eq - p) : len};
            ps[k].value = eq ? (span){eq + 1, len - (size_t)(eq + 1 - p)} : (span){"", 0};
            k++;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    qsort(ps, k, sizeof *ps, qparam_cmp);
    for (size_t i = 0; i < k; i++) {
        if (i)
            sb_chr(b, '&');
        sb_add(b, ps[i].key.p, ps[i].key.n);
        sb_chr(b, '=');
        sb_add(b, ps[i].value.p, ps[i].value.n);
    }
    free(ps);
    return IA_OK;
}

typedef struct hdr {
    char *name; /* lowercased copy */
    const char *value;
} hdr;

static int hdr_cmp(const void *a, const void *b) {
    return strcmp(((const hdr *)a)->name, ((const hdr *)b)->name);
}

/* A header value as SigV4 wants it: leading and trailing spaces removed,
 * runs of spaces inside folded to one. */
static void trimmed_value(sbuf *b, const char *v) {
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            sb_chr(b, ' ');
        space = false;
        sb_chr(b, *v);
    }
}

ia_status ia_sigv4_canonical_request(const ia_sigv4_request *req, char **out,
                                     char **signed_headers) {
    ia_status st = IA_OK;
    sbuf b = {0}, sh = {0};
    hdr *hs = NULL;
    size_t n = 0;
    *out = NULL;
    if (signed_headers)
        *signed_headers = NULL;
    if (!req->method || !req->path || !req->payload_hash)
        return ia_error_set(IA_EINVAL,
                            "sigv4: a request needs a method, a path and a payload hash");
    if (!(hs = ia_calloc(req->n_headers ? req->n_headers : 1, sizeof *hs)))
        return IA_ENOMEM;
    for (; n < req->n_headers; n++) {
        const char *name = req->headers[n].name;
        if (!name || !*name || !req->headers[n].value) {
            st = ia_error_set(IA_EINVAL, "sigv4: header %zu has no name or value", n);
            goto fail;
        }
        if (!(hs[n].name = ia_strdup(name))) {
            st = IA_ENOMEM;
            goto fail;
        }
        for (char *p = hs[n].name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        hs[n].value = req->headers[n].value;
    }
    qsort(hs, n, sizeof *hs, hdr_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(hs[i - 1].name, hs[i].name) == 0) {
            st = ia_error_set(IA_EINVAL, "sigv4: header '%s' given twice", hs[i].name);
            goto fail;
        }

    sb_str(&b, req->method);
    sb_chr(&b, '\n');
    sb_str(&b, *req->path ? req->path : "/");
    sb_chr(&b, '\n');
    if ((st = canonical_query(&b, req->query)))
        goto fail;
    sb_chr(&b, '\n');
    for (size_t i = 0; i < n; i++) {
        sb_str(&b, hs[i].name);
        sb_chr(&b, ':');
        trimmed_value(&b, hs[i].value);
        sb_chr(&b, '\n');
        if (i)
            sb_chr(&sh, ';');
        sb_str(&sh, hs[i].name);
    }
    sb_add(&sh, "", 0);
    sb_chr(&b, '\n');
    sb_str(&b, sh.p ? sh.p : "");
    sb_chr(&b, '\n');
    sb_str(&b, req->payload_hash);
    if ((st = sb_finish(&b, out)))
        goto fail_sh;
    if (signed_headers) {
        if ((st = sb_finish(&sh, signed_headers))) {
            free(*out);
            *out = NULL;
        }
    } else {
        free(sh.p);
    }
    for (size_t i = 0; i < n; i++)
        free(hs[i].name);
    free(hs);
    return st;
fail:
    free(b.p);
fail_sh:
    free(sh.p);
    for (size_t i = 0; i < n; i++)
        free(hs[i].name);
    free(hs);
    return st;
}

/* ---- string to sign and signature ----------------------------------------------------- */

static bool valid_amz_date(const char *d) {
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return false;
    return true;
}

static ia_status check_cred(const ia_sigv4_credentials *cred, const char *amz_date) {
    if (!valid_amz_date(amz_date))
        return ia_error_set(IA_EINVAL, "sigv4: '%s' is not a date like 20130524T000000Z",
                            amz_date ? amz_date : "(null)");
    if (!cred->region || !*cred->region || !cred->service || !*cred->service)
        return ia_error_set(IA_EINVAL, "sigv4: the credential scope needs a region and a service");
    if (!cred->access_key_id || !*cred->access_key_id || !cred->secret_access_key ||
        !*cred->secret_access_key)
        return ia_error_set(IA_EINVAL, "sigv4: no access key id or secret access key");
    for (const char *p = cred->access_key_id; *p; p++)
        if (!isalnum((unsigned char)*p))
            return ia_error_set(IA_EINVAL, "sigv4: the access key id has a character other than "
                                           "letters and digits");
    return IA_OK;
}

ia_status ia_sigv4_string_to_sign(const char *amz_date, const ia_sigv4_credentials *cred,
                                  const char *canonical_request, char **out) {
    ia_status st;
    *out = NULL;
    if ((st = check_cred(cred, amz_date)))
        return st;
    char digest[65];
    ia_sigv4_sha256_hex(canonical_request, strlen(canonical_request), digest);
    sbuf b = {0};
    sb_str(&b, "AWS4-HMAC-SHA256\n");
    sb_str(&b, amz_date);
    sb_chr(&b, '\n');
    sb_add(&b, amz_date, 8);
    sb_chr(&b, '/');
    sb_str(&b, cred->region);
    sb_chr(&b, '/');
    sb_str(&b, cred->service);
    sb_str(&b, "/aws4_request\n");
    sb_str(&b, digest);
    return sb_finish(&b, out);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static ia_status signing_key(const ia_sigv4_credentials *cred, const char *amz_date,
                             unsigned char key[32]) {
    ia_status st = IA_OK;
    size_t slen = strlen(cred->secret_access_key);
    unsigned char *k0 = ia_malloc(slen + 5);
    char date[9];
    if (!k0)
        return IA_ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, cred->secret_access_key, slen);
    memcpy(date, amz_date, 8);
    date[8] = 0;
    if ((st = hmac(k0, slen + 4, date, key)) || (st = hmac(key, 32, cred->region, key)) ||
        (st = hmac(key, 32, cred->service, key)) || (st = hmac(key, 32, "aws4_request", key)))
        OPENSSL_cleanse(key, 32);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    return st;
}

ia_status ia_sigv4_authorization(const ia_sigv4_request *req, const ia_sigv4_credentials *cred,
                                 const char *amz_date, char **out, char signature[65]) {
    ia_status st;
    char *canonical = NULL, *signed_headers = NULL, *sts = NULL;
    unsigned char key[32], sig[32];
    char sig_hex[65];
    *out = NULL;
    if ((st = check_cred(cred, amz_date)))
        return st;
    if ((st = ia_sigv4_canonical_request(req, &canonical, &signed_headers)))
        goto done;
    if ((st = ia_sigv4_string_to_sign(amz_date, cred, canonical, &sts)))
        goto done;
    if ((st = signing_key(cred, amz_date, key)))
        goto done;
    st = hmac(key, sizeof key, sts, sig);
    OPENSSL_cleanse(key, sizeof key);
    if (st)
        goto done;
    hex(sig, sizeof sig, sig_hex);
    if (signature)
        memcpy(signature, sig_hex, 65);
    sbuf b = {0};
    sb_str(&b, "AWS4-HMAC-SHA256 Credential=");
    sb_str(&b, cred->access_key_id);
    sb_chr(&b, '/');
    sb_add(&b, amz_date, 8);
    sb_chr(&b, '/');
    sb_str(&b, cred->region);
    sb_chr(&b, '/');
    sb_str(&b, cred->service);
    sb_str(&b, "/aws4_request, SignedHeaders=");
    sb_str(&b, signed_headers);
    sb_str(&b, ", Signature=");
    sb_str(&b, sig_hex);
    st = sb_finish(&b, out);
done:
    free(canonical);
    free(signed_headers);
    free(sts);
    return st;
}
