/*
 * The server's live dashboard: GET / answers one self-contained HTML page
 * (inline CSS and JavaScript, no external assets, compiled in below) that
 * polls GET /stats once a second and shows the models (id, kind, state,
 * queue depth, streams), requests and errors, throughput (requests/s and
 * tokens/s, from the difference between two polls), request latency and
 * time to first token (p50 and p99), queue wait and the requests per route.
 *
 * GET /stats is the page's data and useful on its own: a JSON object read
 * from the same counters as /metrics (metrics.c), plus the per-model state
 * that /health shows. Percentiles come from the histograms (interpolated
 * inside a bucket, as Prometheus' histogram_quantile), so they are as coarse
 * as the buckets. Both routes are open like /metrics: they show what
 * /metrics shows and never a request's content.
 *
 * The page builds its DOM with textContent only (model ids come from the
 * command line, but nothing from the server is parsed as HTML), and sets a
 * data: favicon so the browser asks for nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* Routes that watch the server rather than use it: left out of the request
 * totals, or the dashboard's own polling would be its busiest client. */
static bool watch_route(const char *name) {
    static const char *const watch[] = {"/", "/stats", "/metrics", "/health"};
    for (size_t i = 0; i < sizeof watch / sizeof watch[0]; i++)
        if (strcmp(name, watch[i]) == 0)
            return true;
    return false;
}

static json_t *hist_json(const srv_hist *h, bool time) {
    double scale = time ? 1e3 : 1; /* times in milliseconds */
    return json_pack("{s:I, s:f, s:f, s:f}", "count", (json_int_t)h->n, "p50",
                     srv_hist_quantile(h, time, 0.5) * scale, "p99",
                     srv_hist_quantile(h, time, 0.99) * scale, "mean",
                     h->n ? h->sum / (double)h->n * scale : 0.0);
}

static void hist_merge(srv_hist *into, const srv_hist *h) {
    for (int b = 0; b <= SRV_HIST_BUCKETS; b++)
        into->counts[b] += h->counts[b];
    into->sum += h->sum;
    into->n += h->n;
}

static json_t *models_json(ia_server *srv, size_t *queued) {
    json_t *arr = json_array();
    *queued = 0;
    for (size_t i = 0; i < srv->n_models; i++) {
        srv_model *m = &srv->models[i];
        size_t depth = 0;
        if (m->sync_init) {
            pthread_mutex_lock(&m->mu);
            depth = m->depth;
            pthread_mutex_unlock(&m->mu);
        }
        *queued += depth;
        srv_state s = atomic_load(&m->state);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "id", m->id, "kind",
                              m->kind == SRV_EMBEDDER ? "embeddings" : "generation", "state",
                              s == SRV_READY     ? "ready"
                              : s == SRV_LOADING ? "loading"
                                                 : "failed",
                              "queue_depth", (json_int_t)depth, "streams",
                              (json_int_t)atomic_load(&m->streams));
        if (o && s == SRV_FAILED)
            json_object_set_new(o, "error", json_string(m->error));
        json_array_append_new(arr, o);
    }
    return arr;
}

/* The /stats object (new reference; NULL when out of memory). */
static json_t *stats_json(ia_server *srv) {
    srv_metrics *snap = ia_malloc(sizeof *snap);
    if (!snap)
        return NULL;
    srv_metrics_snapshot(&srv->metrics, snap);
    json_t *routes = json_array();
    srv_hist all = {0};
    uint64_t total = 0, errors = 0;
    size_t nr = srv_route_count();
    for (size_t r = 0; r < nr && r < SRV_MAX_ROUTES; r++) {
        const srv_route_stats *rs = &snap->routes[r];
        uint64_t n = 0, e = 0;
        for (int c = 1; c <= 5; c++)
            for (int i = 0; i < 8; i++) {
                n += rs->codes[c][i];
                e += c >= 4 ? rs->codes[c][i] : 0;
            }
        if (n == 0)
            continue;
        const char *name = srv_route_name((int)r);
        json_array_append_new(routes, json_pack("{s:s, s:I, s:I, s:o}", "route", name, "requests",
                                                (json_int_t)n, "errors", (json_int_t)e,
                                                "latency_ms", hist_json(&rs->latency, true)));
        if (watch_route(name))
            continue;
        total += n;
        errors += e;
        hist_merge(&all, &rs->latency);
    }
    size_t queued = 0;
    json_t *models = models_json(srv, &queued);
    json_t *o = json_pack(
        "{s:f, s:o, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:I, s:o, s:o, s:o, "
        "s:{s:I, s:o, s:o}, s:o}",
        "uptime_s", ia_time_now() - srv->started, "models", models, "queue_depth",
        (json_int_t)queued, "streams_active", (json_int_t)atomic_load(&srv->streams), "requests",
        "total", (json_int_t)total, "errors", (json_int_t)errors, "rejected",
        (json_int_t)snap->rejected_full, "cancelled", (json_int_t)snap->cancelled, "timed_out",
        (json_int_t)snap->timeouts, "tokens", "in", (json_int_t)snap->tokens_in, "out",
        (json_int_t)snap->tokens_out, "started_unix", (json_int_t)srv->started_unix, "latency_ms",
        hist_json(&all, true), "ttft_ms", hist_json(&snap->ttft, true), "queue_wait_ms",
        hist_json(&snap->queue_wait, true), "batches", "count", (json_int_t)snap->batches,
        "sequences", hist_json(&snap->batch_seqs, false), "tokens",
        hist_json(&snap->batch_tokens, false), "routes", routes);
    free(snap);
    return o;
}

