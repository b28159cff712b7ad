/*
 * s3: an Amazon S3 client (and any S3-compatible store: MinIO, Ceph RGW,
 * moto) over libcurl, with AWS Signature Version 4 request signing.
 *
 * Two layers. ia_sigv4_* is the signing algorithm on its own (canonical
 * request, string to sign, signature), usable for any AWS service and
 * checked against AWS's published examples. ia_s3_* is the client:
 * PutObject, GetObject (with byte ranges), HeadObject, DeleteObject,
 * ListObjectsV2 (paged with continuation tokens), CreateBucket, and
 * multipart upload for large objects, which aborts the upload when any step
 * fails so that no half-written parts are left behind to be billed.
 *
 * Credentials are borrowed strings the caller got from the environment or
 * a file with strict permissions (ia_s3_config_from_env); the secret key is
 * used only to derive the signing key and never appears in a message, a log
 * line or an error. One client is one libcurl handle (connections are kept
 * alive between calls) and must be used by one thread at a time.
 */
#ifndef IA_S3_H
#define IA_S3_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Signature Version 4 ------------------------------------------------ */

typedef struct ia_sigv4_header {
    const char *name, *value; /* any case; values are trimmed and inner spaces folded */
} ia_sigv4_header;

/* What gets signed. path is the URI path already URI-encoded once (S3 does
 * not encode it a second time, unlike other services); query is the raw
 * query string with keys and values already encoded ("a=1&b", NULL or ""
 * for none). headers must include host and x-amz-date; all of them are
 * signed. payload_hash is the hex SHA-256 of the body or "UNSIGNED-PAYLOAD". */
typedef struct ia_sigv4_request {
    const char *method, *path, *query;
    const ia_sigv4_header *headers;
    size_t n_headers;
    const char *payload_hash;
} ia_sigv4_request;

typedef struct ia_sigv4_credentials {
    const char *access_key_id, *secret_access_key;
    const char *region, *service; /* "us-east-1", "s3" */
} ia_sigv4_credentials;

/* The canonical request (*out, malloc'd, caller frees) and, when
 * signed_headers is not NULL, the ';'-joined lowercase header names
 * (malloc'd too). IA_EINVAL for a header name that is empty or repeated. */
ia_status ia_sigv4_canonical_request(const ia_sigv4_request *req, char **out,
                                     char **signed_headers);
/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of canonical>" where
 * scope is date/region/service/aws4_request; *out malloc'd. amz_date is
 * the ISO 8601 basic form, 20130524T000000Z. */
ia_status ia_sigv4_string_to_sign(const char *amz_date, const ia_sigv4_credentials *cred,
                                  const char *canonical_request, char **out);
/* The whole Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=..."), malloc'd; signature (may be NULL)
 * receives the 64 hex digits. */
ia_status ia_sigv4_authorization(const ia_sigv4_request *req, const ia_sigv4_credentials *cred,
                                 const char *amz_date, char **out, char signature[65]);
/* URI-encodes n bytes of s as SigV4 wants it: unreserved characters
 * (A-Z a-z 0-9 - . _ ~) as they are, '/' as it is when keep_slash, every
 * other byte as %XX with uppercase hex. *out malloc'd. */
ia_status ia_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, char **out);
/* Lowercase hex SHA-256 of n bytes. */
void ia_sigv4_sha256_hex(const void *data, size_t n, char out[65]);
/* The current UTC time as 20130524T000000Z. */
void ia_sigv4_amz_date_now(char out[17]);

/* ---- the S3 client ------------------------------------------------------- */

/* Everything is borrowed during ia_s3_client_create, which copies it. */
typedef struct ia_s3_config {
    const char *endpoint; /* "http://127.0.0.1:9000"; NULL: https://s3.REGION.amazonaws.com */
    const char *region;   /* NULL: us-east-1 */
    const char *access_key_id, *secret_access_key;
    const char *session_token;         /* sent as x-amz-security-token; NULL when none */
    bool path_style;                   /* /bucket/key URLs; always on with a custom endpoint */
    long connect_timeout_s, timeout_s; /* 0: 10 s and no limit on the whole call */
} ia_s3_config;

/* Holds the strings ia_s3_config_from_env found (owned; free with
 * ia_s3_env_free). */
typedef struct ia_s3_env {
    char *endpoint, *region, *access_key_id, *secret_access_key, *session_token;
} ia_s3_env;

/* Fills *env (and *cfg pointing into it) from the environment: endpoint
 * from IA_S3_ENDPOINT or AWS_ENDPOINT_URL, region from AWS_REGION or
 * AWS_DEFAULT_REGION (us-east-1), keys from AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or else from the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 * profile AWS_PROFILE or "default"), which must not be readable or
 * writable by group or others. IA_ENOTFOUND when no keys are found. */
ia_status ia_s3_config_from_env(ia_s3_env *env, ia_s3_config *cfg);
void ia_s3_env_free(ia_s3_env *env);

typedef struct ia_s3_client ia_s3_client;

/* A client; owned by the caller, free with ia_s3_client_destroy. IA_EINVAL
 * for a missing key or an endpoint that is not an http(s) URL. */
ia_status ia_s3_client_create(const ia_s3_config *cfg, ia_s3_client **out);
void ia_s3_client_destroy(ia_s3_client *c);
/* After a failed call: the HTTP status (0 when no answer came) and S3's
 * error code ("NoSuchKey", "SignatureDoesNotMatch"; "" when none).
 * Borrowed until the next call on the client. */
