/*
 * `ipfs-accelerate api call|stats|check`: remote inference providers
 * declared in an endpoints YAML file (docs/PROVIDERS.md), through the same
 * client the library exposes (include/ia/backends.h): retries, breaker, key
 * selection and fallbacks included.
 *
 * The file is --config FILE, else $IA_ENDPOINTS, else
 * ${XDG_CONFIG_HOME:-~/.config}/ipfs-accelerate/endpoints.yaml. Statistics
 * live in the process that made the calls: `api call --stats` prints them
 * after the call; `api stats` in a fresh process shows the configured
 * endpoints with zero counts.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/backends.h"

static const char api_usage[] =
    "usage: ipfs-accelerate api call --endpoint NAME chat|complete|embed|rerank TEXT... [options]\n"
    "       ipfs-accelerate api stats [--json | --prometheus] [--config FILE]\n"
    "       ipfs-accelerate api check [--json] [--config FILE]\n"
    "\n"
    "  call       one request: chat and complete take one TEXT; embed embeds every TEXT;\n"
    "             rerank scores every TEXT against --query\n"
    "  stats      statistics of this process's calls (a new process has made none: it lists\n"
    "             each configured endpoint with zero counts); see also call --stats\n"
    "  check      probes every endpoint (GET /v1/models, /api/tags, /info, ...): status and\n"
    "             latency per endpoint; exit status 1 when any probe fails\n"
    "\n"
    "  --config FILE        endpoints YAML (default $IA_ENDPOINTS, else\n"
    "                       ${XDG_CONFIG_HOME:-~/.config}/ipfs-accelerate/endpoints.yaml)\n"
    "  --endpoint NAME      call: the endpoint (its fallbacks may serve)\n"
    "  --model M            call: a model other than the endpoint's first\n"
    "  --system TEXT        chat: a system prompt\n"
    "  --query TEXT         rerank: the query\n"
    "  --max-tokens N       chat/complete: at most N new tokens\n"
    "  --temperature T      chat/complete: sampling temperature\n"
    "  --stream             chat/complete: print text as it arrives\n"
    "  --priority P         high, normal or low (default: the endpoint's)\n"
    "  --deadline-ms N      call: give up after N ms (default: the endpoint's total timeout)\n"
    "  --json               JSON output\n"
    "  --stats              call: print the statistics (JSON) to stderr afterwards\n"
    "  --prometheus         stats: Prometheus text instead\n";

typedef struct api_opts {
    const char *config, *endpoint, *model, *system, *query;
    long max_tokens, deadline_ms;
    double temperature;
    bool stream, json, stats, prometheus;
    int priority; /* -1: the endpoint's */
} api_opts;

static ia_status open_client(const char *path, ia_api_config **cfg, ia_api_client **cl) {
    char *def = path ? NULL : ia_api_config_default_path();
    const char *p = path ? path : def;
    *cl = NULL;
    ia_status st = p ? ia_api_config_load(p, cfg) : ia_error_set(IA_ENOMEM, "out of memory");
    if (st == IA_OK) {
        st = ia_api_client_create(*cfg, cl);
        if (st != IA_OK) {
            ia_api_config_free(*cfg);
            *cfg = NULL;
        }
    } else if (!path && p && !ia_file_exists(p)) {
        st = ia_error_set(IA_ENOTFOUND,
                          "no endpoints file at %s (give --config FILE or set IA_ENDPOINTS; "
                          "docs/PROVIDERS.md shows the format)",
                          p);
    }
    free(def);
    return st;
}

static bool print_delta(void *ctx, const char *text, size_t len) {
    cli_out_state *out = ctx;
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        out->closed = true;
        return false;
    }
    return true;
}

static void print_result_json(const api_opts *o, ia_api_op op, const ia_api_result *r,
                              const char *const *texts) {
    printf("{\"endpoint\": ");
    cli_write_string(stdout, o->endpoint);
    printf(", \"served_by\": ");
    cli_write_string(stdout, r->served_by);
    printf(", \"op\": \"%s\", \"attempts\": %d, \"http_status\": %d", ia_api_op_name(op),
           r->attempts, r->http_status);
    if (r->tokens_in >= 0)
        printf(", \"tokens_in\": %ld", r->tokens_in);
    if (r->tokens_out >= 0)
        printf(", \"tokens_out\": %ld", r->tokens_out);
    if (op == IA_API_CHAT || op == IA_API_COMPLETE) {
        printf(", \"text\": ");
        cli_write_string(stdout, r->text ? r->text : "");
        if (r->finish_reason) {
            printf(", \"finish_reason\": ");
            cli_write_string(stdout, r->finish_reason);
        }
    } else if (op == IA_API_EMBED) {
        printf(", \"dim\": %zu, \"embeddings\": [", r->dim);
        for (size_t i = 0; i < r->n_embeddings; i++) {
            if (i)
                printf(", ");
            cli_write_floats(stdout, r->embeddings + i * r->dim, r->dim);
        }
        printf("]");
    } else {
        printf(", \"results\": [");
        for (size_t i = 0; i < r->n_ranks; i++)
            printf("%s{\"index\": %zu, \"score\": %.9g}", i ? ", " : "", r->ranks[i].index,
                   r->ranks[i].score);
        printf("]");
    }
    printf("}\n");
    (void)texts;
}

