/*
 * `ipfs-accelerate api` end to end: the real binary against the fake
 * provider running in this test process. call (chat, complete, streamed,
 * embed, rerank, --json, --stats), check (all up: exit 0; one down: exit 1
 * naming it), stats, the config from IA_ENDPOINTS, and the errors a user
 * meets (missing key variable, unknown endpoint, usage mistakes).
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

#include "api_fixture.h"

static char *write_config(const char *dir, const char *name, const char *tmpl) {
    char *path = ia_path_join(dir, name);
    char *y = api_yaml(tmpl);
    FILE *f = fopen(path, "w");
    fputs(y, f);
    fclose(f);
    free(y);
    return path;
}

static const char *const CFG = "endpoints:\n"
                               "  - {name: oa, provider: openai, base_url: '@URL@/v1', model: "
                               "gpt-test, api_key_env: IA_TEST_FAKE_KEY}\n"
                               "  - {name: emb, provider: tei, base_url: '@URL@'}\n"
                               "  - {name: claude, provider: anthropic, base_url: '@URL@', model: "
                               "c, api_key_env: IA_TEST_FAKE_KEY}\n";

TEST(api_cli) {
    api_fake();
    char *dir = temp_dir();
    char *cfg = write_config(dir, "endpoints.yaml", CFG);

    run_result r = RUN("api", "call", "--config", cfg, "--endpoint", "oa", "chat", "hi there");
    EXPECT(r, 0);
    CHECK_MSG(strcmp(r.out, "echo: hi there\n") == 0, "out %s", r.out);
    run_free(&r);

    r = RUN("api", "call", "--config", cfg, "--endpoint", "claude", "chat", "hi there", "--stream");
    EXPECT(r, 0);
    CHECK_MSG(strcmp(r.out, "echo: hi there\n") == 0, "out %s", r.out);
    run_free(&r);

    r = RUN("api", "call", "--config", cfg, "--endpoint", "oa", "complete", "abc", "--json",
            "--stats", "--priority", "high", "--max-tokens", "5");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "\"text\": \"echo: abc\"") && strstr(r.out, "\"served_by\": \"oa\"") &&
                  strstr(r.out, "\"tokens_out\": 3"),
              "out %s", r.out);
    CHECK_MSG(strstr(r.err, "\"requests\"") && !strstr(r.err, FIXTURE_KEY), "err %s", r.err);
    run_free(&r);

    r = RUN("api", "call", "--config", cfg, "--endpoint", "emb", "embed", "ab", "xyz");
    EXPECT(r, 0);
    CHECK_MSG(strncmp(r.out, "[2,97,0.5,1]\n[3,120,0.5,1]\n", 26) == 0 ||
                  (strstr(r.out, "[2") == r.out && strstr(r.out, "\n[3")),
              "out %s", r.out);
    run_free(&r);

    r = RUN("api", "call", "--config", cfg, "--endpoint", "emb", "rerank", "--query", "abcde", "a",
            "abcd", "abcdefghijk");
    EXPECT(r, 0);
    CHECK_MSG(strncmp(r.out, "1\t0.500000\tabcd\n", 16) == 0, "out %s", r.out);
    run_free(&r);

    /* The default path from IA_ENDPOINTS. */
    setenv("IA_ENDPOINTS", cfg, 1);
    r = RUN("api", "check");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "oa ") && strstr(r.out, "emb ") && strstr(r.out, "claude ") &&
                  !strstr(r.out, "FAIL"),
              "out %s", r.out);
    run_free(&r);
    r = RUN("api", "stats", "--json");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "\"oa\"") && strstr(r.out, "\"emb\""), "out %s", r.out);
    run_free(&r);
    r = RUN("api", "stats", "--prometheus");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "ia_api_") && strstr(r.out, "endpoint=\"claude\"") &&
                  !strstr(r.out, FIXTURE_KEY),
              "out %s", r.out);
    run_free(&r);
    r = RUN("api", "stats");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "claude") && strstr(r.out, "anthropic"), "out %s", r.out);
    run_free(&r);
    unsetenv("IA_ENDPOINTS");

    /* One endpoint down: check fails and names it. */
    char *bad = write_config(
        dir, "bad.yaml",
        "endpoints:\n"
        "  - {name: up, provider: tei, base_url: '@URL@'}\n"
        "  - {name: down, provider: ollama, base_url: 'http://127.0.0.1:1', model: m,\n"
        "     timeouts: {connect_ms: 500}}\n");
    r = RUN("api", "check", "--config", bad, "--json");
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.out, "\"endpoint\": \"down\"") && strstr(r.out, "\"ok\": false") &&
                  strstr(r.out, "\"ok\": true"),
              "out %s", r.out);
    run_free(&r);

    /* Errors a user meets. */
    unsetenv("IA_TEST_FAKE_KEY");
    r = RUN("api", "call", "--config", cfg, "--endpoint", "oa", "chat", "x");
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "environment variable IA_TEST_FAKE_KEY (its API key) is not set"),
              "err %s", r.err);
    run_free(&r);
    setenv("IA_TEST_FAKE_KEY", FIXTURE_KEY, 1);
    r = RUN("api", "call", "--config", cfg, "--endpoint", "nope", "chat", "x");
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "endpoint 'nope' is not configured"), "err %s", r.err);
    run_free(&r);
    r = RUN("api", "call", "--config", cfg, "chat", "x");
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("api", "call", "--config", cfg, "--endpoint", "oa", "summarise", "x");
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("api", "call", "--config", cfg, "--endpoint", "emb", "embed", "x", "--stream");
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("api", "frobnicate");
    EXPECT(r, 2);
    run_free(&r);

    rm_rf(dir);
    free(dir);
    free(cfg);
    free(bad);
    fake_provider_stop(fixture_fake);
    fixture_fake = NULL;
}