const char *ia_s3_client_last_error(const ia_s3_client *c, long *http_status);

/* Object metadata from HEAD, GET or a listing. */
typedef struct ia_s3_object_info {
    uint64_t size; /* the object's size (from Content-Range for a ranged GET) */
    char etag[80]; /* as sent, quotes included; multipart ETags end in -N */
    char last_modified[40];
} ia_s3_object_info;

ia_status ia_s3_bucket_create(ia_s3_client *c, const char *bucket);
/* Deletes an empty bucket. */
ia_status ia_s3_bucket_delete(ia_s3_client *c, const char *bucket);

/* One PUT of len bytes from memory. */
ia_status ia_s3_object_put(ia_s3_client *c, const char *bucket, const char *key, const void *data,
                           size_t len);

/* Reads exactly len bytes at offset into buf; any status other than IA_OK
 * fails the upload (with its message). */
typedef ia_status (*ia_s3_read_fn)(void *ctx, uint64_t offset, void *buf, size_t len);

typedef struct ia_s3_put_options {
    uint64_t multipart_threshold; /* objects this big or bigger go multipart; 0: 16 MiB */
    uint64_t part_size;           /* 0: 8 MiB; grown when size / part_size > 10000 parts */
} ia_s3_put_options;

typedef struct ia_s3_put_report {
    bool multipart;
    uint32_t parts; /* parts uploaded (0 for a single PUT) */
    bool aborted;   /* a multipart upload failed and was aborted */
    char etag[80];
} ia_s3_put_report;

/* Uploads size bytes that read() supplies: one PUT below the threshold,
 * else a multipart upload (CreateMultipartUpload, UploadPart with each
 * part's SHA-256 signed, CompleteMultipartUpload). When any part or the
 * completion fails, the upload is aborted (AbortMultipartUpload) and the
 * error says so; report (may be NULL) says what happened. Memory is one
 * part (or the whole object below the threshold). */
ia_status ia_s3_object_put_from(ia_s3_client *c, const char *bucket, const char *key, uint64_t size,
                                ia_s3_read_fn read, void *ctx, const ia_s3_put_options *opts,
                                ia_s3_put_report *report);
/* The same from a file. */
ia_status ia_s3_object_put_file(ia_s3_client *c, const char *bucket, const char *key,
                                const char *path, const ia_s3_put_options *opts,
                                ia_s3_put_report *report);

/* Called with the body of a successful GET as it arrives. */
typedef ia_status (*ia_s3_write_fn)(void *ctx, const void *data, size_t len);

/* GetObject: bytes first..last (inclusive) when range is set (last =
 * UINT64_MAX: to the end), else the whole object, handed to write(). info
 * (may be NULL) receives the metadata. IA_ENOTFOUND for a missing key or
 * bucket. A write() failure stops the transfer with its status. */
ia_status ia_s3_object_get(ia_s3_client *c, const char *bucket, const char *key, bool range,
                           uint64_t first, uint64_t last, ia_s3_write_fn write, void *ctx,
                           ia_s3_object_info *info);
/* HeadObject; IA_ENOTFOUND when there is no such object. */
ia_status ia_s3_object_head(ia_s3_client *c, const char *bucket, const char *key,
                            ia_s3_object_info *info);
/* DeleteObject (S3 answers 204 whether or not the key existed). */
ia_status ia_s3_object_delete(ia_s3_client *c, const char *bucket, const char *key);

/* One page of ListObjectsV2. Owned by the caller; free with
 * ia_s3_list_page_free. */
typedef struct ia_s3_list_entry {
    char *key;
    ia_s3_object_info info;
} ia_s3_list_entry;

typedef struct ia_s3_list_page {
    ia_s3_list_entry *entries;
    size_t n;
    char **prefixes; /* CommonPrefixes when a delimiter was given */
    size_t n_prefixes;
    bool truncated;
    char *next_token; /* NextContinuationToken, NULL when none */
} ia_s3_list_page;

/* Fetches one page: prefix, delimiter and token may be NULL; max_keys 0
 * lets the server choose (1000). */
ia_status ia_s3_list_page_get(ia_s3_client *c, const char *bucket, const char *prefix,
                              const char *delimiter, uint32_t max_keys, const char *token,
                              ia_s3_list_page *out);
void ia_s3_list_page_free(ia_s3_list_page *page);
/* Parses a ListBucketResult document (exposed for the fuzzer and tests).
 * IA_EPARSE for malformed XML or a page that is truncated without a token. */
ia_status ia_s3_list_page_parse(const char *xml, size_t len, ia_s3_list_page *out);

/* Every object under prefix, page after page; fn's non-OK status stops
 * the walk and is returned. */
typedef ia_status (*ia_s3_list_fn)(void *ctx, const ia_s3_list_entry *entry);
ia_status ia_s3_list(ia_s3_client *c, const char *bucket, const char *prefix, uint32_t page_size,
                     ia_s3_list_fn fn, void *ctx);

/* The number of multipart uploads started under prefix and neither
 * completed nor aborted (ListMultipartUploads, first page). */
ia_status ia_s3_multipart_pending(ia_s3_client *c, const char *bucket, const char *prefix,
                                  size_t *count);

/* Splits "s3://bucket/key" (key may be empty or absent) into malloc'd
 * strings; IA_EINVAL naming the argument otherwise. */
ia_status ia_s3_url_parse(const char *url, char **bucket, char **key);

#ifdef __cplusplus
}
#endif

#endif /* IA_S3_H */
