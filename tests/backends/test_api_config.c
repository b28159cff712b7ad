/*
 * The endpoints YAML (src/backends/config.c) and the key checks of
 * ia_api_client_create: a full endpoint with every field, defaults, and each
 * refusal with the file, line, column and endpoint in its message (unknown
 * provider or field, bad URL, duplicate name, unknown fallback, YAML syntax
 * errors, ranges); a missing key variable, a key file readable by others
 * (0644 refused, 0600 used), and no secret in any message. The default path
 * follows IA_ENDPOINTS and XDG_CONFIG_HOME.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/backends.h"
#include "test.h"
#include "test_fs.h"

static ia_status parse(const char *y, ia_api_config **out) {
    return ia_api_config_parse(y, strlen(y), "endpoints.yaml", out);
}

TEST(full_endpoint) {
    const char *y = "endpoints:\n"
                    "  - name: main\n"
                    "    provider: anthropic\n"
                    "    base_url: https://api.anthropic.com/\n"
                    "    models: [claude-a, claude-b]\n"
                    "    api_key_envs: [KEY_ONE, KEY_TWO]\n"
                    "    key_selection: least_loaded\n"
                    "    key_cooldown_ms: 1234\n"
                    "    priority: high\n"
                    "    max_concurrency: 3\n"
                    "    queue: 17\n"
                    "    max_body_bytes: 100000\n"
                    "    retry: {max_attempts: 5, base_ms: 10, max_ms: 100}\n"
                    "    breaker: {window: 30, window_ms: 9000, min_calls: 4, failure_rate: 0.25,\n"
                    "              open_ms: 777, half_open_probes: 2, slow_ms: 5000}\n"
                    "    timeouts: {connect_ms: 11, first_byte_ms: 22, total_ms: 33}\n"
                    "    batch: {max_items: 8, max_wait_ms: 5}\n"
                    "    fallbacks: [spare]\n"
                    "  - name: spare\n"
                    "    provider: ollama\n"
                    "    base_url: http://localhost:11434\n"
                    "    model: llama3\n";
    ia_api_config *cfg = NULL;
    CHECK_OK(parse(y, &cfg));
    if (!cfg)
        return;
    CHECK_EQ_INT(ia_api_config_count(cfg), 2);
    const ia_api_endpoint_config *e = ia_api_config_find(cfg, "main");
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_INT(e->provider, IA_API_PROVIDER_ANTHROPIC);
        CHECK(strcmp(e->base_url, "https://api.anthropic.com") == 0);
        CHECK_EQ_INT(e->n_models, 2);
        CHECK(strcmp(e->models[1], "claude-b") == 0);
        CHECK_EQ_INT(e->n_key_envs, 2);
        CHECK(strcmp(e->key_envs[1], "KEY_TWO") == 0);
        CHECK_EQ_INT(e->key_selection, IA_API_KEYS_LEAST_LOADED);
        CHECK_EQ_INT(e->key_cooldown_ms, 1234);
        CHECK_EQ_INT(e->priority, IA_API_PRIORITY_HIGH);
        CHECK_EQ_INT(e->max_concurrency, 3);
        CHECK_EQ_INT(e->queue_capacity, 17);
        CHECK_EQ_INT(e->max_body_bytes, 100000);
        CHECK_EQ_INT(e->retry_max_attempts, 5);
        CHECK_EQ_INT(e->retry_base_ms, 10);
        CHECK_EQ_INT(e->retry_max_ms, 100);
        CHECK_EQ_INT(e->breaker_window, 30);
        CHECK_EQ_INT(e->breaker_window_ms, 9000);
        CHECK_EQ_INT(e->breaker_min_calls, 4);
        CHECK_NEAR(e->breaker_failure_rate, 0.25, 0);
        CHECK_EQ_INT(e->breaker_open_ms, 777);
        CHECK_EQ_INT(e->breaker_half_open_probes, 2);
        CHECK_EQ_INT(e->breaker_slow_ms, 5000);
        CHECK_EQ_INT(e->connect_ms, 11);
        CHECK_EQ_INT(e->first_byte_ms, 22);
        CHECK_EQ_INT(e->total_ms, 33);
        CHECK_EQ_INT(e->batch_max_items, 8);
        CHECK_EQ_INT(e->n_fallbacks, 1);
        CHECK_EQ_INT(e->line, 2);
    }
    const ia_api_endpoint_config *s = ia_api_config_endpoint(cfg, 1);
    /* Defaults come from the resilience layer's. */
    CHECK(s && s->retry_max_attempts == 3 && s->max_concurrency == 8 && s->n_key_envs == 0);
    ia_api_config_free(cfg);
}

