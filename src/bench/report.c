/*
 * `bench report`: the results database as a document, in Markdown, JSON or
 * one self-contained HTML page with inline SVG charts (no scripts, no
 * external assets, so it opens anywhere, offline, and can be attached to a
 * CI run).
 *
 * Sections: database statistics; performance (the latest complete run of
 * each model, hardware, engine and configuration, as `bench query
 * performance`); batch scaling (throughput against batch for each group with
 * two or more batch sizes); latency ranges (min, p50, p90, p99, max per
 * configuration); history (p50 over runs per configuration, the latest run
 * marked when `bench regressions` calls it a regression, change points
 * drawn); regressions; and the latest failures. Charts are drawn from the
 * same rows the tables show.
 */
#include "bench/bench_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHART_W 980
#define LABEL_W 470
#define LABEL_MAX 76 /* characters; longer labels are cut with "..." */
#define MAX_FAILURES 50

/* ---- text helpers -------------------------------------------------------------------- */

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Markdown table cells: '|' and newlines would break the row. */
static void md_text(FILE *f, const char *s) {
    for (; s && *s; s++)
        fputs(*s == '|' ? "\\|" : *s == '\n' ? " " : (char[2]){*s, 0}, f);
}

static double num(const ia_bench_rows *r, size_t row, size_t col) {
    const char *s = ia_bench_rows_get(r, row, col);
    return s ? strtod(s, NULL) : NAN;
}

static const char *str(const ia_bench_rows *r, size_t row, size_t col) {
    const char *s = ia_bench_rows_get(r, row, col);
    return s ? s : "";
}

/* A short number for tables and labels. */
static const char *fmt_num(char *buf, size_t cap, const char *s) {
    if (!s)
        return "";
    char *end;
    double v = strtod(s, &end);
    if (*s && !*end && strchr(s, '.') && isfinite(v)) {
        snprintf(buf, cap, "%.4g", v);
        return buf;
    }
    return s;
}

/* ---- data ------------------------------------------------------------------------------ */

typedef struct report_data {
    ia_bench_rows stats, perf, history, failures;
    ia_bench_comparison *regs;
    size_t n_regs;
} report_data;

/* performance columns (ia_bench_query_named "performance") */
enum {
    P_MODEL,
    P_FAMILY,
    P_HW,
    P_ENGINE,
    P_DEVICE,
    P_DTYPE,
    P_SCEN,
    P_METRIC,
    P_BATCH,
    P_SEQ,
    P_GEN,
    P_P50,
    P_P90,
    P_P99,
    P_MEAN,
    P_THR,
    P_UNIT,
    P_N,
    P_RUN,
    P_STARTED,
    P_PARAMS
};
/* history columns */
enum {
    H_RESULT,
    H_MODEL,
    H_HW,
    H_ENGINE,
    H_DEVICE,
    H_DTYPE,
    H_SCEN,
    H_METRIC,
    H_BATCH,
    H_SEQ,
    H_GEN,
    H_RUN,
    H_STARTED,
    H_P50,
    H_MIN,
    H_MAX
};

