/*
 * Statistics for benchmark samples: percentiles, summaries, the
 * Mann-Whitney U test and change-point detection. Pure functions over
 * arrays; tests/bench/test_stats.c checks them against scipy/numpy on
 * fixtures made by tools/make_bench_stats_fixtures.py.
 *
 * Percentiles use numpy's default (method="linear", R's type 7). The
 * Mann-Whitney test follows scipy.stats.mannwhitneyu(method="auto",
 * use_continuity=True, alternative="two-sided") step for step: average ranks,
 * U1 = R1 - n1(n1+1)/2, U = max(U1, n1 n2 - U1), p = 2 SF(U), clipped to 1.
 * The exact null distribution of U is the coefficient list of the Gaussian
 * binomial [n1+n2 choose n1]_q, built here one factor at a time.
 */
#include "ia/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ia_stats_percentile(const double *sorted, size_t n, double q) {
    if (n == 0)
        return NAN;
    double h = (double)(n - 1) * q / 100.0;
    if (h <= 0)
        return sorted[0];
    if (h >= (double)(n - 1))
        return sorted[n - 1];
    size_t lo = (size_t)floor(h);
    double frac = h - (double)lo;
    /* numpy's _lerp: a + (b - a) t, switched to b - (b - a)(1 - t) for t >= 0.5 */
    double a = sorted[lo], b = sorted[lo + 1], diff = b - a;
    return frac >= 0.5 ? b - diff * (1.0 - frac) : a + diff * frac;
}

ia_status ia_stats_summarize(const double *x, size_t n, ia_stats_summary *out) {
    memset(out, 0, sizeof *out);
    if (n == 0)
        return ia_error_set(IA_EINVAL, "statistics of an empty sample");
    double *s = ia_malloc_array(n, sizeof *s);
    if (!s)
        return IA_ENOMEM;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            free(s);
            return ia_error_set(IA_EINVAL, "sample %zu is not a finite number", i);
        }
        s[i] = x[i];
        sum += x[i];
    }
    qsort(s, n, sizeof *s, cmp_double);
    out->n = n;
    out->mean = sum / (double)n;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - out->mean) * (x[i] - out->mean);
    out->stddev = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
    out->min = s[0];
    out->max = s[n - 1];
    out->p50 = ia_stats_percentile(s, n, 50);
    out->p90 = ia_stats_percentile(s, n, 90);
    out->p99 = ia_stats_percentile(s, n, 99);
    free(s);
    return IA_OK;
}

/* ---- Mann-Whitney U ------------------------------------------------------------- */

typedef struct ranked {
    double v;
    size_t from; /* 0: x, 1: y */
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    return cmp_double(&((const ranked *)a)->v, &((const ranked *)b)->v);
}

/* P(U >= u) under H0 for sample sizes m <= n without ties, from the counts
 * of the Gaussian binomial coefficient; NAN when too large. */
static double mwu_exact_sf(size_t m, size_t n, double u) {
    size_t mn = m * n;
    if (mn > 10000000)
        return NAN;
    long double *c = calloc(mn + 1, sizeof *c);
    if (!c)
        return NAN;
    c[0] = 1;
    size_t deg = 0;
    /* [n+i choose i] = [n+i-1 choose i-1] (1 - q^(n+i)) / (1 - q^i) */
    for (size_t i = 1; i <= m; i++) {
        size_t k = n + i;
        deg += n;
        for (size_t j = deg; j >= k; j--) /* multiply by (1 - q^k), top down */
            c[j] -= c[j - k];
        for (size_t j = i; j <= deg; j++) /* divide by (1 - q^i), bottom up */
            c[j] += c[j - i];
    }
    long double total = 0;
    for (size_t j = 0; j <= mn; j++)
        total += c[j];
    /* Like scipy: sum the short side of the symmetric distribution. */
    size_t k = (size_t)u;
    size_t kc = mn - k;
    long double p;
    if (k < kc) {
        long double cdf = 0;
        for (size_t j = 0; j <= k; j++)
            cdf += c[j];
        p = 1.0L - cdf / total + c[k] / total;
    } else {
        long double cdf = 0;
        for (size_t j = 0; j <= kc; j++)
            cdf += c[j];
        p = cdf / total;
    }
    free(c);
    return (double)p;
}

