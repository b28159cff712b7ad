/*
 * Tests for the config.json reader: each typed getter on good values, on
 * missing and null fields (required and optional), and on every wrong JSON
 * type, checking that messages name the file and the field; documents that
 * are not objects or not JSON; the size bound; and the real default model's
 * config.json when it is on this machine.
 */
#include "test.h"

#include "ia/formats.h"

#include <jansson.h>

static const char *const sample =
    "{\"model_type\":\"bert\",\"hidden_size\":384,\"layer_norm_eps\":1e-12,"
    "\"use_cache\":true,\"tie\":false,\"pad_token_id\":null,\"architectures\":[\"BertModel\",7],"
    "\"dropout\":0,\"as_real\":768.0,\"frac\":2.5,\"big_real\":1e30,\"neg\":-3,"
    "\"nested\":{\"a\":1},\"name\":\"x\"}";

static ia_config *load_sample(void) {
    ia_config *cfg = NULL;
    CHECK_OK(ia_config_parse(sample, strlen(sample), "config.json", &cfg));
    return cfg;
}

TEST(good_values) {
    ia_config *cfg = load_sample();
    if (!cfg)
        return;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    CHECK_OK(ia_config_int(cfg, "hidden_size", true, &i));
    CHECK_EQ_INT(i, 384);
    CHECK_OK(ia_config_int(cfg, "neg", true, &i));
    CHECK_EQ_INT(i, -3);
    CHECK_OK(ia_config_int(cfg, "as_real", true, &i));
    CHECK_EQ_INT(i, 768);
    CHECK_OK(ia_config_float(cfg, "layer_norm_eps", true, &d));
    CHECK_NEAR(d, 1e-12, 0);
    CHECK_OK(ia_config_float(cfg, "dropout", true, &d)); /* an integer is a number too */
    CHECK_NEAR(d, 0, 0);
    CHECK_OK(ia_config_bool(cfg, "use_cache", true, &b));
    CHECK(b);
    CHECK_OK(ia_config_bool(cfg, "tie", true, &b));
    CHECK(!b);
    CHECK_OK(ia_config_string(cfg, "model_type", true, &s));
    CHECK(s && strcmp(s, "bert") == 0);
    CHECK_OK(ia_config_string_at(cfg, "architectures", 0, &s));
    CHECK(s && strcmp(s, "BertModel") == 0);
    CHECK(ia_config_has(cfg, "hidden_size"));
    CHECK(!ia_config_has(cfg, "pad_token_id")); /* null counts as missing */
    CHECK(!ia_config_has(cfg, "nope"));
    CHECK(strcmp(ia_config_path(cfg), "config.json") == 0);
    json_t *root = ia_config_json(cfg);
    CHECK(root && json_is_object(json_object_get(root, "nested")));
    ia_config_free(cfg);
}

TEST(missing_and_null_fields) {
    ia_config *cfg = load_sample();
    if (!cfg)
        return;
    int64_t i = 99;
    double d = 0.5;
    bool b = true;
    const char *s = "default";
    CHECK_ERR(ia_config_int(cfg, "num_attention_heads", true, &i), IA_ENOTFOUND,
              "config.json: required field 'num_attention_heads' is missing");
    CHECK_ERR(ia_config_int(cfg, "pad_token_id", true, &i), IA_ENOTFOUND,
              "config.json: required field 'pad_token_id' is null");
    CHECK_ERR(ia_config_float(cfg, "eps", true, &d), IA_ENOTFOUND,
              "config.json: required field 'eps' is missing");
    CHECK_ERR(ia_config_bool(cfg, "flag", true, &b), IA_ENOTFOUND,
              "config.json: required field 'flag' is missing");
    CHECK_ERR(ia_config_string(cfg, "act", true, &s), IA_ENOTFOUND,
              "config.json: required field 'act' is missing");
    CHECK_ERR(ia_config_string_at(cfg, "archs", 0, &s), IA_ENOTFOUND,
              "config.json: required field 'archs' is missing");
    /* Optional and missing (or null): OK, default untouched. */
    CHECK_OK(ia_config_int(cfg, "num_attention_heads", false, &i));
    CHECK_OK(ia_config_int(cfg, "pad_token_id", false, &i));
    CHECK_OK(ia_config_float(cfg, "eps", false, &d));
    CHECK_OK(ia_config_bool(cfg, "flag", false, &b));
    CHECK_OK(ia_config_string(cfg, "act", false, &s));
    CHECK(i == 99 && d == 0.5 && b && strcmp(s, "default") == 0);
    ia_config_free(cfg);
}

