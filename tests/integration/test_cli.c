/*
 * The CLI end to end: runs the real binary ($IA_CLI) on committed fixtures
 * and checks stdout, stderr and the exit status, for the documented
 * commands and for bad input.
 */
#include <fcntl.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "test_cli.h"

static const char *write_temp(const char *content, size_t len) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ia_cli_in_XXXXXX");
    int fd = mkstemp(path);
    if (write(fd, content, len) != (ssize_t)len)
        fprintf(stderr, "  short write to %s\n", path);
    close(fd);
    return path;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#define MODEL(name) test_source_path("tests/fixtures/models/" name)
#define MINILM_TOK test_source_path("tests/fixtures/tokenizer/minilm")

TEST(tokenize_ids_and_tokens) {
    const char *args[] = {"tokenize", "--model", MINILM_TOK, "Hello, world!", NULL};
    run_result r = run_cli(args);
    CHECK_EQ_INT(r.status, 0);
    CHECK_MSG(strcmp(r.out, "[101, 7592, 1010, 2088, 999, 102]\n") == 0, "got %s / %s", r.out,
              r.err);
    run_free(&r);
    const char *args2[] = {"tokenize", "--model", MINILM_TOK, "--tokens", "Héllo", NULL};
    r = run_cli(args2);
    CHECK_EQ_INT(r.status, 0);
    CHECK_MSG(strcmp(r.out, "[\"[CLS]\", \"hello\", \"[SEP]\"]\n") == 0, "got %s / %s", r.out,
              r.err);
    run_free(&r);
}

TEST(tokenize_input_file_jsonl) {
    const char text[] = "first line\r\nsecond\n\nlast without newline";
    const char *path = write_temp(text, sizeof text - 1);
    const char *args[] = {"tokenize", "--model",  MINILM_TOK, "--input",
                          path,       "--format", "jsonl",    NULL};
    run_result r = run_cli(args);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(count_lines(r.out), 4);
    CHECK_MSG(strncmp(r.out, "[101, 2034, 2240, 102]\n[101, 2117, 102]\n[101, 102]\n", 50) == 0,
              "got %s", r.out);
    run_free(&r);
    remove(path);
}

TEST(embed_matches_sentence_transformers) {
    json_error_t err;
    char path[4200];
    snprintf(path, sizeof path, "%s/expected.json", MODEL("tiny-bert"));
    json_t *want = json_load_file(path, 0, &err);
    CHECK(want != NULL);
    json_t *texts = json_object_get(want, "texts");
    const char *args[16] = {"embed", "--model", MODEL("tiny-bert"), "--threads", "2"};
    int n = 5;
    for (size_t i = 0; i < json_array_size(texts) && n < 15; i++)
        args[n++] = json_string_value(json_array_get(texts, i));
    args[n] = NULL;
    run_result r = run_cli(args);
    CHECK_EQ_INT(r.status, 0);
    json_t *got = json_loads(r.out, 0, &err);
    CHECK_MSG(got && json_is_array(got), "output is not a JSON array: %.200s", r.out);
    json_t *emb = json_object_get(want, "sentence_embedding");
    CHECK_EQ_INT(json_array_size(got), json_array_size(emb));
    double worst = 0;
    for (size_t i = 0; i < json_array_size(emb) && i < json_array_size(got); i++)
        for (size_t k = 0; k < json_array_size(json_array_get(emb, i)); k++) {
            double d = fabs(json_number_value(json_array_get(json_array_get(got, i), k)) -
                            json_number_value(json_array_get(json_array_get(emb, i), k)));
            if (d > worst)
                worst = d;
        }
    CHECK_MSG(worst <= 1e-4, "max diff %g", worst);
    json_decref(got);
    json_decref(want);
    run_free(&r);
}

