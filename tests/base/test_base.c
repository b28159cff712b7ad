/* Tests for base/: errors, arena, thread pool, files, JSON, UTF-8. */
#include <stdatomic.h>

#include "ia/base.h"
#include "test.h"

TEST(error_message_and_prefix) {
    CHECK_EQ_INT(ia_error_set(IA_EPARSE, "field '%s' is bad", "x"), IA_EPARSE);
    CHECK(strcmp(ia_error_message(), "field 'x' is bad") == 0);
    ia_error_prefix("config.json");
    CHECK(strcmp(ia_error_message(), "config.json: field 'x' is bad") == 0);
    ia_error_clear();
    CHECK(ia_error_message()[0] == '\0');
    CHECK(strcmp(ia_status_str(IA_ENOTFOUND), "not found") == 0);
}

TEST(arena_alignment_growth_and_reset) {
    ia_arena *a = ia_arena_create(64);
    CHECK(a != NULL);
    char *p = ia_arena_alloc(a, 10, 1);
    float *q = ia_arena_alloc(a, 1000 * sizeof(float), 64);
    CHECK(p && q);
    CHECK(((uintptr_t)q & 63) == 0);
    for (int i = 0; i < 1000; i++)
        q[i] = (float)i;
    CHECK_EQ_INT(ia_arena_used(a), 10 + 4000);
    ia_arena_reset(a);
    CHECK_EQ_INT(ia_arena_used(a), 0);
    float *r = ia_arena_alloc(a, 1000 * sizeof(float), 64);
    CHECK(r != NULL);
    ia_arena_destroy(a);
}

static void add_task(void *ctx, size_t task, int thread) {
    atomic_long *sum = ctx;
    (void)thread;
    atomic_fetch_add(sum, (long)task + 1);
}

TEST(threadpool_runs_every_task_once) {
    for (int threads = 1; threads <= 4; threads++) {
        ia_threadpool *pool = ia_threadpool_create(threads);
        CHECK(pool != NULL);
        CHECK_EQ_INT(ia_threadpool_size(pool), threads);
        for (int round = 0; round < 200; round++) {
            atomic_long sum = 0;
            size_t n = (size_t)(round % 37) + 1;
            ia_threadpool_run(pool, n, add_task, &sum);
            CHECK_EQ_INT(atomic_load(&sum), (long)(n * (n + 1) / 2));
        }
        ia_threadpool_destroy(pool);
    }
    CHECK(ia_cpu_physical_cores() >= 1);
}

TEST(file_read_and_map) {
    char path[] = "/tmp/ia_test_file_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"a\": 1}", f);
    fclose(f);
    char *text;
    size_t len;
    CHECK_OK(ia_file_read_all(path, 100, &text, &len));
    CHECK_EQ_INT(len, 8);
    free(text);
    CHECK_ERR(ia_file_read_all(path, 4, &text, &len), IA_ERANGE, "limit");
    ia_mapped_file mf;
    CHECK_OK(ia_file_map(path, &mf));
    CHECK_EQ_INT(mf.size, 8);
    CHECK(mf.data[0] == '{');
    ia_file_unmap(&mf);
    CHECK(ia_file_exists(path));
    remove(path);
    CHECK(!ia_file_exists(path));
    CHECK_ERR(ia_file_map(path, &mf), IA_ENOTFOUND, "cannot open");
    char *joined = ia_path_join("/a/b", "c.json");
    CHECK(strcmp(joined, "/a/b/c.json") == 0);
    free(joined);
}

TEST(json_errors_name_position) {
    struct json_t *j;
    CHECK_ERR(ia_json_parse("{\"a\": }", 7, "x.json", &j), IA_EPARSE,
              "x.json: invalid JSON at line 1");
    CHECK_ERR(ia_json_parse("{\"a\": 1, \"a\": 2}", 16, "d.json", &j), IA_EPARSE, "d.json");
}

TEST(utf8_validation) {
    size_t bad = 0;
    CHECK(ia_utf8_valid("h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80", 15, &bad));
    CHECK(!ia_utf8_valid("ab\xc0\xaf", 4, &bad)); /* overlong */
    CHECK_EQ_INT(bad, 2);
    CHECK(!ia_utf8_valid("\xed\xa0\x80", 3, &bad));     /* surrogate */
    CHECK(!ia_utf8_valid("\xf4\x90\x80\x80", 4, &bad)); /* > U+10FFFF */
    CHECK(!ia_utf8_valid("x\xe4\xb8", 3, &bad));        /* truncated */
    CHECK_EQ_INT(bad, 1);
    CHECK(ia_utf8_valid("", 0, &bad));
}

TEST(log_levels_parse) {
    ia_log_level l;
    CHECK_OK(ia_log_level_parse("debug", &l));
    CHECK_EQ_INT(l, IA_LOG_DEBUG);
    CHECK_ERR(ia_log_level_parse("loud", &l), IA_EINVAL, "loud");
}

TEST(text_lines_split_on_newline_only) {
    char path[] = "/tmp/ia_test_lines_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("one\r\ntwo\rstill two\n\nlast", f);
    fclose(f);
    ia_text_lines tl;
    CHECK_OK(ia_text_lines_read(path, 1 << 20, &tl));
    CHECK_EQ_INT(tl.n, 4);
    if (tl.n == 4) {
        CHECK(strcmp(tl.lines[0], "one") == 0);
        CHECK(strcmp(tl.lines[1], "two\rstill two") == 0);
        CHECK_EQ_INT(tl.lens[2], 0);
        CHECK(strcmp(tl.lines[3], "last") == 0);
    }
    ia_text_lines_free(&tl);
    f = fopen(path, "w");
    fputs("ok\nbad \xc3\x28\n", f);
    fclose(f);
    CHECK_ERR(ia_text_lines_read(path, 1 << 20, &tl), IA_EINVAL, ":2: invalid UTF-8 at byte 5");
    remove(path);
}

TEST(array_reserve_grows_keeps_and_refuses_overflow) {
    int *v = NULL;
    size_t cap = 0;
    CHECK(ia_array_reserve(&v, &cap, 1, sizeof *v, 4));
    CHECK(v != NULL && cap == 4);
    for (int i = 0; i < 4; i++)
        v[i] = i;
    CHECK(ia_array_reserve(&v, &cap, 4, sizeof *v, 4)); /* enough already */
    CHECK(cap == 4);
    CHECK(ia_array_reserve(&v, &cap, 9, sizeof *v, 4));
    CHECK(cap == 16 && v[3] == 3);
    int *before = v;
    size_t cap_before = cap;
    CHECK(!ia_array_reserve(&v, &cap, SIZE_MAX / 2, sizeof *v, 4)); /* bytes overflow */
    CHECK(v == before && cap == cap_before);
    ia_error_clear();
    free(v);
}
