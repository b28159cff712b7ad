/*
 * The pieces of the HTTP transport that need no server: Retry-After in both
 * of its forms (delta-seconds and HTTP-date, RFC 9110 10.2.3), and the
 * classification of HTTP results into resilience outcomes (retryable 5xx,
 * 529, 408, timeouts and resets; rate-limited 429; fatal 4xx, spend limits,
 * oversize bodies; x-should-retry overriding the status), and the
 * extraction of a provider's error text from the error bodies of each API.
 */
#include <string.h>

#include "backends/backends_internal.h"
#include "test.h"

TEST(retry_after_forms) {
    time_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    CHECK_EQ_INT(ia_http_parse_retry_after("120", now), 120000);
    CHECK_EQ_INT(ia_http_parse_retry_after(" 2 \r\n", now), 2000);
    CHECK_EQ_INT(ia_http_parse_retry_after("0.25", now), 250);
    CHECK_EQ_INT(ia_http_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    CHECK_EQ_INT(ia_http_parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), 0); /* past */
    CHECK_EQ_INT(ia_http_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 7), 7000);
    CHECK_EQ_INT(ia_http_parse_retry_after("soon", now), -1);
    CHECK_EQ_INT(ia_http_parse_retry_after("12abc", now), -1);
    CHECK_EQ_INT(ia_http_parse_retry_after("-5", now), -1);
    CHECK_EQ_INT(ia_http_parse_retry_after("99999999", now), -1); /* beyond a week */
}

static ia_call_class classify(long status, int should_retry, ia_http_fail fail, const char *body) {
    ia_http_response r = {.status = status,
                          .should_retry = should_retry,
                          .fail = fail,
                          .body = (char *)body,
                          .body_len = body ? strlen(body) : 0};
    return ia_api_classify(&r);
}

TEST(classification) {
    CHECK_EQ_INT(classify(200, -1, IA_HTTP_FAIL_NONE, NULL), IA_CALL_OK);
    static const long retry[] = {500, 502, 503, 504, 529, 408, 409};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        CHECK_EQ_INT(classify(retry[i], -1, IA_HTTP_FAIL_NONE, "{}"), IA_CALL_RETRYABLE);
    static const long fatal[] = {400, 401, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        CHECK_EQ_INT(classify(fatal[i], -1, IA_HTTP_FAIL_NONE, "{}"), IA_CALL_FATAL);
    CHECK_EQ_INT(classify(429, -1, IA_HTTP_FAIL_NONE, "{\"error\":{\"type\":\"requests\"}}"),
                 IA_CALL_RATE_LIMITED);
    CHECK_EQ_INT(
        classify(429, -1, IA_HTTP_FAIL_NONE, "{\"error\":{\"code\":\"insufficient_quota\"}}"),
        IA_CALL_FATAL);
    CHECK_EQ_INT(classify(400, -1, IA_HTTP_FAIL_NONE, "Your credit balance is too low"),
                 IA_CALL_FATAL);
    /* x-should-retry overrides the status (not a 429, which the key cooldown handles). */
    CHECK_EQ_INT(classify(503, 0, IA_HTTP_FAIL_NONE, "{}"), IA_CALL_FATAL);
    CHECK_EQ_INT(classify(400, 1, IA_HTTP_FAIL_NONE, "{}"), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(0, -1, IA_HTTP_FAIL_CONNECT, NULL), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(0, -1, IA_HTTP_FAIL_CONNECT_TIMEOUT, NULL), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(0, -1, IA_HTTP_FAIL_FIRST_BYTE_TIMEOUT, NULL), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(200, -1, IA_HTTP_FAIL_RESET, NULL), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(200, -1, IA_HTTP_FAIL_TOTAL_TIMEOUT, NULL), IA_CALL_RETRYABLE);
    CHECK_EQ_INT(classify(200, -1, IA_HTTP_FAIL_TOO_BIG, NULL), IA_CALL_FATAL);
}

TEST(error_text_of_each_format) {
    char buf[160];
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"error\":{\"message\":\"Invalid API key\",\"type\":\"invalid_request_error\"}}",
         "Invalid API key"},
        {"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}"
         "}",
         "Overloaded"},
        {"[{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\"}}]",
         "Resource has been exhausted"},
        {"{\"error\":\"model 'x' not found\"}", "model 'x' not found"},
        {"{\"error\":\"Input validation error\",\"error_type\":\"validation\"}",
         "Input validation error"},
        {"{\"detail\":\"Not Found\"}", "Not Found"},
        {"<html>\n<body>Bad gateway</body></html>", "<html> <body>Bad gateway</body></html>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ia_api_error_text(cases[i].body, strlen(cases[i].body), buf, sizeof buf);
        CHECK_MSG(strcmp(buf, cases[i].want) == 0, "case %zu: '%s'", i, buf);
    }
    ia_api_error_text(NULL, 0, buf, sizeof buf);
    CHECK(buf[0] == 0);
}
