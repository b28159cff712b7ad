/*
 * Tests for the model registry and classifier. The fixture
 * (tests/fixtures/model_types/configs.jsonl, made by
 * tools/make_model_registry.py) holds the default config.json of every
 * model_type transformers knows, with the family its auto mappings imply.
 * Every config is classified twice: with the registry (the acceptance
 * point: at least 98% right) and with inference alone (the rule table in
 * src/hw/classify.c), whose accuracy must not fall below what it reaches now.
 * Every miss is printed. The other cases check the registry's own invariants,
 * its agreement with the encoder arch table, and odd input.
 */
#include "test.h"

#include <jansson.h>

#include "ia/hw.h"
#include "ia/models.h"

/* Measured on the committed fixture (820 configs, transformers 5.24.0): inference
 * alone gets 90.5% of families right (742/820). The floor leaves room for small
 * fixture changes (about a dozen configs), not for a rule table that got worse. */
#define INFERENCE_FLOOR 0.89
#define REGISTRY_FLOOR 0.98

/* ---- the fixture ------------------------------------------------------------------ */

typedef struct fixture_row {
    json_t *line; /* owns everything below */
    const char *model_type;
    const char *family;
    const json_t *config;
} fixture_row;

static fixture_row *fixture;
static size_t n_fixture;

static void free_fixture(void) {
    for (size_t i = 0; i < n_fixture; i++)
        json_decref(fixture[i].line);
    free(fixture);
}

/* Loads the fixture once; false (after a failed CHECK) when it cannot. */
static bool load_fixture(void) {
    if (fixture)
        return true;
    const char *path = test_source_path("tests/fixtures/model_types/configs.jsonl");
    ia_text_lines tl;
    ia_status s = ia_text_lines_read(path, 16u << 20, &tl);
    CHECK_MSG(s == IA_OK, "%s: %s", path, ia_error_message());
    if (s != IA_OK)
        return false;
    fixture = calloc(tl.n, sizeof *fixture);
    for (size_t i = 0; i < tl.n; i++) {
        if (tl.lens[i] == 0)
            continue;
        json_t *line = NULL;
        s = ia_json_parse(tl.lines[i], tl.lens[i], path, &line);
        CHECK_MSG(s == IA_OK, "line %zu: %s", i + 1, ia_error_message());
        if (s != IA_OK)
            continue;
        fixture_row *r = &fixture[n_fixture++];
        r->line = line;
        r->model_type = json_string_value(json_object_get(line, "model_type"));
        r->family = json_string_value(json_object_get(line, "family"));
        r->config = json_object_get(line, "config");
        CHECK_MSG(r->model_type && r->family && json_is_object(r->config),
                  "line %zu lacks model_type, family or config", i + 1);
    }
    ia_text_lines_free(&tl);
    atexit(free_fixture);
    CHECK_MSG(n_fixture >= 700, "only %zu fixture lines", n_fixture);
    return n_fixture > 0;
}

/* Classifies every fixture config; prints each miss; returns the share right. */
static double fixture_accuracy(bool use_registry) {
    ia_classify_options opts = {.use_registry = use_registry};
    size_t right = 0, misses = 0;
    for (size_t i = 0; i < n_fixture; i++) {
        const fixture_row *r = &fixture[i];
        if (!r->model_type || !r->family || !r->config)
            continue;
        ia_model_class c;
        CHECK_OK(ia_model_classify(r->config, &opts, &c));
        if (strcmp(ia_model_family_name(c.family), r->family) == 0) {
            right++;
            continue;
        }
        if (misses++ == 0)
            fprintf(stderr, "  misses with the registry %s:\n", use_registry ? "on" : "off");
        fprintf(stderr, "    %-36s want %-15s got %-15s (%.2f) %s\n", r->model_type, r->family,
                ia_model_family_name(c.family), c.confidence, c.reason);
    }
    double acc = n_fixture ? (double)right / (double)n_fixture : 0;
    fprintf(stderr, "  registry %s: %zu/%zu right (%.1f%%)\n", use_registry ? "on" : "off", right,
            n_fixture, 100 * acc);
    return acc;
}

TEST(fixture_with_registry) {
    if (!load_fixture())
        return;
    double acc = fixture_accuracy(true);
    CHECK_MSG(acc >= REGISTRY_FLOOR, "%.3f < %.2f", acc, REGISTRY_FLOOR);
}

