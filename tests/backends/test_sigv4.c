/*
 * SigV4 against AWS's published S3 examples ("Examples of Signature
 * Calculations" in the S3 API reference, AWS4-HMAC-SHA256 with the example
 * key AKIAIOSFODNN7EXAMPLE): GET Object with a range, PUT Object, GET
 * Bucket Lifecycle and GET Bucket (list) — the canonical request, the
 * string to sign and the signature of the first one, the signatures of the
 * others. Then URI encoding (spaces, UTF-8, '~', '/', reserved characters),
 * query sorting, header value trimming, the s3:// URL parser, and the
 * bounded XML scanner on good and hostile documents.
 */
#include "ia/s3.h"

#include <stdlib.h>
#include <string.h>

#include "backends/s3_xml.h"
#include "test.h"

static const char *EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const ia_sigv4_credentials CRED = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"};
static const char *DATE = "20130524T000000Z";

TEST(aws_get_object_example) {
    ia_sigv4_header hs[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", EMPTY_SHA},
        {"x-amz-date", DATE},
    };
    ia_sigv4_request req = {"GET", "/test.txt", NULL, hs, 4, EMPTY_SHA};
    char *canonical = NULL, *signed_headers = NULL, *sts = NULL, *auth = NULL, sig[65];
    CHECK_OK(ia_sigv4_canonical_request(&req, &canonical, &signed_headers));
    CHECK(canonical && strcmp(canonical, "GET\n"
                                         "/test.txt\n"
                                         "\n"
                                         "host:examplebucket.s3.amazonaws.com\n"
                                         "range:bytes=0-9\n"
                                         "x-amz-content-sha256:"
                                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                                         "7852b855\n"
                                         "x-amz-date:20130524T000000Z\n"
                                         "\n"
                                         "host;range;x-amz-content-sha256;x-amz-date\n"
                                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                                         "7852b855") == 0);
    CHECK(signed_headers &&
          strcmp(signed_headers, "host;range;x-amz-content-sha256;x-amz-date") == 0);
    CHECK_OK(ia_sigv4_string_to_sign(DATE, &CRED, canonical, &sts));
    CHECK(sts &&
          strcmp(sts, "AWS4-HMAC-SHA256\n"
                      "20130524T000000Z\n"
                      "20130524/us-east-1/s3/aws4_request\n"
                      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972") == 0);
    CHECK_OK(ia_sigv4_authorization(&req, &CRED, DATE, &auth, sig));
    CHECK_MSG(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0,
              "signature %s", sig);
    CHECK(auth &&
          strcmp(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                       "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
                       "x-amz-content-sha256;x-amz-date, Signature="
                       "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0);
    /* the secret never shows up in what is sent */
    CHECK(auth && !strstr(auth, "wJalrXUtnFEMI"));
    free(canonical);
    free(signed_headers);
    free(sts);
    free(auth);

    /* one byte different anywhere, a different signature */
    ia_sigv4_credentials wrong = CRED;
    wrong.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEX";
    CHECK_OK(ia_sigv4_authorization(&req, &wrong, DATE, &auth, sig));
    CHECK(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") != 0);
    free(auth);
}

TEST(aws_put_object_example) {
    const char *body = "Welcome to Amazon S3.";
    char hash[65], *auth = NULL, *path = NULL, sig[65];
    ia_sigv4_sha256_hex(body, strlen(body), hash);
    CHECK(strcmp(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072") == 0);
    CHECK_OK(ia_sigv4_uri_encode("/test$file.text", 15, true, &path));
    CHECK(path && strcmp(path, "/test%24file.text") == 0);
    ia_sigv4_header hs[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", DATE},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", hash},
    };
    ia_sigv4_request req = {"PUT", path, "", hs, 5, hash};
    CHECK_OK(ia_sigv4_authorization(&req, &CRED, DATE, &auth, sig));
    CHECK_MSG(strcmp(sig, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd") == 0,
              "signature %s", sig);
    CHECK(auth && strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
                               "x-amz-storage-class,"));
    free(auth);
    free(path);
}

TEST(aws_lifecycle_and_list_examples) {
    ia_sigv4_header hs[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-date", DATE},
        {"x-amz-content-sha256", EMPTY_SHA},
    };
    char *auth = NULL, *canonical = NULL, sig[65];
    ia_sigv4_request lifecycle = {"GET", "/", "lifecycle", hs, 3, EMPTY_SHA};
    CHECK_OK(ia_sigv4_canonical_request(&lifecycle, &canonical, NULL));
    CHECK(canonical && strncmp(canonical, "GET\n/\nlifecycle=\n", 17) == 0);
    free(canonical);
    CHECK_OK(ia_sigv4_authorization(&lifecycle, &CRED, DATE, &auth, sig));
    CHECK_MSG(strcmp(sig, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543") == 0,
              "signature %s", sig);
    free(auth);
    /* the query as a client might write it, out of order: sorted when signed */
    ia_sigv4_request list = {"GET", "/", "prefix=J&max-keys=2", hs, 3, EMPTY_SHA};
    CHECK_OK(ia_sigv4_canonical_request(&list, &canonical, NULL));
    CHECK(canonical && strncmp(canonical, "GET\n/\nmax-keys=2&prefix=J\n", 26) == 0);
    free(canonical);
    CHECK_OK(ia_sigv4_authorization(&list, &CRED, DATE, &auth, sig));
    CHECK_MSG(strcmp(sig, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == 0,
              "signature %s", sig);
    free(auth);
}

static void check_encode(const char *in, bool keep_slash, const char *want) {
    char *out = NULL;
    CHECK_OK(ia_sigv4_uri_encode(in, strlen(in), keep_slash, &out));
    CHECK_MSG(out && strcmp(out, want) == 0, "encode('%s') = '%s', wanted '%s'", in,
              out ? out : "(null)", want);
    free(out);
}

TEST(uri_encoding) {
    check_encode("my file.txt", true, "my%20file.txt");
    check_encode("a/b/c", true, "a/b/c");
    check_encode("a/b/c", false, "a%2Fb%2Fc");
    check_encode("~user-name_1.0", true, "~user-name_1.0");
    check_encode("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac", true, "caf%C3%A9/%E6%97%A5%E6%9C%AC");
    check_encode("a+b=c&d?e#f%g", true, "a%2Bb%3Dc%26d%3Fe%23f%25g");
    check_encode("*!'()$,;:@", true, "%2A%21%27%28%29%24%2C%3B%3A%40");
    check_encode("", true, "");
    /* a NUL inside the span is a byte like any other */
    char *out = NULL;
    CHECK_OK(ia_sigv4_uri_encode("a\0b", 3, true, &out));
    CHECK(out && strcmp(out, "a%00b") == 0);
    free(out);
}

TEST(query_sorting_and_header_values) {
    ia_sigv4_header hs[] = {
        {"X-Amz-Meta-Note", "  two   spaces\tand a tab  "},
        {"HOST", "h"},
        {"x-amz-date", DATE},
    };
    ia_sigv4_request req = {"GET", "/k", "b=2&a=3&a=1&c&A=0", hs, 3, "UNSIGNED-PAYLOAD"};
    char *canonical = NULL, *sh = NULL;
    CHECK_OK(ia_sigv4_canonical_request(&req, &canonical, &sh));
    CHECK_MSG(canonical && strcmp(canonical, "GET\n/k\nA=0&a=1&a=3&b=2&c=\n"
                                             "host:h\n"
                                             "x-amz-date:20130524T000000Z\n"
                                             "x-amz-meta-note:two spaces and a tab\n"
                                             "\n"
                                             "host;x-amz-date;x-amz-meta-note\n"
                                             "UNSIGNED-PAYLOAD") == 0,
              "%s", canonical ? canonical : "(null)");
    free(canonical);
    free(sh);
    /* a header given twice (in any case) is refused, not silently signed once */
    ia_sigv4_header dup[] = {{"host", "a"}, {"Host", "b"}};
    ia_sigv4_request bad = {"GET", "/", NULL, dup, 2, EMPTY_SHA};
    CHECK_ERR(ia_sigv4_canonical_request(&bad, &canonical, NULL), IA_EINVAL, "given twice");
    /* malformed dates and keys are refused */
    char *auth = NULL;
    CHECK_ERR(ia_sigv4_authorization(&req, &CRED, "2013-05-24", &auth, NULL), IA_EINVAL,
              "not a date");
    ia_sigv4_credentials odd = CRED;
    odd.access_key_id = "AKIA/../x";
    CHECK_ERR(ia_sigv4_authorization(&req, &odd, DATE, &auth, NULL), IA_EINVAL, "access key id");
    CHECK(auth == NULL);
}

TEST(s3_urls) {
    char *b = NULL, *k = NULL;
    CHECK_OK(ia_s3_url_parse("s3://my-bucket/dir/file name.bin", &b, &k));
    CHECK(b && k && strcmp(b, "my-bucket") == 0 && strcmp(k, "dir/file name.bin") == 0);
    free(b);
    free(k);
    CHECK_OK(ia_s3_url_parse("s3://bucket", &b, &k));
    CHECK(b && k && strcmp(b, "bucket") == 0 && strcmp(k, "") == 0);
    free(b);
    free(k);
    CHECK_ERR(ia_s3_url_parse("http://bucket/key", &b, &k), IA_EINVAL, "not an s3://");
    CHECK_ERR(ia_s3_url_parse("s3://Bucket/key", &b, &k), IA_EINVAL, "lowercase");
    CHECK_ERR(ia_s3_url_parse("s3://ab/key", &b, &k), IA_EINVAL, "3 to 63");
}

TEST(client_config_errors) {
    ia_s3_client *c = NULL;
    ia_s3_config cfg = {.endpoint = "ftp://x", .access_key_id = "AK", .secret_access_key = "S"};
    CHECK_ERR(ia_s3_client_create(&cfg, &c), IA_EINVAL, "not an http");
    cfg.endpoint = "http://host:1/path";
    CHECK_ERR(ia_s3_client_create(&cfg, &c), IA_EINVAL, "no path");
    cfg.endpoint = "http://127.0.0.1:9";
    cfg.region = "US EAST";
    CHECK_ERR(ia_s3_client_create(&cfg, &c), IA_EINVAL, "region");
    cfg.region = NULL;
    cfg.secret_access_key = NULL;
    CHECK_ERR(ia_s3_client_create(&cfg, &c), IA_EINVAL, "no credentials");
    CHECK(c == NULL);
}

/* ---- the XML scanner ----------------------------------------------------------------- */

TEST(list_page_parse) {
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>p/a&amp;b &lt;1&gt;</Key><LastModified>2013-05-24T00:00:00.000Z"
        "</LastModified><ETag>&quot;abc&quot;</ETag><Size>10</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>p/caf&#233;&#x65E5;</Key><Size>18446744073709551615</Size></Contents>"
        "<CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>"
        "<NextContinuationToken><![CDATA[tok/+=]]></NextContinuationToken>"
        "</ListBucketResult>";
    ia_s3_list_page page;
    CHECK_OK(ia_s3_list_page_parse(xml, strlen(xml), &page));
    CHECK_EQ_INT(page.n, 2);
    if (page.n == 2) {
        CHECK(strcmp(page.entries[0].key, "p/a&b <1>") == 0);
        CHECK_EQ_INT(page.entries[0].info.size, 10);
        CHECK(strcmp(page.entries[0].info.etag, "\"abc\"") == 0);
        CHECK(strcmp(page.entries[1].key, "p/caf\xc3\xa9\xe6\x97\xa5") == 0);
        CHECK(page.entries[1].info.size == UINT64_MAX);
    }
    CHECK(page.truncated);
    CHECK(page.next_token && strcmp(page.next_token, "tok/+=") == 0);
    CHECK(page.n_prefixes == 1 && strcmp(page.prefixes[0], "p/d/") == 0);
    ia_s3_list_page_free(&page);
}

TEST(xml_refusals) {
    ia_s3_list_page page;
    static const struct {
        const char *xml, *why;
    } bad[] = {
        {"", "no root"},
        {"<ListBucketResult>", "ends inside"},
        {"<ListBucketResult></Other>", "does not match"},
        {"<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult/>", "DOCTYPE"},
        {"<ListBucketResult>&a;</ListBucketResult>", "unknown entity"},
        {"<ListBucketResult>&#0;</ListBucketResult>", "character reference"},
        {"<ListBucketResult>&#xD800;</ListBucketResult>", "character reference"},
        {"<ListBucketResult/><ListBucketResult/>", "second root"},
        {"junk<ListBucketResult/>", "outside the root"},
        {"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
         "without a <Key>"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
         "not a number"},
        {"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
         "NextContinuationToken"},
        {"<Error><Code>AccessDenied</Code></Error>", "not in a <ListBucketResult>"},
        {"<ListBucketResult a=\"x></ListBucketResult>", "unterminated attribute"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_ERR(ia_s3_list_page_parse(bad[i].xml, strlen(bad[i].xml), &page), IA_EPARSE,
                  bad[i].why);
    /* a NUL byte, even in an element name */
    CHECK_ERR(ia_s3_xml_walk("<\0\0R></\0\0R>", 10, NULL, NULL), IA_EPARSE, "NUL byte");
    /* nesting and text are bounded */
    char deep[40 * 3 + 40 * 4 + 1], *p = deep;
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "<a>");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "</a>");
    CHECK_ERR(ia_s3_xml_walk(deep, strlen(deep), NULL, NULL), IA_EPARSE, "nested too deep");
    size_t n = IA_S3_XML_MAX_TEXT + 64;
    char *big = malloc(n + 16);
    strcpy(big, "<a>");
    memset(big + 3, 'x', n);
    strcpy(big + 3 + n, "</a>");
    CHECK_ERR(ia_s3_xml_walk(big, strlen(big), NULL, NULL), IA_EPARSE, "longer than 64 KiB");
    free(big);
}

TEST(xml_error_documents) {
    const char *xml = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
                      "<Message>The request signature we calculated does not match</Message>"
                      "<RequestId>1</RequestId></Error>";
    char code[64], msg[256];
    CHECK_OK(ia_s3_xml_error(xml, strlen(xml), code, sizeof code, msg, sizeof msg));
    CHECK(strcmp(code, "SignatureDoesNotMatch") == 0);
    CHECK(strncmp(msg, "The request signature", 21) == 0);
    char small[8];
    CHECK_OK(ia_s3_xml_error(xml, strlen(xml), small, sizeof small, msg, sizeof msg));
    CHECK(strcmp(small, "Signatu") == 0);
    const char *other = "<InitiateMultipartUploadResult><UploadId>u-1</UploadId>"
                        "</InitiateMultipartUploadResult>";
    CHECK_ERR(ia_s3_xml_error(other, strlen(other), code, sizeof code, msg, sizeof msg), IA_EPARSE,
              "not an <Error>");
    char *id = NULL;
    CHECK_OK(ia_s3_xml_find(other, strlen(other), "InitiateMultipartUploadResult/UploadId", &id));
    CHECK(id && strcmp(id, "u-1") == 0);
    free(id);
    CHECK_ERR(ia_s3_xml_find(other, strlen(other), "X/UploadId", &id), IA_ENOTFOUND, "no <X");
    size_t count = 0;
    const char *ups = "<ns:ListMultipartUploadsResult xmlns:ns=\"u\"><ns:Upload/><Upload>"
                      "</Upload><Other/></ns:ListMultipartUploadsResult>";
    CHECK_OK(ia_s3_xml_count(ups, strlen(ups), "ListMultipartUploadsResult/Upload", &count));
    CHECK_EQ_INT(count, 2);
}