static void refused(const char *y, const char *needle) {
    ia_api_config *cfg = NULL;
    ia_error_clear();
    ia_status st = parse(y, &cfg);
    CHECK_MSG(st != IA_OK && strstr(ia_error_message(), needle), "wanted '%s', got %s \"%s\"",
              needle, ia_status_str(st), ia_error_message());
    CHECK(cfg == NULL);
    ia_api_config_free(cfg);
}

TEST(refusals_name_file_line_and_endpoint) {
    refused("endpoints:\n  - name: a\n    provider: openia\n    base_url: http://x\n    model: m\n",
            "endpoints.yaml:3:15: endpoint 'a': unknown provider 'openia'");
    refused("endpoints:\n  - name: a\n    provider: vllm\n    base_url: http://x\n    model: m\n"
            "    timeout: {total_ms: 5}\n",
            "endpoints.yaml:6:14: endpoint 'a': unknown field 'timeout'");
    refused(
        "endpoints:\n  - {name: a, provider: vllm, base_url: 'ftp://x', model: m}\n",
        "endpoints.yaml:2:41: endpoint 'a': base_url 'ftp://x' is not an http:// or https:// URL");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'not a url', model: m}\n",
            "endpoint 'a': base_url 'not a url'");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h/?x=1', model: m}\n",
            "must not have a query");
    refused("endpoints:\n  - {name: a, provider: vllm, model: m}\n",
            "endpoint 'a': no base_url given");
    refused("endpoints:\n  - {provider: vllm, base_url: 'http://h', model: m}\n",
            "endpoints.yaml:2:5: an endpoint has no name");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h'}\n", "no model given");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m}\n"
            "  - {name: a, provider: tei, base_url: 'http://h'}\n",
            "endpoints.yaml:3:5: endpoint 'a': the name is already used on line 2");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m, fallbacks: "
            "[b]}\n",
            "endpoints.yaml:2: endpoint 'a': fallback 'b' is not declared");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m, fallbacks: "
            "[a]}\n",
            "cannot be its own fallback");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m,\n"
            "     retry: {max_attempts: 0}}\n",
            "endpoints.yaml:3:28: endpoint 'a': retry.max_attempts must be an integer in [1, 100], "
            "got '0'");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m,\n"
            "     breaker: {failure_rate: 1.5}}\n",
            "breaker.failure_rate must be a number in (0, 1]");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m,\n"
            "     retry: {base_ms: 100, max_ms: 10}}\n",
            "retry.max_ms (10) is below retry.base_ms (100)");
    refused("endpoints:\n  - {name: a, provider: openai, base_url: 'http://h', model: m,\n"
            "     api_key_env: A, api_key_file: /k}\n",
            "give one of api_key_env, api_key_envs, api_key_file");
    refused("endpoints:\n  - {name: a, provider: vllm, base_url: 'http://h', model: m, priority: "
            "urgent}\n",
            "priority must be high, normal or low");
    refused("endpoint:\n  - {name: a}\n", "endpoints.yaml:1:1: unknown top-level field 'endpoint'");
    refused("endpoints: []\n", "'endpoints' is empty");
    refused("endpoints:\n  - {name: a, provider: [x\n", "endpoints.yaml:3:1: YAML error");
    refused("- a\n- b\n", "must be a mapping");
    refused("", "must be a mapping");
}

static ia_status client_for(const char *y, ia_api_config **cfg, ia_api_client **cl) {
    *cl = NULL;
    ia_status st = parse(y, cfg);
    if (st != IA_OK)
        return st;
    st = ia_api_client_create(*cfg, cl);
    return st;
}