TEST(fixture_inference_only) {
    if (!load_fixture())
        return;
    double acc = fixture_accuracy(false);
    CHECK_MSG(acc >= INFERENCE_FLOOR, "%.3f < %.2f", acc, INFERENCE_FLOOR);
}

/* The fixture and the table come from one run of the tool: they must agree. */
TEST(fixture_matches_registry) {
    if (!load_fixture())
        return;
    size_t n_rows = 0;
    ia_model_registry(&n_rows);
    CHECK_MSG(n_rows >= n_fixture, "%zu registry rows, %zu fixture lines", n_rows, n_fixture);
    for (size_t i = 0; i < n_fixture; i++) {
        const fixture_row *r = &fixture[i];
        if (!r->model_type || !r->family)
            continue;
        const ia_model_type_info *row = ia_model_registry_find(r->model_type);
        CHECK_MSG(row, "'%s' is in the fixture but not the registry", r->model_type);
        if (!row)
            continue;
        CHECK_MSG(strcmp(ia_model_family_name(row->family), r->family) == 0,
                  "'%s': registry says %s, fixture %s", r->model_type,
                  ia_model_family_name(row->family), r->family);
        const char *modality = json_string_value(json_object_get(r->line, "modality"));
        CHECK_MSG(modality && strcmp(modality, row->modality) == 0, "'%s': modality %s vs %s",
                  r->model_type, row->modality, modality ? modality : "(none)");
    }
}

/* ---- the registry ------------------------------------------------------------------- */

TEST(registry_rows) {
    size_t n = 0;
    const ia_model_type_info *rows = ia_model_registry(&n);
    CHECK(rows != NULL);
    CHECK_MSG(n >= 800, "only %zu rows", n);
    for (size_t i = 0; i < n; i++) {
        const ia_model_type_info *r = &rows[i];
        CHECK_MSG(r->family > IA_FAMILY_UNKNOWN && r->family < IA_FAMILY_COUNT,
                  "'%s' has family %d", r->model_type, (int)r->family);
        CHECK_MSG(r->modality && r->modality[0], "'%s' has no modality", r->model_type);
        CHECK_MSG(r->tasks && r->backends, "'%s' has a NULL column", r->model_type);
        if (i > 0)
            CHECK_MSG(strcmp(rows[i - 1].model_type, r->model_type) < 0,
                      "rows out of order: '%s' before '%s'", rows[i - 1].model_type, r->model_type);
        CHECK_MSG(ia_model_registry_find(r->model_type) == r, "find('%s') misses its row",
                  r->model_type);
    }
    CHECK(ia_model_registry_find("no-such-model-type") == NULL);
    CHECK(ia_model_registry_find("") == NULL);
    CHECK(ia_model_registry_find(NULL) == NULL);
    /* Neighbours of real names must not match by prefix. */
    CHECK(ia_model_registry_find("ber") == NULL);
    CHECK(ia_model_registry_find("bertx") == NULL);
    const ia_model_type_info *bert = ia_model_registry_find("bert");
    CHECK(bert && bert->family == IA_FAMILY_TEXT_ENCODER);
    const ia_model_type_info *llama = ia_model_registry_find("llama");
    CHECK(llama && llama->family == IA_FAMILY_TEXT_DECODER);
    const ia_model_type_info *whisper = ia_model_registry_find("whisper");
    CHECK(whisper && whisper->family == IA_FAMILY_AUDIO);
}

TEST(family_names) {
    for (int f = 0; f < IA_FAMILY_COUNT; f++) {
        ia_model_family back = IA_FAMILY_COUNT;
        CHECK_OK(ia_model_family_parse(ia_model_family_name((ia_model_family)f), &back));
        CHECK_EQ_INT(back, f);
    }
    CHECK(strcmp(ia_model_family_name(IA_FAMILY_TEXT_ENCODER), "text-encoder") == 0);
    CHECK(strcmp(ia_model_family_name(IA_FAMILY_COUNT), "unknown") == 0);
    ia_model_family out;
    CHECK_ERR(ia_model_family_parse("text encoder", &out), IA_EINVAL, "text encoder");
    CHECK_ERR(ia_model_family_parse(NULL, &out), IA_EINVAL, "no name");
}