static ia_status data_load(ia_bench_db *db, const ia_bench_filter *filter, report_data *d) {
    memset(d, 0, sizeof *d);
    ia_bench_filter none = {0};
    if (!filter)
        filter = &none;
    char model_like[300], hw_like[300];
    snprintf(model_like, sizeof model_like, "%%%s%%", filter->model ? filter->model : "");
    snprintf(hw_like, sizeof hw_like, "%%%s%%", filter->hardware ? filter->hardware : "");
    const char *p[] = {filter->model, model_like,    filter->hardware,
                       hw_like,       filter->dtype, filter->dtype};
    ia_status st;
    if ((st = ia_bench_query_named(db, "stats", NULL, &d->stats)) ||
        (st = ia_bench_query_named(db, "performance", filter, &d->perf)))
        return st;
    st = ia_bench_db_query(
        db,
        "SELECT r.id, m.name, h.cpu_model, u.engine, r.device, r.dtype, r.scenario, r.metric,"
        " r.batch, r.seq, r.gen_tokens, u.id, u.started_at, r.p50 * 1000, r.min * 1000,"
        " r.max * 1000"
        " FROM results r JOIN runs u ON u.id = r.run_id JOIN models m ON m.id = u.model_id"
        " JOIN hardware h ON h.id = u.hardware_id WHERE u.status = 'complete'"
        " AND (CAST(? AS TEXT) IS NULL OR m.name LIKE ?)"
        " AND (CAST(? AS TEXT) IS NULL OR h.hw_key LIKE ?)"
        " AND (CAST(? AS TEXT) IS NULL OR r.dtype = ?) AND r.metric <> 'server'"
        " ORDER BY m.name, h.cpu_model, u.engine, r.device, r.dtype, r.scenario, r.metric,"
        " r.batch, r.seq, r.gen_tokens, u.started_at, u.id",
        p, 6, &d->history);
    if (st)
        return st;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", MAX_FAILURES);
    const char *fp[] = {filter->model, model_like, lim};
    st = ia_bench_db_query(
        db,
        "SELECT u.id AS run_id, u.started_at, m.name AS model, f.device, f.dtype, f.scenario,"
        " f.batch, f.seq, f.class, f.message FROM failures f JOIN runs u ON u.id = f.run_id"
        " JOIN models m ON m.id = u.model_id"
        " WHERE (CAST(? AS TEXT) IS NULL OR m.name LIKE ?)"
        " ORDER BY u.started_at DESC, f.id LIMIT CAST(? AS INTEGER)",
        fp, 3, &d->failures);
    if (st)
        return st;
    return ia_bench_regressions(db, NULL, 0.05, 0.01, &d->regs, &d->n_regs);
}

static void data_free(report_data *d) {
    ia_bench_rows_free(&d->stats);
    ia_bench_rows_free(&d->perf);
    ia_bench_rows_free(&d->history);
    ia_bench_rows_free(&d->failures);
    free(d->regs);
}

/* Whether two history rows are the same configuration. */
static bool same_config(const ia_bench_rows *h, size_t a, size_t b) {
    for (size_t c = H_MODEL; c <= H_GEN; c++)
        if (strcmp(str(h, a, c), str(h, b, c)) != 0)
            return false;
    return true;
}

/* Whether two performance rows differ only in batch. */
static bool same_batch_group(const ia_bench_rows *p, size_t a, size_t b) {
    for (size_t c = P_MODEL; c <= P_GEN; c++)
        if (c != P_BATCH && strcmp(str(p, a, c), str(p, b, c)) != 0)
            return false;
    /* the server scenario's rows are rates, not batch sizes */
    return strcmp(str(p, a, P_UNIT), str(p, b, P_UNIT)) == 0 &&
           strcmp(str(p, a, P_METRIC), "server") != 0;
}

static const ia_bench_comparison *regression_of(const report_data *d, int64_t result_id) {
    for (size_t i = 0; i < d->n_regs; i++)
        if (d->regs[i].result_b == result_id)
            return &d->regs[i];
    return NULL;
}