ia_status ia_stats_mann_whitney(const double *x, size_t n1, const double *y, size_t n2,
                                ia_stats_mwu *out) {
    memset(out, 0, sizeof *out);
    if (n1 == 0 || n2 == 0)
        return ia_error_set(IA_EINVAL, "Mann-Whitney U needs two non-empty samples (%zu, %zu)", n1,
                            n2);
    size_t n = n1 + n2;
    ranked *r = ia_malloc_array(n, sizeof *r);
    if (!r)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        r[i].v = i < n1 ? x[i] : y[i - n1];
        r[i].from = i < n1 ? 0 : 1;
        if (!isfinite(r[i].v)) {
            free(r);
            return ia_error_set(IA_EINVAL, "Mann-Whitney U: value %zu is not finite", i);
        }
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    double r1 = 0, tie_term = 0;
    bool ties = false;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && r[j].v == r[i].v)
            j++;
        double t = (double)(j - i), rank = ((double)i + 1 + (double)j) / 2.0;
        for (size_t k = i; k < j; k++)
            if (r[k].from == 0)
                r1 += rank;
        if (j - i > 1)
            ties = true;
        tie_term += t * t * t - t;
        i = j;
    }
    free(r);
    double dn1 = (double)n1, dn2 = (double)n2;
    double u1 = r1 - dn1 * (dn1 + 1) / 2, u2 = dn1 * dn2 - u1;
    double u = u1 > u2 ? u1 : u2;
    out->u1 = u1;
    bool exact = !(n1 > 8 && n2 > 8) && !ties;
    double p;
    if (exact) {
        p = mwu_exact_sf(n1 < n2 ? n1 : n2, n1 < n2 ? n2 : n1, u);
        if (isnan(p))
            return ia_error_set(IA_ENOMEM, "exact Mann-Whitney table for %zu x %zu is too large",
                                n1, n2);
    } else {
        double dn = (double)n;
        double s = sqrt(dn1 * dn2 / 12.0 * ((dn + 1) - tie_term / (dn * (dn - 1))));
        double z = (u - dn1 * dn2 / 2.0 - 0.5) / s;
        p = 0.5 * erfc(z / sqrt(2.0)); /* normal SF */
        if (s == 0)
            p = 1.0; /* all values equal: no evidence either way (scipy gives NaN) */
    }
    p *= 2;
    out->p = p < 0 ? 0 : p > 1 ? 1 : p;
    out->exact = exact;
    return IA_OK;
}

/* ---- change points ------------------------------------------------------------------- */

/* The automatic penalty is CP_PENALTY_FACTOR * ln(n) * sigma^2. */
#define CP_PENALTY_FACTOR 4.0

/* L2 cost of x[a..b) from prefix sums. */
static double seg_cost(const double *s1, const double *s2, size_t a, size_t b) {
    double n = (double)(b - a), sum = s1[b] - s1[a];
    double c = (s2[b] - s2[a]) - sum * sum / n;
    return c > 0 ? c : 0;
}

typedef struct cp_state {
    const double *s1, *s2;
    double penalty; /* fixed penalty; 0: automatic */
    double mad_var; /* automatic: sigma^2 from the first differences */
    double log_n;
    size_t min_seg;
    size_t *cps, cap, n;
} cp_state;

static void cp_split(cp_state *st, size_t a, size_t b) {
    if (b - a < 2 * st->min_seg)
        return;
    double whole = seg_cost(st->s1, st->s2, a, b), best = whole;
    size_t at = 0;
    for (size_t k = a + st->min_seg; k + st->min_seg <= b; k++) {
        double c = seg_cost(st->s1, st->s2, a, k) + seg_cost(st->s1, st->s2, k, b);
        if (c < best) {
            best = c;
            at = k;
        }
    }
    double penalty = st->penalty;
    if (penalty <= 0) {
        /* The larger of the global robust variance and this split's own
         * residual variance: one unlucky MAD cannot make noise a change. */
        double local = b - a > 2 ? best / (double)(b - a - 2) : 0;
        penalty = CP_PENALTY_FACTOR * st->log_n * fmax(st->mad_var, local);
    }
    if (!at || whole - best <= penalty)
        return;
    cp_split(st, a, at);
    if (st->n < st->cap)
        st->cps[st->n] = at;
    st->n++;
    cp_split(st, at, b);
}

ia_status ia_stats_change_points(const double *x, size_t n, double penalty, size_t min_seg,
                                 size_t *cps, size_t cap, size_t *n_cps) {
    *n_cps = 0;
    if (min_seg == 0)
        min_seg = 2;
    if (n < 2 * min_seg)
        return IA_OK;
    double *s1 = ia_calloc(n + 1, sizeof *s1), *s2 = ia_calloc(n + 1, sizeof *s2);
    double *d = ia_malloc_array(n, sizeof *d);
    ia_status st = IA_OK;
    if (!s1 || !s2 || !d) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            st = ia_error_set(IA_EINVAL, "change points: value %zu is not finite", i);
            goto done;
        }
        s1[i + 1] = s1[i] + x[i];
        s2[i + 1] = s2[i] + x[i] * x[i];
    }
    double mad_var = 0;
    if (penalty <= 0) {
        /* sigma from the median |first difference|: a step moves only one
         * difference, noise moves all of them (MAD scale 1.4826, /sqrt 2). */
        for (size_t i = 0; i + 1 < n; i++)
            d[i] = fabs(x[i + 1] - x[i]);
        qsort(d, n - 1, sizeof *d, cmp_double);
        double mad = ia_stats_percentile(d, n - 1, 50);
        double sigma = 1.4826 * mad / sqrt(2.0);
        if (sigma <= 0) {
            /* A piecewise-constant series: any real step is a change. */
            double scale = 0;
            for (size_t i = 0; i < n; i++)
                scale = fmax(scale, fabs(x[i]));
            sigma = scale > 0 ? scale * 1e-9 : 1e-12;
        }
        mad_var = sigma * sigma;
    }
    cp_state cs = {s1, s2, penalty, mad_var, log((double)n), min_seg, cps, cap, 0};
    cp_split(&cs, 0, n);
    *n_cps = cs.n < cap ? cs.n : cap;
done:
    free(s1);
    free(s2);
    free(d);
    return st;
}