static int do_call(const api_opts *o, int argc, char **argv) {
    if (!o->endpoint)
        return cli_usage_error("api", "call needs --endpoint NAME");
    if (argc < 2)
        return cli_usage_error("api",
                               "call needs an operation (chat, complete, embed, rerank) and text");
    static const char *const ops[] = {"chat", "complete", "embed", "rerank"};
    int op = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[0], ops[i]) == 0)
            op = i;
    if (op < 0)
        return cli_usage_error("api", "unknown operation '%s' (chat, complete, embed, rerank)",
                               argv[0]);
    const char *const *texts = (const char *const *)argv + 1;
    size_t n = (size_t)argc - 1;
    if ((op == IA_API_CHAT || op == IA_API_COMPLETE) && n != 1)
        return cli_usage_error("api", "%s takes one TEXT (quote it)", argv[0]);
    if (op == IA_API_RERANK && !o->query)
        return cli_usage_error("api", "rerank needs --query TEXT");
    if (o->stream && op != IA_API_CHAT && op != IA_API_COMPLETE)
        return cli_usage_error("api", "--stream is for chat and complete");
    for (size_t i = 0; i < n; i++)
        if (!ia_utf8_valid(texts[i], strlen(texts[i]), NULL))
            return cli_usage_error("api", "text %zu is not valid UTF-8", i + 1);

    ia_api_config *cfg = NULL;
    ia_api_client *cl = NULL;
    ia_status st = open_client(o->config, &cfg, &cl);
    if (st != IA_OK)
        return cli_fail("api", st);
    cli_out_state out = {0};
    ia_api_request rq = {
        .op = (ia_api_op)op,
        .model = o->model,
        .system = o->system,
        .texts = texts,
        .n_texts = n,
        .query = o->query,
        .max_tokens = (int)o->max_tokens,
        .temperature = o->temperature,
        .stream = o->stream,
        .on_delta = o->stream && !o->json ? print_delta : NULL,
        .delta_ctx = &out,
        .priority = o->priority >= 0 ? (ia_api_priority)o->priority : IA_API_PRIORITY_NORMAL,
        .use_default_priority = o->priority < 0,
        .deadline_ms = o->deadline_ms,
    };
    ia_api_result r;
    int rc = 0;
    st = ia_api_call(cl, o->endpoint, &rq, &r);
    if (st != IA_OK) {
        if (o->stream && !o->json)
            fputc('\n', stdout);
        rc = cli_fail("api", st);
    } else if (o->json) {
        print_result_json(o, (ia_api_op)op, &r, texts);
    } else if (op == IA_API_CHAT || op == IA_API_COMPLETE) {
        if (!o->stream)
            fputs(r.text ? r.text : "", stdout);
        fputc('\n', stdout);
    } else if (op == IA_API_EMBED) {
        for (size_t i = 0; i < r.n_embeddings; i++) {
            cli_write_floats(stdout, r.embeddings + i * r.dim, r.dim);
            fputc('\n', stdout);
        }
    } else {
        for (size_t i = 0; i < r.n_ranks; i++)
            printf("%zu\t%.6f\t%s\n", r.ranks[i].index, r.ranks[i].score, texts[r.ranks[i].index]);
    }
    if (o->stats) {
        char *s = NULL;
        if (ia_api_stats_json(cl, &s) == IA_OK)
            fprintf(stderr, "%s\n", s);
        free(s);
    }
    ia_api_result_free(&r);
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
    return rc;
}

static int do_stats(const api_opts *o) {
    ia_api_config *cfg = NULL;
    ia_api_client *cl = NULL;
    ia_status st = open_client(o->config, &cfg, &cl);
    if (st != IA_OK)
        return cli_fail("api", st);
    char *s = NULL;
    if (o->json || o->prometheus) {
        st = o->prometheus ? ia_api_stats_prometheus(cl, &s) : ia_api_stats_json(cl, &s);
        if (st == IA_OK)
            printf("%s%s", s, o->prometheus ? "" : "\n");
    } else {
        printf("%-20s %-10s %-40s %s\n", "ENDPOINT", "PROVIDER", "BASE URL",
               "REQUESTS (this process)");
        for (size_t i = 0; i < ia_api_config_count(cfg); i++) {
            const ia_api_endpoint_config *e = ia_api_config_endpoint(cfg, i);
            printf("%-20s %-10s %-40s 0\n", e->name, ia_api_provider_name(e->provider),
                   e->base_url);
        }
    }
    free(s);
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
    return st == IA_OK ? 0 : cli_fail("api", st);
}