/* Cuts a label to LABEL_MAX characters (at a UTF-8 boundary). */
static void cut_label(char *s) {
    size_t n = strlen(s);
    if (n <= LABEL_MAX)
        return;
    size_t k = LABEL_MAX - 3;
    while (k && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    memcpy(s + k, "...", 4);
}

/* " ttft g=64", " @12.5/s" (a server rate) or "" for plain latency results. */
static void metric_suffix(const char *metric, const char *gen, const char *params, char *out,
                          size_t cap) {
    out[0] = '\0';
    if (!metric || strcmp(metric, "latency") == 0)
        return;
    const char *rate = params ? strstr(params, "\"target_rate\":") : NULL;
    if (rate)
        snprintf(out, cap, " @%.4g/s", strtod(rate + 14, NULL)); /* the scenario says server */
    else
        snprintf(out, cap, " %s%s%s", metric, gen && *gen ? " g=" : "", gen ? gen : "");
}

/* "model dtype scenario[ metric] b=B s=S | hardware | engine device": the
 * part that tells rows apart first, so that a cut label keeps it. */
static void perf_label(const ia_bench_rows *p, size_t i, bool with_batch, char *out, size_t cap) {
    char m[96], b[40] = "";
    metric_suffix(ia_bench_rows_get(p, i, P_METRIC), ia_bench_rows_get(p, i, P_GEN),
                  ia_bench_rows_get(p, i, P_PARAMS), m, sizeof m);
    if (with_batch)
        snprintf(b, sizeof b, " b=%s", str(p, i, P_BATCH));
    snprintf(out, cap, "%s %s %s%s%s s=%s | %s | %s %s", str(p, i, P_MODEL), str(p, i, P_DTYPE),
             str(p, i, P_SCEN), m, b, str(p, i, P_SEQ), str(p, i, P_HW), str(p, i, P_ENGINE),
             str(p, i, P_DEVICE));
    cut_label(out);
}

/* ---- SVG ----------------------------------------------------------------------------------- */

/* A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above v. */
static double nice_max(double v) {
    if (!(v > 0))
        return 1;
    double p = pow(10, floor(log10(v)));
    for (int k = 0; k < 3; k++) {
        double m = (k == 0 ? 1 : k == 1 ? 2 : 5) * p;
        if (m >= v)
            return m;
    }
    return 10 * p;
}

/* Horizontal bars, one per labelled value. */
static void svg_bars(FILE *f, const char *title, const char *unit, const char *const *labels,
                     const double *v, size_t n) {
    double max = 0;
    for (size_t i = 0; i < n; i++)
        max = isfinite(v[i]) && v[i] > max ? v[i] : max;
    max = nice_max(max);
    int h = 40 + (int)n * 22 + 24;
    fprintf(f,
            "<svg class=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">\n<title>",
            CHART_W, h, CHART_W, h);
    html_text(f, title);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", CHART_W, h);
    double plot_w = CHART_W - LABEL_W - 80;
    for (int t = 0; t <= 4; t++) {
        double x = LABEL_W + plot_w * t / 4;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"30\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.4g</text>\n",
                x, x, h - 20, x, h - 6, max * t / 4);
    }
    for (size_t i = 0; i < n; i++) {
        double y = 36 + (double)i * 22;
        double w = isfinite(v[i]) ? plot_w * v[i] / max : 0;
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">", LABEL_W - 6,
                y + 13);
        html_text(f, labels[i]);
        fprintf(f,
                "</text><rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"16\" fill=\"#3b7dd8\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%.4g</text>\n",
                LABEL_W, y, w, LABEL_W + w + 4, y + 13, v[i]);
    }
    fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"12\" font-weight=\"bold\">", LABEL_W);
    html_text(f, unit);
    fputs("</text>\n</svg>\n", f);
}

/* One line (y over x) with points; `marked` points are red. */
static void svg_line(FILE *f, const char *title, const char *xlab, const char *ylab,
                     const double *x, const double *y, const bool *marked, const size_t *cps,
                     size_t n_cps, size_t n) {
    const int W = 520, H = 260, L = 60, R = 20, T = 30, B = 40;
    double xmax = 0, ymax = 0, xmin = INFINITY;
    for (size_t i = 0; i < n; i++) {
        xmax = fmax(xmax, x[i]);
        xmin = fmin(xmin, x[i]);
        ymax = isfinite(y[i]) ? fmax(ymax, y[i]) : ymax;
    }
    ymax = nice_max(ymax);
    if (!(xmax > xmin))
        xmax = xmin + 1;
    fprintf(f,
            "<svg class=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">\n<title>",
            W, H, W, H);
    html_text(f, title);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", W, H);
    double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + pw * ((v)-xmin) / (xmax - xmin))