TEST(keys_from_environment) {
    ia_api_config *cfg = NULL;
    ia_api_client *cl = NULL;
    setenv("IA_CFG_TEST_KEY1", "sk-secret-value-1", 1);
    unsetenv("IA_CFG_TEST_MISSING");
    const char *y =
        "endpoints:\n"
        "  - {name: oa, provider: openai, base_url: 'https://api.openai.com/v1', model: m,\n"
        "     api_key_envs: [IA_CFG_TEST_KEY1, IA_CFG_TEST_MISSING]}\n";
    CHECK_ERR(client_for(y, &cfg, &cl), IA_EINVAL,
              "endpoints.yaml:2: endpoint 'oa': environment variable IA_CFG_TEST_MISSING (its API "
              "key) is not set");
    CHECK(strstr(ia_error_message(), "sk-secret") == NULL);
    CHECK(cl == NULL);
    ia_api_config_free(cfg);
    /* A key that would break its header line is refused, naming only the variable. */
    setenv("IA_CFG_TEST_MISSING", "sk-secret-value-2\r\nX-Evil: 1", 1);
    CHECK_ERR(client_for(y, &cfg, &cl), IA_EINVAL,
              "environment variable IA_CFG_TEST_MISSING holds a control character");
    CHECK(strstr(ia_error_message(), "sk-secret") == NULL &&
          strstr(ia_error_message(), "Evil") == NULL);
    ia_api_config_free(cfg);
    unsetenv("IA_CFG_TEST_MISSING");
    /* A provider that needs a key refuses a config without one. */
    y = "endpoints:\n  - {name: g, provider: gemini, base_url: 'https://x.example/v1beta', model: "
        "m}\n";
    CHECK_ERR(client_for(y, &cfg, &cl), IA_EINVAL,
              "endpoint 'g': provider gemini needs an API key");
    ia_api_config_free(cfg);
    /* Keyless providers are fine without. */
    y = "endpoints:\n  - {name: o, provider: ollama, base_url: 'http://localhost:11434', model: "
        "m}\n";
    CHECK_OK(client_for(y, &cfg, &cl));
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
    y = "endpoints:\n  - {name: oa, provider: openai, base_url: 'https://api.openai.com/v1', "
        "model: m,\n"
        "     api_key_env: IA_CFG_TEST_KEY1}\n";
    CHECK_OK(client_for(y, &cfg, &cl));
    char *stats = NULL;
    if (cl) {
        CHECK_OK(ia_api_stats_json(cl, &stats));
        CHECK(stats && strstr(stats, "IA_CFG_TEST_KEY1") && !strstr(stats, "sk-secret"));
    }
    free(stats);
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
}

TEST(key_file_permissions) {
    char dir[] = "/tmp/ia-api-config-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], y[1024];
    snprintf(path, sizeof path, "%s/key", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "  sk-file-secret-1  \n\nsk-file-secret-2\n", 39) == 39);
    close(fd);
    chmod(path, 0644);
    snprintf(y, sizeof y,
             "endpoints:\n  - {name: f, provider: anthropic, base_url: 'https://api.anthropic.com',"
             " model: m, api_key_file: '%s'}\n",
             path);
    ia_api_config *cfg = NULL;
    ia_api_client *cl = NULL;
    CHECK_ERR(client_for(y, &cfg, &cl), IA_EINVAL,
              "has mode 644; it must not be readable by group or others");
    CHECK(strstr(ia_error_message(), "endpoint 'f'") && !strstr(ia_error_message(), "sk-file"));
    ia_api_config_free(cfg);
    chmod(path, 0600);
    CHECK_OK(client_for(y, &cfg, &cl));
    char *stats = NULL;
    if (cl) {
        CHECK_OK(ia_api_stats_json(cl, &stats));
        /* Two keys, known by position. */
        CHECK(stats && strstr(stats, "key_file#1") && strstr(stats, "key_file#2") &&
              !strstr(stats, "sk-file"));
    }
    free(stats);
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
    snprintf(y, sizeof y,
             "endpoints:\n  - {name: f, provider: anthropic, base_url: 'https://api.anthropic.com',"
             " model: m, api_key_file: '%s/none'}\n",
             dir);
    CHECK_ERR(client_for(y, &cfg, &cl), IA_EIO, "cannot open api_key_file");
    ia_api_config_free(cfg);
    unlink(path);
    rmdir(dir);
}

TEST(load_from_file_and_default_path) {
    char dir[] = "/tmp/ia-api-config-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/endpoints.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("endpoints:\n  - {name: t, provider: tei, base_url: 'http://127.0.0.1:8080'}\n", f);
    fclose(f);
    ia_api_config *cfg = NULL;
    CHECK_OK(ia_api_config_load(path, &cfg));
    CHECK(cfg && ia_api_config_count(cfg) == 1 && strcmp(ia_api_config_source(cfg), path) == 0);
    ia_api_config_free(cfg);
    CHECK(ia_api_config_load("/nonexistent/endpoints.yaml", &cfg) != IA_OK);

    setenv("IA_ENDPOINTS", "/etc/x.yaml", 1);
    char *p = ia_api_config_default_path();
    CHECK(p && strcmp(p, "/etc/x.yaml") == 0);
    free(p);
    unsetenv("IA_ENDPOINTS");
    setenv("XDG_CONFIG_HOME", dir, 1);
    p = ia_api_config_default_path();
    CHECK(p && strncmp(p, dir, strlen(dir)) == 0 && strstr(p, "/ipfs-accelerate/endpoints.yaml"));
    free(p);
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/someone", 1);
    p = ia_api_config_default_path();
    CHECK(p && strcmp(p, "/home/someone/.config/ipfs-accelerate/endpoints.yaml") == 0);
    free(p);
    unlink(path);
    rmdir(dir);
}