static int do_check(const api_opts *o) {
    ia_api_config *cfg = NULL;
    ia_api_client *cl = NULL;
    ia_status st = open_client(o->config, &cfg, &cl);
    if (st != IA_OK)
        return cli_fail("api", st);
    int failed = 0;
    if (o->json)
        printf("[");
    for (size_t i = 0; i < ia_api_config_count(cfg); i++) {
        const ia_api_endpoint_config *e = ia_api_config_endpoint(cfg, i);
        ia_api_probe pr;
        st = ia_api_check(cl, e->name, &pr);
        if (st != IA_OK) {
            pr.ok = false;
            snprintf(pr.message, sizeof pr.message, "%s", ia_error_message());
        }
        failed += !pr.ok;
        if (o->json) {
            printf("%s\n  {\"endpoint\": ", i ? "," : "");
            cli_write_string(stdout, e->name);
            printf(", \"provider\": \"%s\", \"ok\": %s, \"http_status\": %d, \"latency_ms\": %.1f, "
                   "\"message\": ",
                   ia_api_provider_name(e->provider), pr.ok ? "true" : "false", pr.http_status,
                   pr.latency_ms);
            cli_write_string(stdout, pr.message);
            printf("}");
        } else {
            printf("%-20s %-10s %-4s %3d %8.1f ms%s%s\n", e->name,
                   ia_api_provider_name(e->provider), pr.ok ? "ok" : "FAIL", pr.http_status,
                   pr.latency_ms, pr.message[0] ? "  " : "", pr.message);
        }
    }
    if (o->json)
        printf("\n]\n");
    ia_api_client_destroy(cl);
    ia_api_config_free(cfg);
    return failed ? 1 : 0;
}

int cmd_api(int argc, char **argv) {
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"endpoint", required_argument, NULL, 'e'},
        {"model", required_argument, NULL, 'm'},
        {"system", required_argument, NULL, 's'},
        {"query", required_argument, NULL, 'q'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 't'},
        {"stream", no_argument, NULL, 'S'},
        {"priority", required_argument, NULL, 'p'},
        {"deadline-ms", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"stats", no_argument, NULL, 'T'},
        {"prometheus", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    api_opts o = {.temperature = -1, .priority = -1};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.config = optarg;
            break;
        case 'e':
            o.endpoint = optarg;
            break;
        case 'm':
            o.model = optarg;
            break;
        case 's':
            o.system = optarg;
            break;
        case 'q':
            o.query = optarg;
            break;
        case 'n':
            if (cli_parse_int("--max-tokens", optarg, 1, 1 << 20, &v) != IA_OK)
                return cli_usage_error("api", "%s", ia_error_message());
            o.max_tokens = v;
            break;
        case 'd':
            if (cli_parse_int("--deadline-ms", optarg, 1, 86400000, &v) != IA_OK)
                return cli_usage_error("api", "%s", ia_error_message());
            o.deadline_ms = v;
            break;
        case 't': {
            char *end;
            o.temperature = strtod(optarg, &end);
            if (*end || o.temperature < 0 || o.temperature > 100)
                return cli_usage_error("api", "--temperature must be a number >= 0");
            break;
        }
        case 'p':
            if (strcmp(optarg, "high") == 0)
                o.priority = IA_API_PRIORITY_HIGH;
            else if (strcmp(optarg, "normal") == 0)
                o.priority = IA_API_PRIORITY_NORMAL;
            else if (strcmp(optarg, "low") == 0)
                o.priority = IA_API_PRIORITY_LOW;
            else
                return cli_usage_error("api", "--priority must be high, normal or low");
            break;
        case 'S':
            o.stream = true;
            break;
        case 'j':
            o.json = true;
            break;
        case 'T':
            o.stats = true;
            break;
        case 'P':
            o.prometheus = true;
            break;
        case 'h':
            fputs(api_usage, stdout);
            return 0;
        default:
            return cli_usage_error("api", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("api", "give a subcommand: call, stats or check");
    const char *sub = argv[optind];
    if (strcmp(sub, "call") == 0)
        return do_call(&o, argc - optind - 1, argv + optind + 1);
    if (optind + 1 != argc)
        return cli_usage_error("api", "%s takes no arguments", sub);
    if (strcmp(sub, "stats") == 0)
        return do_stats(&o);
    if (strcmp(sub, "check") == 0)
        return do_check(&o);
    return cli_usage_error("api", "unknown subcommand '%s' (call, stats, check)", sub);
}
