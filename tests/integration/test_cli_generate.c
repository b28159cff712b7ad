/*
 * The generate, chat and convert commands end to end on the tiny decoder
 * fixtures: greedy text equals transformers' (through --json's tokens), the
 * --json shape, chat with piped stdin, conversion then generation from the
 * GGUF, and bad input (missing model, prompt longer than the context,
 * invalid UTF-8, a model without a chat template): one clear error line and
 * exit 1. A stdout whose reader is gone ends generation quietly with status 0
 * (docs/CLI.md), streaming or --json, without a crash or a SIGPIPE death.
 */
#define _XOPEN_SOURCE 700 /* nftw in test_fs.h */
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "ia/base.h"
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

static const char *model(const char *arch) {
    static char buf[4][512];
    static int slot;
    char *out = buf[slot++ % 4];
    snprintf(out, sizeof buf[0], "%s", test_source_path("tests/fixtures/decoders/"));
    strncat(out, arch, sizeof buf[0] - strlen(out) - 1);
    return out;
}

static json_t *expected_greedy(const char *arch, int prompt) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/decoders/%s/expected.json", arch);
    json_t *e = NULL;
    CHECK_OK(ia_json_load_file(test_source_path(rel), 64 << 20, &e));
    json_t *g = json_incref(
        json_object_get(json_array_get(json_object_get(e, "prompts"), prompt), "greedy"));
    json_decref(e);
    return g;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(generate_json_shape_and_greedy_tokens) {
    run_result r = RUN("generate", "--model", model("gpt2"), "--prompt", "The quick brown fox",
                       "--temperature", "0", "--max-tokens", "64", "--json");
    EXPECT(r, 0);
    json_t *j = NULL;
    CHECK_OK(ia_json_parse(r.out, strlen(r.out), "stdout", &j));
    json_t *want = expected_greedy("gpt2", 0);
    if (j) {
        CHECK(json_is_string(json_object_get(j, "text")));
        CHECK(json_equal(json_object_get(j, "tokens"), want));
        CHECK_EQ_INT(json_integer_value(json_object_get(j, "prompt_tokens")), 12);
        CHECK_EQ_INT(json_integer_value(json_object_get(j, "completion_tokens")), 64);
        CHECK(strcmp(json_string_value(json_object_get(j, "finish_reason")), "length") == 0);
        json_t *t = json_object_get(j, "timings");
        CHECK(json_is_number(json_object_get(t, "prefill_ms")));
        CHECK(json_is_number(json_object_get(t, "decode_ms")));
        CHECK(json_is_number(json_object_get(t, "prefill_tokens_per_s")));
        CHECK(json_is_number(json_object_get(t, "decode_tokens_per_s")));
    }
    json_decref(j);
    json_decref(want);
    run_free(&r);
}

TEST(generate_streams_text_and_stop_strings) {
    run_result j = RUN("generate", "--model", model("qwen2"), "--prompt", "Once upon a time",
                       "--temperature", "0", "--max-tokens", "20", "--json");
    run_result r = RUN("generate", "--model", model("qwen2"), "--prompt", "Once upon a time",
                       "--temperature", "0", "--max-tokens", "20");
    EXPECT(j, 0);
    EXPECT(r, 0);
    json_t *o = NULL;
    CHECK_OK(ia_json_parse(j.out, strlen(j.out), "stdout", &o));
    const char *text = o ? json_string_value(json_object_get(o, "text")) : "";
    /* Streaming prints the same text, then a newline. */
    size_t tl = strlen(text);
    CHECK(strlen(r.out) == tl + 1 && strncmp(r.out, text, tl) == 0);
    /* Seeded sampling: same seed, same output. */
    run_result s1 = RUN("generate", "--model", model("qwen2"), "--prompt", "Once", "--seed", "5",
                        "--temperature", "1.0", "--max-tokens", "16", "--json");
    run_result s2 = RUN("generate", "--model", model("qwen2"), "--prompt", "Once", "--seed", "5",
                        "--temperature", "1.0", "--max-tokens", "16", "--json");
    EXPECT(s1, 0);
    json_t *j1 = NULL, *j2 = NULL;
    CHECK_OK(ia_json_parse(s1.out, strlen(s1.out), "stdout", &j1));
    CHECK_OK(ia_json_parse(s2.out, strlen(s2.out), "stdout", &j2));
    CHECK(j1 && j2 && json_equal(json_object_get(j1, "tokens"), json_object_get(j2, "tokens")));
    json_decref(j1);
    json_decref(j2);
    run_free(&s1);
    run_free(&s2);
    json_decref(o);
    run_free(&j);
    run_free(&r);
}

TEST(generate_bad_input_one_error_line) {
    run_result r = RUN("generate", "--model", "/nonexistent/model", "--prompt", "hi");
    EXPECT(r, 1);
    CHECK(count_lines(r.err) == 1 && strstr(r.err, "/nonexistent/model"));
    run_free(&r);
    r = RUN("generate", "--model", model("gpt2"), "--context", "4", "--prompt",
            "Once upon a time, in a small village");
    EXPECT(r, 1);
    CHECK(count_lines(r.err) == 1 && strstr(r.err, "context holds 4"));
    run_free(&r);
    r = RUN("generate", "--model", model("gpt2"), "--prompt", "bad \xc3( utf8");
    EXPECT(r, 1);
    CHECK(count_lines(r.err) == 1 && strstr(r.err, "UTF-8"));
    run_free(&r);
    r = RUN("generate", "--model", model("gpt2"), "--prompt", "x", "--top-p", "0");
    CHECK(r.status != 0 && count_lines(r.err) == 1 && strstr(r.err, "top_p"));
    run_free(&r);
    r = RUN("generate", "--model", model("gpt2"));
    EXPECT(r, 2);
    run_free(&r);
}

