/*
 * bench/stats: percentiles, summaries, Mann-Whitney U and change points
 * against numpy/scipy (tests/fixtures/bench/stats.json, made by
 * tools/make_bench_stats_fixtures.py).
 */
#include <jansson.h>

#include "ia/bench.h"
#include "test.h"

static json_t *fixture(void) {
    json_t *doc = NULL;
    ia_status st =
        ia_json_load_file(test_source_path("tests/fixtures/bench/stats.json"), 1 << 22, &doc);
    if (st != IA_OK)
        fprintf(stderr, "  cannot load the fixture: %s\n", ia_error_message());
    return doc;
}

/* A JSON array of numbers as a malloc'd double array. */
static double *numbers(const json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    double *x = malloc((*n ? *n : 1) * sizeof *x);
    for (size_t i = 0; i < *n; i++)
        x[i] = json_number_value(json_array_get(arr, i));
    return x;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(percentiles_match_numpy) {
    json_t *doc = fixture();
    CHECK(doc != NULL);
    if (!doc)
        return;
    const json_t *cases = json_object_get(doc, "percentiles");
    CHECK(json_array_size(cases) >= 5);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *k = json_array_get(cases, c);
        size_t n, nq, np;
        double *x = numbers(json_object_get(k, "x"), &n);
        double *q = numbers(json_object_get(k, "q"), &nq);
        double *want = numbers(json_object_get(k, "percentiles"), &np);
        double *sorted = malloc(n * sizeof *sorted);
        memcpy(sorted, x, n * sizeof *x);
        qsort(sorted, n, sizeof *sorted, cmp);
        for (size_t i = 0; i < nq; i++) {
            double got = ia_stats_percentile(sorted, n, q[i]);
            CHECK_NEAR(got, want[i], 1e-9 * fabs(want[i]) + 1e-15);
        }
        ia_stats_summary s;
        CHECK_OK(ia_stats_summarize(x, n, &s));
        double mean = json_number_value(json_object_get(k, "mean"));
        double sd = json_number_value(json_object_get(k, "std"));
        CHECK_NEAR(s.mean, mean, 1e-9 * fabs(mean));
        CHECK_NEAR(s.stddev, sd, 1e-9 * fabs(sd) + 1e-15);
        CHECK_NEAR(s.p50, ia_stats_percentile(sorted, n, 50), 0);
        CHECK_EQ_INT(s.n, n);
        free(x);
        free(q);
        free(want);
        free(sorted);
    }
    json_decref(doc);
}

TEST(mann_whitney_matches_scipy) {
    json_t *doc = fixture();
    if (!doc)
        return;
    const json_t *cases = json_object_get(doc, "mwu");
    int exact = 0, normal = 0;
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *k = json_array_get(cases, c);
        size_t nx, ny;
        double *x = numbers(json_object_get(k, "x"), &nx);
        double *y = numbers(json_object_get(k, "y"), &ny);
        ia_stats_mwu r;
        CHECK_OK(ia_stats_mann_whitney(x, nx, y, ny, &r));
        double u1 = json_number_value(json_object_get(k, "u1"));
        double p = json_number_value(json_object_get(k, "p"));
        bool want_exact = json_is_true(json_object_get(k, "exact"));
        CHECK_NEAR(r.u1, u1, 1e-9);
        CHECK_MSG(fabs(r.p - p) <= 1e-9 * p + 1e-12, "case %zu: p %.17g, scipy %.17g", c, r.p, p);
        CHECK_EQ_INT(r.exact, want_exact);
        exact += want_exact;
        normal += !want_exact;
        free(x);
        free(y);
    }
    CHECK(exact >= 3 && normal >= 3); /* both branches are exercised */
    json_decref(doc);
}

TEST(mann_whitney_rejects_bad_input) {
    double x[] = {1, 2, 3}, y[] = {1, NAN};
    ia_stats_mwu r;
    CHECK_ERR(ia_stats_mann_whitney(x, 3, y, 0, &r), IA_EINVAL, "non-empty");
    CHECK_ERR(ia_stats_mann_whitney(x, 3, y, 2, &r), IA_EINVAL, "not finite");
    /* All values equal: no evidence of a difference, never NaN. */
    double a[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2}, b[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    CHECK_OK(ia_stats_mann_whitney(a, 10, b, 10, &r));
    CHECK_NEAR(r.p, 1.0, 0);
}

TEST(change_points_find_known_steps) {
    json_t *doc = fixture();
    if (!doc)
        return;
    const json_t *cases = json_object_get(doc, "changes");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *k = json_array_get(cases, c);
        size_t n, ns;
        double *x = numbers(json_object_get(k, "x"), &n);
        double *steps = numbers(json_object_get(k, "steps"), &ns);
        size_t cps[16], n_cps = 99;
        CHECK_OK(ia_stats_change_points(x, n, 0, 2, cps, 16, &n_cps));
        CHECK_MSG(n_cps == ns, "case %zu: %zu change points, want %zu", c, n_cps, ns);
        for (size_t i = 0; i < ns && i < n_cps; i++)
            CHECK_MSG(fabs((double)cps[i] - steps[i]) <= 1, "case %zu: change at %zu, want %g", c,
                      cps[i], steps[i]);
        free(x);
        free(steps);
    }
    json_decref(doc);
}

TEST(change_points_edges) {
    size_t cps[4], n = 99;
    double flat[] = {1, 1, 1, 1, 1, 1};
    CHECK_OK(ia_stats_change_points(flat, 6, 0, 2, cps, 4, &n));
    CHECK_EQ_INT(n, 0);
    double step[] = {1, 1, 1, 5, 5, 5}; /* noise-free step */
    CHECK_OK(ia_stats_change_points(step, 6, 0, 2, cps, 4, &n));
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(cps[0], 3);
    CHECK_OK(ia_stats_change_points(step, 3, 0, 2, cps, 4, &n)); /* too short to split */
    CHECK_EQ_INT(n, 0);
    /* An explicit penalty larger than the step's gain keeps it whole. */
    CHECK_OK(ia_stats_change_points(step, 6, 1e6, 2, cps, 4, &n));
    CHECK_EQ_INT(n, 0);
}

TEST(summary_rejects_empty) {
    ia_stats_summary s;
    double x[] = {INFINITY};
    CHECK_ERR(ia_stats_summarize(x, 0, &s), IA_EINVAL, "empty");
    CHECK_ERR(ia_stats_summarize(x, 1, &s), IA_EINVAL, "finite");
    CHECK(isnan(ia_stats_percentile(x, 0, 50)));
}