TEST(wrong_types) {
    ia_config *cfg = load_sample();
    if (!cfg)
        return;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    CHECK_ERR(ia_config_int(cfg, "model_type", true, &i), IA_EPARSE,
              "config.json: field 'model_type' must be an integer, got string");
    CHECK_ERR(ia_config_int(cfg, "model_type", false, &i), IA_EPARSE,
              "config.json: field 'model_type' must be an integer, got string");
    CHECK_ERR(ia_config_int(cfg, "frac", true, &i), IA_EPARSE,
              "config.json: field 'frac' must be an integer, got 2.5");
    CHECK_ERR(ia_config_int(cfg, "big_real", true, &i), IA_ERANGE,
              "config.json: field 'big_real' is 1e+30, outside the 64-bit integer range");
    CHECK_ERR(ia_config_int(cfg, "use_cache", true, &i), IA_EPARSE, "got boolean");
    CHECK_ERR(ia_config_float(cfg, "name", true, &d), IA_EPARSE,
              "config.json: field 'name' must be a number, got string");
    CHECK_ERR(ia_config_float(cfg, "nested", true, &d), IA_EPARSE, "got object");
    CHECK_ERR(ia_config_bool(cfg, "hidden_size", true, &b), IA_EPARSE,
              "config.json: field 'hidden_size' must be true or false, got integer");
    CHECK_ERR(ia_config_string(cfg, "architectures", true, &s), IA_EPARSE,
              "config.json: field 'architectures' must be a string, got array");
    CHECK_ERR(ia_config_string_at(cfg, "model_type", 0, &s), IA_EPARSE,
              "config.json: field 'model_type' must be an array of strings, got string");
    CHECK_ERR(ia_config_string_at(cfg, "architectures", 1, &s), IA_EPARSE,
              "config.json: field 'architectures' entry 1 must be a string, got integer");
    CHECK_ERR(ia_config_string_at(cfg, "architectures", 2, &s), IA_ERANGE,
              "config.json: field 'architectures' has 2 entries, no entry 2");
    ia_config_free(cfg);
}

TEST(bad_documents) {
    ia_config *cfg = (ia_config *)0x1;
    CHECK_ERR(ia_config_parse("[1,2]", 5, "config.json", &cfg), IA_EPARSE,
              "config.json: top level must be a JSON object of settings, got array");
    CHECK(cfg == NULL);
    CHECK_ERR(ia_config_parse("{\"a\":", 5, "config.json", &cfg), IA_EPARSE,
              "config.json: invalid JSON at line 1");
    CHECK_ERR(ia_config_parse("", 0, "config.json", &cfg), IA_EPARSE, "config.json: invalid JSON");
    CHECK_ERR(ia_config_parse("{\"a\":1,\"a\":2}", 13, "config.json", &cfg), IA_EPARSE,
              "duplicate");
    CHECK_ERR(ia_config_parse("42", 2, "config.json", &cfg), IA_EPARSE, "config.json");
    size_t big = 17u * 1024u * 1024u;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    CHECK_ERR(ia_config_parse(text, big, "config.json", &cfg), IA_ERANGE,
              "config.json: 17825792 bytes is larger than");
    free(text);
}

TEST(load_from_file) {
    char path[] = "/tmp/ia_test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    fputs("{\"hidden_size\": \"384\"}", f);
    fclose(f);
    ia_config *cfg = NULL;
    CHECK_OK(ia_config_load(path, &cfg));
    int64_t i;
    char needle[128];
    snprintf(needle, sizeof needle, "%s: field 'hidden_size' must be an integer, got string", path);
    if (cfg)
        CHECK_ERR(ia_config_int(cfg, "hidden_size", true, &i), IA_EPARSE, needle);
    ia_config_free(cfg);
    remove(path);
    CHECK_ERR(ia_config_load(path, &cfg), IA_ENOTFOUND, "ia_test_config_");
}

TEST(real_model_config) {
    const char *dir = getenv("IA_DEFAULT_MODEL");
    char buf[4096];
    if (!dir || !*dir) {
        const char *home = getenv("HOME");
        snprintf(buf, sizeof buf, "%s/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2",
                 home ? home : "/nonexistent");
        dir = buf;
    }
    char *path = ia_path_join(dir, "config.json");
    if (!path || !ia_file_exists(path)) {
        free(path);
        SKIP("no default model (set IA_DEFAULT_MODEL or run scripts/fetch-default-model.sh)");
    }
    ia_config *cfg = NULL;
    CHECK_OK(ia_config_load(path, &cfg));
    free(path);
    if (!cfg)
        return;
    int64_t hidden = 0, heads = 0, layers = 0, vocab = 0;
    double eps = 0;
    const char *type = NULL, *arch = NULL;
    CHECK_OK(ia_config_int(cfg, "hidden_size", true, &hidden));
    CHECK_OK(ia_config_int(cfg, "num_attention_heads", true, &heads));
    CHECK_OK(ia_config_int(cfg, "num_hidden_layers", true, &layers));
    CHECK_OK(ia_config_int(cfg, "vocab_size", true, &vocab));
    CHECK_OK(ia_config_float(cfg, "layer_norm_eps", true, &eps));
    CHECK_OK(ia_config_string(cfg, "model_type", true, &type));
    CHECK_OK(ia_config_string_at(cfg, "architectures", 0, &arch));
    CHECK(hidden == 384 && heads == 12 && layers == 6 && vocab == 30522);
    CHECK_NEAR(eps, 1e-12, 1e-20);
    CHECK(type && strcmp(type, "bert") == 0);
    CHECK(arch && strcmp(arch, "BertModel") == 0);
    ia_config_free(cfg);
}