TEST(chat_with_piped_stdin) {
    const char *in = scratch_path("turns.txt");
    FILE *f = fopen(in, "w");
    fputs("Hello!\nWhat is 2+2?\n", f);
    fclose(f);
    run_result r = run_cli_input(in, (const char *[]){"chat", "--model", model("qwen2"), "--system",
                                                      "Be brief.", "--temperature", "0",
                                                      "--max-tokens", "12", NULL});
    EXPECT(r, 0);
    CHECK_MSG(count_lines(r.out) >= 2, "stdout: %s", r.out);
    run_free(&r);
    /* gpt2 has no chat template: one clear line. */
    r = run_cli_input(in, (const char *[]){"chat", "--model", model("gpt2"), NULL});
    EXPECT(r, 1);
    CHECK(count_lines(r.err) == 1 && strstr(r.err, "chat template"));
    run_free(&r);
    /* An unknown template: the markers looked for are named. */
    char *dir = temp_dir();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cp -r '%s/.' '%s/' && sed -i 's/<|im_start|>/<|weird|>/g; s/<|im_end|>/<|odd|>/g' "
             "'%s/tokenizer_config.json'",
             model("qwen2"), dir, dir);
    CHECK(system(cmd) == 0);
    r = run_cli_input(in, (const char *[]){"chat", "--model", dir, NULL});
    EXPECT(r, 1);
    CHECK_MSG(count_lines(r.err) == 1 && strstr(r.err, "unknown chat template"), "%s", r.err);
    run_free(&r);
    rm_rf(dir);
    free(dir);
}

TEST(convert_then_generate_from_gguf) {
    const char *out = scratch_path("llama.gguf");
    run_result r = RUN("convert", "--model", model("llama"), "-o", out, "--type", "f32");
    EXPECT(r, 0);
    run_free(&r);
    r = RUN("generate", "--model", out, "--prompt", "The quick brown fox", "--temperature", "0",
            "--max-tokens", "64", "--json");
    EXPECT(r, 0);
    json_t *j = NULL, *want = expected_greedy("llama", 0);
    CHECK_OK(ia_json_parse(r.out, strlen(r.out), "stdout", &j));
    CHECK(j && json_equal(json_object_get(j, "tokens"), want));
    json_decref(j);
    json_decref(want);
    run_free(&r);
    /* an architecture neither the decoders nor the encoders know */
    const char *dir = scratch_path("t5-model");
    CHECK(mkdir(dir, 0700) == 0);
    FILE *f = fopen(scratch_path("t5-model/config.json"), "w");
    CHECK(f != NULL);
    fputs("{\"model_type\": \"t5\", \"d_model\": 8}\n", f);
    fclose(f);
    r = RUN("convert", "--model", dir, "-o", out);
    EXPECT(r, 1);
    CHECK_MSG(count_lines(r.err) == 1 && strstr(r.err, "t5"), "stderr: %s", r.err);
    run_free(&r);
}

/* Runs the CLI with args and stdout a pipe whose read end is closed before
 * the child starts, so its first write to stdout fails (EPIPE, or SIGPIPE
 * were it not ignored: the child starts with the default action, whatever
 * this process does). stderr goes to a file. Returns the exit status (128 +
 * signal when killed) and the stderr text in *err. */
static int run_into_closed_pipe(const char *const *args, char **err) {
    const char *cli = getenv("IA_CLI");
    const char *argv[64];
    int n = 0;
    argv[n++] = cli ? cli : "ipfs-accelerate";
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *err_path = scratch_path("closed_pipe_err.txt");
    int fds[2];
    CHECK(pipe(fds) == 0);
    close(fds[0]); /* no reader from the start */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        int in = open("/dev/null", O_RDONLY),
            efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(in, 0);
        dup2(fds[1], 1);
        dup2(efd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    *err = run_slurp(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* docs/CLI.md: a reader of stdout that goes away stops generation quietly
 * with status 0. Deterministic: the pipe has no reader before the CLI
 * starts, so the very first streamed piece (or the --json object) fails,
 * however fast the model is; a long --max-tokens would otherwise keep it
 * busy until the context is full. */
TEST(closed_stdout_mid_stream_is_clean) {
    static const char *const variants[][16] = {
        {"generate", "--model", NULL, "--prompt", "Once", "--temperature", "0", "--max-tokens",
         "100000", "--ignore-eos", NULL},
        {"generate", "--model", NULL, "--prompt", "Once", "--temperature", "0", "--max-tokens",
         "100000", "--ignore-eos", "--json", NULL},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const char *args[16];
        for (int i = 0; i < 16; i++)
            args[i] = i == 2 ? model("gpt2") : variants[v][i];
        char *err = NULL;
        int rc = run_into_closed_pipe(args, &err);
        CHECK_MSG(rc == 0, "%s: exit status %d (128+13 is SIGPIPE), stderr: %s",
                  v ? "--json" : "streaming", rc, err);
        CHECK_MSG(err[0] == '\0', "%s: stderr: %s", v ? "--json" : "streaming", err);
        free(err);
    }
}