/* The "cpu" rows are exactly the encoder arch table's model types. */
TEST(backends_match_arch_table) {
    const char *const *types = ia_encoder_model_types();
    size_t n_types = 0;
    for (; types[n_types]; n_types++) {
        const ia_model_type_info *row = ia_model_registry_find(types[n_types]);
        CHECK_MSG(row, "arch table type '%s' missing from the registry", types[n_types]);
        CHECK_MSG(row && strcmp(row->backends, "cpu") == 0, "'%s' backends '%s'", types[n_types],
                  row ? row->backends : "");
    }
    CHECK_MSG(n_types == 5, "%zu arch table types (bert, roberta, xlm-roberta, distilbert, mpnet)",
              n_types);
    size_t n = 0;
    const ia_model_type_info *rows = ia_model_registry(&n);
    size_t with_backend = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].backends[0])
            continue;
        with_backend++;
        bool in_table = false;
        for (size_t j = 0; j < n_types; j++)
            in_table |= strcmp(types[j], rows[i].model_type) == 0;
        CHECK_MSG(in_table, "'%s' claims backends '%s' but the arch table lacks it",
                  rows[i].model_type, rows[i].backends);
    }
    CHECK_EQ_INT(with_backend, n_types);
}

/* ---- single configs ------------------------------------------------------------------ */

static json_t *parse(const char *text) {
    json_t *j = NULL;
    ia_status s = ia_json_parse(text, strlen(text), "inline", &j);
    if (s != IA_OK) {
        fprintf(stderr, "bad inline JSON: %s\n", ia_error_message());
        exit(1);
    }
    return j;
}

static ia_model_class classify(const char *text, bool use_registry) {
    json_t *j = parse(text);
    ia_classify_options opts = {.use_registry = use_registry};
    ia_model_class c;
    CHECK_OK(ia_model_classify(j, &opts, &c));
    json_decref(j);
    return c;
}

TEST(registry_hit) {
    ia_model_class c =
        classify("{\"model_type\":\"bert\",\"architectures\":[\"BertModel\"]}", true);
    CHECK_EQ_INT(c.family, IA_FAMILY_TEXT_ENCODER);
    CHECK(c.known);
    CHECK_NEAR(c.confidence, 1.0, 0);
    CHECK(strcmp(c.reason, "model_type 'bert' in the registry") == 0);
    CHECK(strcmp(c.backends, "cpu") == 0);
    CHECK(strcmp(c.model_type, "bert") == 0);
    CHECK(strcmp(c.architecture, "BertModel") == 0);
    CHECK(strstr(c.tasks, "fill-mask") != NULL);
    CHECK(strcmp(c.modality, "text") == 0);

    /* Registry off: the same config is inferred, and nothing comes from the table. */
    c = classify("{\"model_type\":\"bert\",\"architectures\":[\"BertForMaskedLM\"]}", false);
    CHECK_EQ_INT(c.family, IA_FAMILY_TEXT_ENCODER);
    CHECK(!c.known);
    CHECK(c.confidence < 1.0 && c.confidence > 0);
    CHECK(c.backends[0] == '\0');
    CHECK_MSG(strstr(c.reason, "ForMaskedLM"), "reason: %s", c.reason);
}