#define PY(v) (T + ph - ph * (v) / ymax)
    for (int t = 0; t <= 4; t++) {
        double yy = T + ph - ph * t / 4;
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n",
                L, yy, W - R, yy, L - 4, yy + 4, ymax * t / 4);
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g</text>\n",
                PX(x[i]), H - B + 16, x[i]);
    for (size_t k = 0; k < n_cps; k++)
        if (cps[k] < n)
            fprintf(f,
                    "<line class=\"change-point\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#e08a00\" stroke-dasharray=\"4 3\"/>\n",
                    PX(x[cps[k]]) - 0.5 * (n > 1 ? pw / (double)(n - 1) : 0), T,
                    PX(x[cps[k]]) - 0.5 * (n > 1 ? pw / (double)(n - 1) : 0), T + ph);
    fputs("<polyline fill=\"none\" stroke=\"#3b7dd8\" stroke-width=\"2\" points=\"", f);
    for (size_t i = 0; i < n; i++)
        if (isfinite(y[i]))
            fprintf(f, "%.1f,%.1f ", PX(x[i]), PY(y[i]));
    fputs("\"/>\n", f);
    for (size_t i = 0; i < n; i++)
        if (isfinite(y[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s/>\n", PX(x[i]),
                    PY(y[i]), marked && marked[i] ? 6 : 3,
                    marked && marked[i] ? "#d62728" : "#3b7dd8",
                    marked && marked[i] ? " class=\"regression\"" : "");
#undef PX
#undef PY
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">", L + (int)pw / 2,
            H - 6);
    html_text(f, xlab);
    fprintf(f, "</text><text x=\"%d\" y=\"18\" font-size=\"12\" font-weight=\"bold\">", L);
    html_text(f, ylab);
    fputs("</text>\n</svg>\n", f);
}

/* min–max line, p50–p99 box, p50 tick, per configuration (log-free, ms). */
static void svg_ranges(FILE *f, const report_data *d) {
    const ia_bench_rows *p = &d->perf;
    /* server rows are rates tried, an overloaded one's latency is queueing
     * without end: they stay in the tables, out of this chart */
    size_t n = 0;
    double max = 0;
    for (size_t i = 0; i < p->n_rows; i++)
        if (strcmp(str(p, i, P_METRIC), "server") != 0) {
            n++;
            max = fmax(max, num(p, i, P_P99));
        }
    /* the max of a result is in the history rows; use p99 for the scale so
     * that a single outlier does not flatten every box */
    max = nice_max(max);
    int h = 40 + (int)n * 22 + 24;
    fprintf(f,
            "<svg class=\"chart\" role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "xmlns=\"http://www.w3.org/2000/svg\">\n<title>latency distribution</title>\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
            CHART_W, h, CHART_W, h, CHART_W, h);
    double pw = CHART_W - LABEL_W - 40;
    for (int t = 0; t <= 4; t++) {
        double x = LABEL_W + pw * t / 4;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"30\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.4g</text>\n",
                x, x, h - 20, x, h - 6, max * t / 4);
    }
    for (size_t i = 0, row = 0; i < p->n_rows; i++) {
        if (strcmp(str(p, i, P_METRIC), "server") == 0)
            continue;
        char label[512];
        perf_label(p, i, true, label, sizeof label);
        double y = 36 + (double)row++ * 22;
        double p50 = num(p, i, P_P50), p90 = num(p, i, P_P90), p99 = num(p, i, P_P99);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">", LABEL_W - 6,
                y + 13);
        html_text(f, label);
        fputs("</text>", f);
        if (isfinite(p50) && isfinite(p99))
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" fill=\"#b9d0f0\"/>"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#3b7dd8\" "
                    "stroke-width=\"3\"/>"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\"/>\n",
                    LABEL_W + pw * p50 / max, y, pw * (p99 - p50) / max, LABEL_W + pw * p50 / max,
                    y, LABEL_W + pw * p50 / max, y + 16, LABEL_W + pw * p90 / max, y,
                    LABEL_W + pw * p90 / max, y + 16);
    }
    fprintf(f,
            "<text x=\"%d\" y=\"18\" font-size=\"12\" font-weight=\"bold\">latency, ms: box p50 to "
            "p99, red tick p90</text>\n</svg>\n",
            LABEL_W);
}