TEST(embed_jsonl_keeps_input_order) {
    /* lengths deliberately unsorted: batching sorts them inside */
    const char text[] =
        "a much longer sentence about foxes and dogs and cats\nshort\nmedium length one\n";
    const char *path = write_temp(text, sizeof text - 1);
    const char *args[] = {"embed", "--model", MODEL("tiny-bert"), "--input", path, "--format",
                          "jsonl", NULL};
    run_result all = run_cli(args);
    CHECK_EQ_INT(all.status, 0);
    CHECK_EQ_INT(count_lines(all.out), 3);
    /* each line equals the embedding of that text alone */
    const char *lines[] = {"a much longer sentence about foxes and dogs and cats", "short",
                           "medium length one"};
    char *cursor = all.out;
    for (int i = 0; i < 3; i++) {
        const char *one[] = {"embed",  "--model", MODEL("tiny-bert"), "--format", "jsonl",
                             lines[i], NULL};
        run_result r = run_cli(one);
        char *nl = strchr(cursor, '\n');
        CHECK(nl != NULL);
        if (!nl) {
            run_free(&r);
            break;
        }
        json_error_t err;
        json_t *a = json_loadb(cursor, (size_t)(nl - cursor), 0, &err);
        json_t *b = json_loads(r.out, 0, &err);
        CHECK(a && b && json_array_size(a) == 36 && json_array_size(b) == 36);
        double worst = 0;
        for (size_t k = 0; a && b && k < 36; k++) {
            double d = fabs(json_number_value(json_array_get(a, k)) -
                            json_number_value(json_array_get(b, k)));
            worst = d > worst ? d : worst;
        }
        CHECK_MSG(worst < 1e-5, "line %d differs from its own embedding by %g", i, worst);
        json_decref(a);
        json_decref(b);
        cursor = nl + 1;
        run_free(&r);
    }
    run_free(&all);
    remove(path);
}

/* One clear line on stderr, exit status 1, nothing on stdout. */
static void check_fails(const char *const *args, const char *needle) {
    run_result r = run_cli(args);
    CHECK_MSG(r.status == 1, "status %d for %s", r.status, needle);
    CHECK_MSG(strstr(r.err, needle) != NULL, "stderr '%s' lacks '%s'", r.err, needle);
    CHECK_MSG(count_lines(r.err) == 1, "stderr has %d lines: %s", count_lines(r.err), r.err);
    CHECK_MSG(r.out[0] == '\0', "stdout not empty: %.100s", r.out);
    run_free(&r);
}

TEST(bad_input_gives_one_clear_error) {
    const char *missing[] = {"embed", "--model", "/nonexistent/dir", "x", NULL};
    check_fails(missing, "/nonexistent/dir");

    const char bad_utf8[] = "fine\nbad \xff byte\n";
    const char *path = write_temp(bad_utf8, sizeof bad_utf8 - 1);
    const char *a[] = {"embed", "--model", MODEL("tiny-bert"), "--input", path, NULL};
    char where[128];
    snprintf(where, sizeof where, "%s:2: invalid UTF-8 at byte 5", path);
    check_fails(a, where);
    remove(path);

    path = write_temp("", 0);
    const char *b[] = {"tokenize", "--model", MINILM_TOK, "--input", path, NULL};
    check_fails(b, "no texts");
    remove(path);

    /* a tokenizer model this engine does not implement (Unigram) */
    const char *c[] = {"embed", "--model", MODEL("tiny-xlm-roberta"), "text", NULL};
    check_fails(c, "not supported");

    /* a truncated safetensors file in a copy of a model directory */
    char dir[] = "/tmp/ia_cli_model_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s/.' '%s/' && truncate -s 1000 '%s/model.safetensors'",
             MODEL("tiny-bert"), dir, dir);
    CHECK(system(cmd) == 0);
    const char *d[] = {"embed", "--model", dir, "text", NULL};
    check_fails(d, "model.safetensors");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(usage_errors_exit_2) {
    const char *a[] = {"embed", "x", NULL};
    run_result r = run_cli(a);
    CHECK_EQ_INT(r.status, 2);
    CHECK(strstr(r.err, "--model") != NULL);
    run_free(&r);
    const char *b[] = {"frobnicate", NULL};
    r = run_cli(b);
    CHECK_EQ_INT(r.status, 2);
    run_free(&r);
}

TEST(search_ranks_by_similarity) {
    const char *args[] = {"search", "--model", MODEL("tiny-bert"),    "--query",
                          "fox",    "--json",  "the quick brown fox", "an unrelated text",
                          NULL};
    run_result r = run_cli(args);
    CHECK_EQ_INT(r.status, 0);
    json_error_t err;
    json_t *j = json_loads(r.out, 0, &err);
    CHECK(j && json_array_size(j) == 2);
    double s0 = json_number_value(json_object_get(json_array_get(j, 0), "score"));
    double s1 = json_number_value(json_object_get(json_array_get(j, 1), "score"));
    CHECK(s0 >= s1);
    json_decref(j);
    run_free(&r);
}