TEST(inference_rules) {
    static const struct {
        const char *json;
        ia_model_family want;
        const char *reason; /* a substring of the reason */
    } cases[] = {
        {"{\"model_type\":\"my-llm\",\"architectures\":[\"MyLlmForCausalLM\"]}",
         IA_FAMILY_TEXT_DECODER, "causal LM class"},
        {"{\"model_type\":\"x\",\"architectures\":[\"XForConditionalGeneration\"],"
         "\"is_encoder_decoder\":true}",
         IA_FAMILY_ENCODER_DECODER, "encoder-decoder flag"},
        {"{\"model_type\":\"x\",\"architectures\":[\"XForConditionalGeneration\"],"
         "\"text_config\":{},\"vision_config\":{}}",
         IA_FAMILY_MULTIMODAL, "text_config and vision_config"},
        {"{\"architectures\":[\"XForCTC\"]}", IA_FAMILY_AUDIO, "CTC"},
        {"{\"architectures\":[\"XForVideoClassification\"]}", IA_FAMILY_VIDEO, "video"},
        {"{\"architectures\":[\"XForImageClassification\"]}", IA_FAMILY_VISION, "image"},
        {"{\"prediction_length\":24,\"context_length\":48}", IA_FAMILY_TIME_SERIES,
         "prediction_length"},
        {"{\"image_size\":224,\"patch_size\":16,\"num_channels\":3}", IA_FAMILY_VISION,
         "image_size and patch_size"},
        {"{\"vocab_size\":100,\"type_vocab_size\":2}", IA_FAMILY_TEXT_ENCODER, "type_vocab_size"},
        /* false flags are no evidence: this is the BERT default, not a decoder */
        {"{\"vocab_size\":100,\"type_vocab_size\":2,\"is_decoder\":false}", IA_FAMILY_TEXT_ENCODER,
         "type_vocab_size"},
        {"{\"model_type\":\"my_wav2vec_thing\"}", IA_FAMILY_AUDIO, "'wav2vec'"},
        {"{}", IA_FAMILY_UNKNOWN, "no rule matched"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ia_model_class c = classify(cases[i].json, true);
        CHECK_MSG(c.family == cases[i].want && strstr(c.reason, cases[i].reason),
                  "%s: got %s, reason \"%s\"", cases[i].json, ia_model_family_name(c.family),
                  c.reason);
        CHECK(!c.known);
        if (cases[i].want != IA_FAMILY_UNKNOWN)
            CHECK(c.confidence > 0 && c.confidence < 1 && c.modality[0]);
    }
}

TEST(bad_input) {
    ia_model_class c;
    json_t *arr = parse("[1,2,3]");
    CHECK_ERR(ia_model_classify(arr, NULL, &c), IA_EINVAL, "not a JSON object");
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);
    json_decref(arr);
    CHECK_ERR(ia_model_classify(NULL, NULL, &c), IA_EINVAL, "not a JSON object");
    json_t *obj = parse("{}");
    CHECK_ERR(ia_model_classify(obj, NULL, NULL), IA_EINVAL, "no output");
    json_decref(obj);

    /* Wrong types are ignored, not trusted and not fatal. */
    c = classify("{\"model_type\":42,\"architectures\":\"BertForMaskedLM\"}", true);
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);
    CHECK(c.model_type[0] == '\0' && c.architecture[0] == '\0');
    c = classify("{\"model_type\":null,\"architectures\":[42,\"BertForMaskedLM\"]}", true);
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);
    c = classify("{\"architectures\":[]}", true);
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);
    c = classify("{\"architectures\":{\"0\":\"BertForMaskedLM\"},\"text_config\":null}", true);
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);

    /* Huge strings are truncated into the fixed buffers. */
    size_t big = 100000;
    char *name = malloc(big + 1);
    memset(name, 'a', big);
    name[big] = '\0';
    memcpy(name + big - 11, "ForCausalLM", 11);
    json_t *j = json_object();
    json_object_set_new(j, "model_type", json_string(name));
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(name));
    json_object_set_new(j, "architectures", archs);
    ia_classify_options opts = {.use_registry = true};
    CHECK_OK(ia_model_classify(j, &opts, &c));
    CHECK_EQ_INT(strlen(c.model_type), sizeof c.model_type - 1);
    CHECK_EQ_INT(strlen(c.architecture), sizeof c.architecture - 1);
    CHECK(strlen(c.reason) < sizeof c.reason);
    /* the class suffix was cut off with the rest of the name: nothing to go on */
    CHECK_EQ_INT(c.family, IA_FAMILY_UNKNOWN);
    json_decref(j);
    free(name);
}

/* Registry rows' task lists are copied whole, or cut at a comma. */
TEST(registry_columns_copied) {
    size_t n = 0;
    const ia_model_type_info *rows = ia_model_registry(&n);
    ia_classify_options opts = {.use_registry = true};
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_pack("{s:s}", "model_type", rows[i].model_type);
        ia_model_class c;
        CHECK_OK(ia_model_classify(j, &opts, &c));
        json_decref(j);
        CHECK_MSG(c.known && c.family == rows[i].family, "'%s' not found", rows[i].model_type);
        size_t len = strlen(c.tasks);
        CHECK_MSG(strncmp(c.tasks, rows[i].tasks, len) == 0 &&
                      (rows[i].tasks[len] == '\0' || rows[i].tasks[len] == ','),
                  "'%s': tasks '%s' vs '%s'", rows[i].model_type, c.tasks, rows[i].tasks);
        CHECK_MSG(strcmp(c.modality, rows[i].modality) == 0, "'%s': modality too long",
                  rows[i].model_type);
    }
}