/* ---- Markdown -------------------------------------------------------------------------------- */

static void md_rows(FILE *f, const ia_bench_rows *r) {
    char buf[64];
    if (!r->n_rows) {
        fputs("(none)\n\n", f);
        return;
    }
    for (size_t c = 0; c < r->n_cols; c++)
        fprintf(f, "| %s ", r->cols[c]);
    fputs("|\n", f);
    for (size_t c = 0; c < r->n_cols; c++)
        fputs("|---", f);
    fputs("|\n", f);
    for (size_t i = 0; i < r->n_rows; i++) {
        for (size_t c = 0; c < r->n_cols; c++) {
            fputs("| ", f);
            md_text(f, fmt_num(buf, sizeof buf, ia_bench_rows_get(r, i, c)));
            fputc(' ', f);
        }
        fputs("|\n", f);
    }
    fputc('\n', f);
}

static const char *verdict(const ia_bench_comparison *c) {
    return isnan(c->change) ? "no history"
           : c->regression  ? "REGRESSION"
           : c->significant ? "improved"
                            : "no significant change";
}

static void write_md(FILE *f, const report_data *d, const char *url, const char *now) {
    fprintf(f, "# Benchmark report\n\nDatabase: `%s`, generated %s.\n\n## Database\n\n", url, now);
    md_rows(f, &d->stats);
    fputs("## Performance (latest complete run per configuration)\n\n", f);
    md_rows(f, &d->perf);
    fputs("## Regressions (latest run vs up to 5 earlier runs; Mann-Whitney U, alpha 0.01, "
          "threshold 5%)\n\n",
          f);
    if (!d->n_regs)
        fputs("(no configuration has results)\n\n", f);
    else
        fputs("| config | run | median before (ms) | median now (ms) | change | p | change points "
              "| verdict |\n|---|---|---|---|---|---|---|---|\n",
              f);
    for (size_t i = 0; i < d->n_regs; i++) {
        const ia_bench_comparison *c = &d->regs[i];
        fputs("| ", f);
        md_text(f, c->config);
        fprintf(f, " | %lld | %.4g | %.4g | %+.2f%% | %.3g | %zu | %s |\n", (long long)c->run_id,
                c->median_a * 1e3, c->median_b * 1e3, c->change * 100, c->mwu.p, c->n_change_points,
                verdict(c));
    }
    fputs("\n## Latest failures\n\n", f);
    md_rows(f, &d->failures);
}

/* ---- JSON -------------------------------------------------------------------------------------
 */

static json_t *json_cell(const char *s) {
    if (!s)
        return json_null();
    char *end;
    double v = strtod(s, &end);
    if (*s && !*end && isfinite(v) && strspn(s, "0123456789-+.eE") == strlen(s)) {
        if (!strpbrk(s, ".eE"))
            return json_integer(strtoll(s, NULL, 10));
        return json_real(v);
    }
    return json_string(s);
}