int srv_handle_stats(srv_req *r) {
    json_t *o = stats_json(r->srv);
    if (!o)
        return srv_send_text(r, 500, "text/plain", "out of memory\n", 14);
    return srv_send_json(r, 200, o);
}

/* The page. Element ids are what tests/server/test_dashboard.c reads:
 * #state ("live" once a poll succeeded, "offline" when one failed), #polls,
 * #requests, #errors, #rps, #tps, #p50, #p99, #ttft, #queue, #models (a
 * tbody: one row per model). */
static const char dashboard_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>ipfs-accelerate serve</title>\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\n"
    "header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;"
    "align-items:baseline}\n"
    "header h1{font-size:17px;margin:0;font-weight:600}\n"
    "#state{padding:1px 8px;border-radius:9px;background:#7a8194;font-size:12px}\n"
    "#state.live{background:#1f8a4c}#state.offline{background:#b3261e}\n"
    "main{padding:16px 20px;max-width:1100px}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}\n"
    ".card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 12px}\n"
    ".card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}\n"
    ".card .k{color:#5b6275;font-size:12px}\n"
    "table{border-collapse:collapse;width:100%;background:#fff;margin-top:8px}\n"
    "th,td{border:1px solid #dde1e8;padding:5px 8px;text-align:left;"
    "font-variant-numeric:tabular-nums}\n"
    "th{background:#eef0f4;font-weight:600}\n"
    "h2{font-size:15px;margin:20px 0 4px}\n"
    "svg{background:#fff;border:1px solid #dde1e8;border-radius:6px;width:100%;height:90px}\n"
    ".muted{color:#5b6275}\n"
    "</style></head><body>\n"
    "<header><h1>ipfs-accelerate serve</h1><span id=\"state\">connecting</span>"
    "<span class=\"muted\">uptime <span id=\"uptime\">-</span></span>"
    "<span class=\"muted\">polls <span id=\"polls\">0</span></span></header>\n"
    "<main>\n"
    "<div class=\"cards\">\n"
    "<div class=\"card\"><div class=\"v\" id=\"requests\">-</div><div class=\"k\">requests</div>"
    "</div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"errors\">-</div><div class=\"k\">errors (4xx/5xx)"
    "</div></div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"rps\">-</div><div class=\"k\">requests/s</div>"
    "</div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"tps\">-</div><div class=\"k\">tokens/s (in+out)"
    "</div></div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"p50\">-</div><div class=\"k\">latency p50 (ms)"
    "</div></div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"p99\">-</div><div class=\"k\">latency p99 (ms)"
    "</div></div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"ttft\">-</div><div class=\"k\">time to first "
    "token p50 (ms)</div></div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"queue\">-</div><div class=\"k\">queued</div>"
    "</div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"streams\">-</div><div class=\"k\">streams</div>"
    "</div>\n"
    "<div class=\"card\"><div class=\"v\" id=\"tokens\">-</div><div class=\"k\">tokens in / out"
    "</div></div>\n"
    "</div>\n"
    "<h2>Throughput (requests/s, last 60 s)</h2>\n"
    "<svg id=\"chart\" viewBox=\"0 0 600 90\" preserveAspectRatio=\"none\">"
    "<polyline id=\"line\" fill=\"none\" stroke=\"#2f6fde\" stroke-width=\"2\" points=\"\"/>"
    "</svg>\n"
    "<h2>Models</h2>\n"
    "<table><thead><tr><th>id</th><th>kind</th><th>state</th><th>queued</th><th>streams</th>"
    "</tr></thead><tbody id=\"models\"></tbody></table>\n"
    "<h2>Routes</h2>\n"
    "<table><thead><tr><th>route</th><th>requests</th><th>errors</th><th>p50 (ms)</th>"
    "<th>p99 (ms)</th></tr></thead><tbody id=\"routes\"></tbody></table>\n"
    "<p class=\"muted\">Percentiles come from the /metrics histograms. Data: "
    "<a href=\"/stats\">/stats</a>, <a href=\"/metrics\">/metrics</a>.</p>\n"
    "</main>\n"
    "<script>\n"
    "'use strict';\n"
    "const $ = (id) => document.getElementById(id);\n"
    "let prev = null, polls = 0;\n"
    "const history = [];\n"
    "function fmt(x, digits) {\n"
    "  if (!isFinite(x)) return '-';\n"
    "  return x.toFixed(digits);\n"
    "}\n"
    "function duration(s) {\n"
    "  s = Math.floor(s);\n"
    "  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;\n"
    "  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + (s % 60) + 's';\n"
    "}\n"
    "function rows(tbody, items, cells) {\n"
    "  tbody.replaceChildren(...items.map((it) => {\n"
    "    const tr = document.createElement('tr');\n"
    "    for (const c of cells(it)) {\n"
    "      const td = document.createElement('td');\n"
    "      td.textContent = String(c);\n"
    "      tr.appendChild(td);\n"
    "    }\n"
    "    return tr;\n"
    "  }));\n"
    "}\n"
    "function chart() {\n"
    "  const max = Math.max(1, ...history);\n"
    "  const pts = history.map((v, i) =>\n"
    "    (i * 600 / 59).toFixed(1) + ',' + (88 - v / max * 84).toFixed(1));\n"
    "  $('line').setAttribute('points', pts.join(' '));\n"
    "}\n"
    "function show(s) {\n"
    "  $('uptime').textContent = duration(s.uptime_s);\n"
    "  $('requests').textContent = s.requests.total;\n"
    "  $('errors').textContent = s.requests.errors;\n"
    "  $('p50').textContent = fmt(s.latency_ms.p50, 1);\n"
    "  $('p99').textContent = fmt(s.latency_ms.p99, 1);\n"
    "  $('ttft').textContent = s.ttft_ms.count ? fmt(s.ttft_ms.p50, 1) : '-';\n"
    "  $('queue').textContent = s.queue_depth;\n"
    "  $('streams').textContent = s.streams_active;\n"
    "  $('tokens').textContent = s.tokens.in + ' / ' + s.tokens.out;\n"
    "  if (prev) {\n"
    "    const dt = s.uptime_s - prev.uptime_s;\n"
    "    if (dt > 0) {\n"
    "      const rps = (s.requests.total - prev.requests.total) / dt;\n"
    "      const tps = (s.tokens.in + s.tokens.out - prev.tokens.in - prev.tokens.out) / dt;\n"
    "      $('rps').textContent = fmt(rps, 1);\n"
    "      $('tps').textContent = fmt(tps, 0);\n"
    "      history.push(rps);\n"
    "      if (history.length > 60) history.shift();\n"
    "      chart();\n"
    "    }\n"
    "  }\n"
    "  rows($('models'), s.models, (m) =>\n"
    "    [m.id, m.kind, m.state, m.queue_depth, m.streams]);\n"
    "  rows($('routes'), s.routes, (r) => [r.route, r.requests, r.errors,\n"
    "    fmt(r.latency_ms.p50, 1), fmt(r.latency_ms.p99, 1)]);\n"
    "  prev = s;\n"
    "}\n"
    "async function poll() {\n"
    "  try {\n"
    "    const r = await fetch('/stats', {cache: 'no-store'});\n"
    "    if (!r.ok) throw new Error('/stats answered ' + r.status);\n"
    "    show(await r.json());\n"
    "    polls++;\n"
    "    $('polls').textContent = polls;\n"
    "    $('state').textContent = 'live';\n"
    "    $('state').className = 'live';\n"
    "  } catch (e) {\n"
    "    $('state').textContent = 'offline';\n"
    "    $('state').className = 'offline';\n"
    "  }\n"
    "  setTimeout(poll, 1000);\n"
    "}\n"
    "poll();\n"
    "</script>\n"
    "</body></html>\n";

int srv_handle_dashboard(srv_req *r) {
    return srv_send_text(r, 200, "text/html; charset=utf-8", dashboard_html,
                         sizeof dashboard_html - 1);
}
