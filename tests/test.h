/*
 * A small test harness: TEST(name) { ... } defines a case, CHECK* macros
 * record failures without stopping the case, and main() (defined once per
 * test file by including this header) runs every case in its file and ends
 * with "N passed, N failed". A case may call SKIP("why") to report that the
 * machine cannot run it (for example an ISA this CPU lacks).
 */
#ifndef IA_TEST_H
#define IA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/base.h"

typedef void (*test_fn)(void);
typedef struct test_case {
    const char *name;
    test_fn fn;
} test_case;

static test_case test_cases[512];
static int test_count;
static int test_failed_checks;
static int test_skipped;

#define TEST(tname)                                                   \
    static void test_##tname(void);                                   \
    __attribute__((constructor)) static void register_##tname(void) { \
        test_cases[test_count].name = #tname;                         \
        test_cases[test_count++].fn = test_##tname;                   \
    }                                                                 \
    static void test_##tname(void)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            test_failed_checks++;                                                      \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            test_failed_checks++;                                                      \
        }                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
    do {                                                                                        \
        long long a_ = (long long)(a), b_ = (long long)(b);                                     \
        if (a_ != b_) {                                                                         \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
                    #b, a_, b_);                                                                \
            test_failed_checks++;                                                               \
        }                                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol))) {                                                           \
            fprintf(stderr, "  %s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, \
                    #a, #b, (double)(tol), a_, b_);                                                \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

/* The status must be IA_OK; prints the error message otherwise. */
#define CHECK_OK(expr)                                                                  \
    do {                                                                                \
        ia_status s_ = (expr);                                                          \
        if (s_ != IA_OK) {                                                              \
            fprintf(stderr, "  %s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, \
                    ia_status_str(s_), ia_error_message());                             \
            test_failed_checks++;                                                       \
        }                                                                               \
    } while (0)

/* The status must be `want` and the message must contain `needle`. */
#define CHECK_ERR(expr, want, needle)                                                              \
    do {                                                                                           \
        ia_error_clear();                                                                          \
        ia_status s_ = (expr);                                                                     \
        if (s_ != (want) || !strstr(ia_error_message(), (needle))) {                               \
            fprintf(stderr, "  %s:%d: %s gave %s \"%s\", wanted %s containing \"%s\"\n", __FILE__, \
                    __LINE__, #expr, ia_status_str(s_), ia_error_message(), ia_status_str(want),   \
                    (needle));                                                                     \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define SKIP(...)                       \
    do {                                \
        fprintf(stderr, "  skipped: "); \
        fprintf(stderr, __VA_ARGS__);   \
        fputc('\n', stderr);            \
        test_skipped++;                 \
        return;                         \
    } while (0)

/* $IA_SOURCE_DIR/rel (static buffer; tests are single-threaded). */
static inline const char *test_source_path(const char *rel) {
    static char buf[4][4096];
    static int slot;
    const char *root = getenv("IA_SOURCE_DIR");
    char *out = buf[slot++ % 4];
    snprintf(out, sizeof buf[0], "%s/%s", root ? root : ".", rel);
    return out;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < test_count; i++) {
        if (argc > 1 && !strstr(test_cases[i].name, argv[1]))
            continue;
        int before = test_failed_checks, skipped_before = test_skipped;
        test_cases[i].fn();
        if (test_failed_checks != before) {
            failed++;
            fprintf(stderr, "FAIL %s\n", test_cases[i].name);
        } else if (test_skipped != skipped_before) {
            skipped++;
            fprintf(stderr, "SKIP %s\n", test_cases[i].name);
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif /* IA_TEST_H */