static json_t *json_rows(const ia_bench_rows *r) {
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n_rows; i++) {
        json_t *o = json_object();
        for (size_t c = 0; c < r->n_cols; c++)
            json_object_set_new(o, r->cols[c], json_cell(ia_bench_rows_get(r, i, c)));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static ia_status write_json(FILE *f, const report_data *d, const char *url, const char *now) {
    json_t *root = json_object();
    json_object_set_new(root, "database", json_string(url));
    json_object_set_new(root, "generated_at", json_string(now));
    json_t *stats = json_object();
    for (size_t i = 0; i < d->stats.n_rows; i++)
        json_object_set_new(stats, str(&d->stats, i, 0), json_cell(str(&d->stats, i, 1)));
    json_object_set_new(root, "stats", stats);
    json_object_set_new(root, "performance", json_rows(&d->perf));
    json_t *regs = json_array();
    for (size_t i = 0; i < d->n_regs; i++) {
        const ia_bench_comparison *c = &d->regs[i];
        json_t *o = json_object();
        json_object_set_new(o, "config", json_string(c->config));
        json_object_set_new(o, "run_id", json_integer(c->run_id));
        json_object_set_new(o, "history_runs", json_integer((json_int_t)c->history_runs));
        json_object_set_new(o, "median_before_s", json_num(c->median_a));
        json_object_set_new(o, "median_now_s", json_num(c->median_b));
        json_object_set_new(o, "change", json_num(c->change));
        json_object_set_new(o, "p_value", json_num(c->mwu.p));
        json_object_set_new(o, "change_points", json_integer((json_int_t)c->n_change_points));
        json_object_set_new(o, "regression", json_boolean(c->regression));
        json_object_set_new(o, "verdict", json_string(verdict(c)));
        json_array_append_new(regs, o);
    }
    json_object_set_new(root, "regressions", regs);
    json_object_set_new(root, "failures", json_rows(&d->failures));
    int rc = json_dumpf(root, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    fputc('\n', f);
    return rc == 0 ? IA_OK : ia_error_set(IA_EIO, "writing the JSON report failed");
}

/* ---- HTML
 * ---------------------------------------------------------------------------------------- */

static void html_rows(FILE *f, const ia_bench_rows *r) {
    char buf[64];
    if (!r->n_rows) {
        fputs("<p>(none)</p>\n", f);
        return;
    }
    fputs("<table>\n<tr>", f);
    for (size_t c = 0; c < r->n_cols; c++) {
        fputs("<th>", f);
        html_text(f, r->cols[c]);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (size_t i = 0; i < r->n_rows; i++) {
        fputs("<tr>", f);
        for (size_t c = 0; c < r->n_cols; c++) {
            fputs("<td>", f);
            html_text(f, fmt_num(buf, sizeof buf, ia_bench_rows_get(r, i, c)));
            fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* One bar chart per throughput unit: samples/s, tokens/s and queries/s
 * never share an axis. */
static ia_status html_throughput(FILE *f, const report_data *d) {
    const ia_bench_rows *p = &d->perf;
    size_t n = p->n_rows;
    if (!n)
        return IA_OK;
    char **labels = ia_calloc(n, sizeof *labels);
    double *v = ia_calloc(n, sizeof *v);
    bool *done_row = ia_calloc(n, sizeof *done_row);
    ia_status st = IA_OK;
    if (!labels || !v || !done_row) {
        st = IA_ENOMEM;
        goto done;
    }
    bool heading = false;
    for (size_t i = 0; i < n && !st; i++) {
        if (done_row[i])
            continue;
        const char *unit = str(p, i, P_UNIT);
        size_t k = 0;
        for (size_t j = i; j < n && !st; j++) {
            if (done_row[j] || strcmp(str(p, j, P_UNIT), unit) != 0)
                continue;
            done_row[j] = true;
            char label[512];
            perf_label(p, j, true, label, sizeof label);
            if (!(labels[k] = ia_strdup(label)))
                st = IA_ENOMEM;
            v[k++] = num(p, j, P_THR);
        }
        if (!st) {
            if (!heading)
                fputs("<h2>Throughput by hardware and dtype</h2>\n", f);
            heading = true;
            char title[128];
            snprintf(title, sizeof title, "throughput by configuration, %s",
                     *unit ? unit : "unit unknown");
            svg_bars(f, title, *unit ? unit : "(unit unknown)", (const char *const *)labels, v, k);
        }
        for (size_t j = 0; j < k; j++) {
            free(labels[j]);
            labels[j] = NULL;
        }
    }
done:
    for (size_t i = 0; labels && i < n; i++)
        free(labels[i]);
    free(labels);
    free(v);
    free(done_row);
    return st;
}

static ia_status html_batch_scaling(FILE *f, const report_data *d) {
    const ia_bench_rows *p = &d->perf;
    size_t n = p->n_rows;
    double *x = ia_calloc(n ? n : 1, sizeof *x), *y = ia_calloc(n ? n : 1, sizeof *y);
    bool *used = ia_calloc(n ? n : 1, sizeof *used);
    if (!x || !y || !used) {
        free(x);
        free(y);
        free(used);
        return IA_ENOMEM;
    }
    bool heading = false;
    for (size_t i = 0; i < n; i++) {
        if (used[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (!used[j] && same_batch_group(p, i, j)) {
                used[j] = true;
                x[k] = num(p, j, P_BATCH);
                y[k++] = num(p, j, P_THR);
            }
        if (k < 2)
            continue;
        /* rows come sorted by batch only within their engine order: sort x */
        for (size_t a = 1; a < k; a++)
            for (size_t b = a; b > 0 && x[b - 1] > x[b]; b--) {
                double t = x[b];
                x[b] = x[b - 1];
                x[b - 1] = t;
                t = y[b];
                y[b] = y[b - 1];
                y[b - 1] = t;
            }
        if (!heading)
            fputs("<h2>Batch scaling</h2>\n", f);
        heading = true;
        char title[512];
        perf_label(p, i, false, title, sizeof title);
        fputs("<figure>", f);
        svg_line(f, title, "batch", str(p, i, P_UNIT), x, y, NULL, NULL, 0, k);
        fputs("<figcaption>", f);
        html_text(f, title);
        fputs("</figcaption></figure>\n", f);
    }
    free(x);
    free(y);
    free(used);
    return IA_OK;
}

static ia_status html_history(FILE *f, const report_data *d) {
    const ia_bench_rows *h = &d->history;
    size_t n = h->n_rows;
    double *x = ia_calloc(n ? n : 1, sizeof *x), *y = ia_calloc(n ? n : 1, sizeof *y);
    bool *marked = ia_calloc(n ? n : 1, sizeof *marked);
    if (!x || !y || !marked) {
        free(x);
        free(y);
        free(marked);
        return IA_ENOMEM;
    }
    bool heading = false;
    ia_status st = IA_OK;
    for (size_t i = 0; i < n && !st;) {
        size_t j = i + 1;
        while (j < n && same_config(h, i, j))
            j++;
        size_t k = j - i;
        if (k >= 2) {
            for (size_t a = 0; a < k; a++) {
                x[a] = (double)(a + 1);
                y[a] = num(h, i + a, H_P50);
                const ia_bench_comparison *c =
                    regression_of(d, strtoll(str(h, i + a, H_RESULT), NULL, 10));
                marked[a] = c && c->regression;
            }
            size_t cps[32], n_cps = 0;
            bool finite = true;
            for (size_t a = 0; a < k; a++)
                finite = finite && isfinite(y[a]);
            if (finite && (st = ia_stats_change_points(y, k, 0, 2, cps, 32, &n_cps)))
                break;
            if (!heading)
                fputs("<h2>History (p50 per run; red: regression, dashed: change point)</h2>\n", f);
            heading = true;
            char title[512];
            char m[96];
            metric_suffix(ia_bench_rows_get(h, i, H_METRIC), ia_bench_rows_get(h, i, H_GEN), NULL,
                          m, sizeof m);
            snprintf(title, sizeof title, "%s | %s | %s %s %s %s b=%s s=%s%s", str(h, i, H_MODEL),
                     str(h, i, H_HW), str(h, i, H_ENGINE), str(h, i, H_DEVICE), str(h, i, H_DTYPE),
                     str(h, i, H_SCEN), str(h, i, H_BATCH), str(h, i, H_SEQ), m);
            fputs("<figure>", f);
            svg_line(f, title, "run (oldest first)", "p50 latency, ms", x, y, marked, cps, n_cps,
                     k);
            fputs("<figcaption>", f);
            html_text(f, title);
            fputs("</figcaption></figure>\n", f);
        }
        i = j;
    }
    free(x);
    free(y);
    free(marked);
    return st;
}

static ia_status write_html(FILE *f, const report_data *d, const char *url, const char *now) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<title>Benchmark report</title>\n<style>\n"
          "body{font-family:sans-serif;margin:2em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
          "th{background:#eee}.regression-row{background:#fdd}"
          "figure{display:inline-block;margin:0.5em}"
          "figcaption{font-size:12px;max-width:520px}\n"
          "</style>\n</head>\n<body>\n<h1>Benchmark report</h1>\n<p>Database: <code>",
          f);
    html_text(f, url);
    fputs("</code>, generated ", f);
    html_text(f, now);
    fputs(".</p>\n<h2>Database</h2>\n", f);
    html_rows(f, &d->stats);
    ia_status st;
    if ((st = html_throughput(f, d)))
        return st;
    size_t n_ranges = 0;
    for (size_t i = 0; i < d->perf.n_rows; i++)
        n_ranges += strcmp(str(&d->perf, i, P_METRIC), "server") != 0;
    if (n_ranges) {
        fputs("<h2>Latency distribution</h2>\n", f);
        svg_ranges(f, d);
    }
    if ((st = html_batch_scaling(f, d)) || (st = html_history(f, d)))
        return st;
    fputs("<h2>Performance (latest complete run per configuration)</h2>\n", f);
    html_rows(f, &d->perf);
    fputs("<h2>Regressions</h2>\n<p>Latest run against up to 5 earlier runs: Mann-Whitney U, "
          "alpha 0.01, minimum median change 5%.</p>\n",
          f);
    if (d->n_regs) {
        fputs("<table>\n<tr><th>config</th><th>run</th><th>median before (ms)</th><th>median "
              "now (ms)</th><th>change</th><th>p</th><th>change points</th><th>verdict</th>"
              "</tr>\n",
              f);
        for (size_t i = 0; i < d->n_regs; i++) {
            const ia_bench_comparison *c = &d->regs[i];
            fprintf(f, "<tr%s><td>", c->regression ? " class=\"regression-row\"" : "");
            html_text(f, c->config);
            fprintf(f,
                    "</td><td>%lld</td><td>%.4g</td><td>%.4g</td><td>%+.2f%%</td><td>%.3g</td>"
                    "<td>%zu</td><td>%s</td></tr>\n",
                    (long long)c->run_id, c->median_a * 1e3, c->median_b * 1e3, c->change * 100,
                    c->mwu.p, c->n_change_points, verdict(c));
        }
        fputs("</table>\n", f);
    } else {
        fputs("<p>(no configuration has results)</p>\n", f);
    }
    fputs("<h2>Latest failures</h2>\n", f);
    html_rows(f, &d->failures);
    fputs("</body>\n</html>\n", f);
    return IA_OK;
}

ia_status ia_bench_report_write(ia_bench_db *db, const char *format, const ia_bench_filter *filter,
                                FILE *out) {
    bool md = strcmp(format, "md") == 0 || strcmp(format, "markdown") == 0;
    bool json = strcmp(format, "json") == 0, html = strcmp(format, "html") == 0;
    if (!md && !json && !html)
        return ia_error_set(IA_EINVAL, "report format '%s': md, json or html", format);
    report_data d;
    ia_status st = data_load(db, filter, &d);
    char now[40];
    bench_now_iso(now, sizeof now);
    if (!st) {
        if (md)
            write_md(out, &d, db->url, now);
        else if (json)
            st = write_json(out, &d, db->url, now);
        else
            st = write_html(out, &d, db->url, now);
    }
    data_free(&d);
    if (!st && (fflush(out) != 0 || ferror(out)))
        st = ia_error_set(IA_EIO, "writing the report failed");
    return st;
}
