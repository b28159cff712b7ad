/*
 * `ipfs-accelerate models`: what a model is and what it would take here.
 *
 *   models classify DIR|config.json|file.gguf [--json] [--no-registry]
 *   models list [--family F] [--supported] [--json]
 *   models plan --model M [--batch B] [--seq S] [--dtype T] [--device D] [--json]
 */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/hw.h"
#include "ia/runtime.h"

static const char models_usage[] =
    "usage: ipfs-accelerate models classify DIR|config.json|file.gguf [--json] [--no-registry]\n"
    "       ipfs-accelerate models list [--family F] [--supported] [--json]\n"
    "       ipfs-accelerate models plan --model M [--batch B] [--seq S] [--dtype T]\n"
    "                                   [--device D] [--batch-tokens N] [--json]\n"
    "\n"
    "  classify       family, modality, tasks and support here of a model; --no-registry\n"
    "                 infers them from architectures and config keys alone\n"
    "  list           the registry of every model_type transformers knows; --family\n"
    "                 text-encoder|text-decoder|encoder-decoder|vision|audio|multimodal|\n"
    "                 video|time-series|other, --supported: only what runs here\n"
    "  plan           memory estimate (weights, KV cache, activations, overhead) for a\n"
    "                 batch of B sequences of S tokens at dtype T (f32, bf16, f16, q8_0,\n"
    "                 q4_k, ...), and the devices ranked for it with reasons; --batch-tokens\n"
    "                 is the embedder's token budget per batch (default 8192)\n";

static void print_json(json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(j);
}

static void print_mib(const char *label, uint64_t bytes) {
    printf("  %-12s %10.1f MiB\n", label, (double)bytes / (1 << 20));
}

/* ---- classify ------------------------------------------------------------------------ */

static json_t *class_json(const ia_model_class *c) {
    return json_pack("{ss ss ss ss ss ss sb sf ss}", "model_type", c->model_type, "architecture",
                     c->architecture, "family", ia_model_family_name(c->family), "modality",
                     c->modality, "tasks", c->tasks, "supported_on", c->backends, "known",
                     (int)c->known, "confidence", c->confidence, "reason", c->reason);
}

static int classify(int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"no-registry", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    ia_classify_options co = {.use_registry = true};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'R')
            co.use_registry = false;
        else if (c == 'h')
            return fputs(models_usage, stdout), 0;
        else
            return cli_usage_error("models classify", "bad option");
    }
    if (optind + 1 != argc)
        return cli_usage_error("models classify", "expected one DIR, config.json or .gguf file");
    json_t *cfg;
    ia_status st = ia_model_config_load(argv[optind], &cfg);
    if (st != IA_OK)
        return cli_fail("models classify", st);
    ia_model_class cls;
    st = ia_model_classify(cfg, &co, &cls);
    json_decref(cfg);
    if (st != IA_OK)
        return cli_fail("models classify", st);
    if (json) {
        print_json(class_json(&cls));
    } else {
        printf("model_type    %s\n", cls.model_type[0] ? cls.model_type : "(none)");
        printf("architecture  %s\n", cls.architecture[0] ? cls.architecture : "(none)");
        printf("family        %s\n", ia_model_family_name(cls.family));
        printf("modality      %s\n", cls.modality[0] ? cls.modality : "?");
        printf("tasks         %s\n", cls.tasks[0] ? cls.tasks : "?");
        printf("supported     %s%s%s\n", cls.backends[0] ? "yes (" : "not by this engine yet",
               cls.backends, cls.backends[0] ? ")" : "");
        printf("confidence    %.2f (%s)\n", cls.confidence, cls.reason);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- list ------------------------------------------------------------------------------ */

static int list(int argc, char **argv) {
    static const struct option options[] = {
        {"family", required_argument, NULL, 'f'},
        {"supported", no_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false, supported = false, by_family = false;
    ia_model_family family = IA_FAMILY_UNKNOWN;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (ia_model_family_parse(optarg, &family) != IA_OK)
                return cli_usage_error("models list", "%s", ia_error_message());
            by_family = true;
            break;
        case 's':
            supported = true;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(models_usage, stdout);
            return 0;
        default:
            return cli_usage_error("models list", "bad option");
        }
    }
    if (optind != argc)
        return cli_usage_error("models list", "unexpected argument '%s'", argv[optind]);
    size_t n;
    const ia_model_type_info *rows = ia_model_registry(&n);
    json_t *array = json ? json_array() : NULL;
    if (!json)
        printf("%-36s %-16s %-12s %-10s %s\n", "MODEL_TYPE", "FAMILY", "MODALITY", "SUPPORTED",
               "TASKS");
    for (size_t i = 0; i < n; i++) {
        const ia_model_type_info *r = &rows[i];
        if ((by_family && r->family != family) || (supported && !r->backends[0]))
            continue;
        if (json)
            json_array_append_new(array, json_pack("{ss ss ss ss ss}", "model_type", r->model_type,
                                                   "family", ia_model_family_name(r->family),
                                                   "modality", r->modality, "tasks", r->tasks,
                                                   "supported_on", r->backends));
        else
            printf("%-36s %-16s %-12s %-10s %s\n", r->model_type, ia_model_family_name(r->family),
                   r->modality, r->backends[0] ? r->backends : "-", r->tasks);
    }
    if (json)
        print_json(array);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- plan -------------------------------------------------------------------------------- */

static void print_plan(const ia_model_plan *p) {
    printf("model      %s (%s)%s\n", p->cls.model_type[0] ? p->cls.model_type : "?",
           ia_model_family_name(p->cls.family),
           p->cls.backends[0] ? "" : ": not supported by this engine yet");
    printf("shape      hidden %llu, layers %llu, heads %llu (kv %llu), ffn %llu, vocab %llu\n",
           (unsigned long long)p->shape.hidden, (unsigned long long)p->shape.layers,
           (unsigned long long)p->shape.heads, (unsigned long long)p->shape.kv_heads,
           (unsigned long long)p->shape.intermediate, (unsigned long long)p->shape.vocab);
    printf("workload   batch %zu x %zu tokens, %s, %.1f M parameters (sizes from the %s)\n",
           p->batch, p->seq, p->dtype, (double)p->params / 1e6,
           p->weights_from_files ? "weight files" : "config");
    printf("memory\n");
    print_mib("weights", p->weights_bytes);
    if (p->kv_cache_bytes)
        print_mib("kv cache", p->kv_cache_bytes);
    print_mib("activations", p->activation_bytes);
    print_mib("overhead", p->overhead_bytes);
    print_mib("total", p->total_bytes);
    printf("devices\n");
    for (size_t i = 0; i < p->n_devices; i++) {
        const ia_device_candidate *c = &p->devices[i];
        printf("  %s %-10s %s: %s\n", p->runnable && i == p->chosen ? "*" : " ", c->id, c->name,
               c->reason);
    }
    if (p->device_error[0])
        printf("no device: %s\n", p->device_error);
}

static int plan(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"batch", required_argument, NULL, 'b'},
        {"seq", required_argument, NULL, 's'},
        {"dtype", required_argument, NULL, 'd'},
        {"device", required_argument, NULL, 'D'},
        {"json", no_argument, NULL, 'j'},
        {"batch-tokens", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ia_plan_request req = {0};
    bool json = false;
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case 'm':
            req.model = optarg;
            break;
        case 'b':
            st = cli_parse_int("--batch", optarg, 1, 1 << 20, &v);
            req.batch = (size_t)v;
            break;
        case 's':
            st = cli_parse_int("--seq", optarg, 1, 1 << 24, &v);
            req.seq = (size_t)v;
            break;
        case 'd':
            req.dtype = optarg;
            break;
        case 'B':
            st = cli_parse_int("--batch-tokens", optarg, 1, 1 << 24, &v);
            req.batch_tokens = (size_t)v;
            break;
        case 'D':
            req.device = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            fputs(models_usage, stdout);
            return 0;
        default:
            return cli_usage_error("models plan", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("models plan", "%s", ia_error_message());
    }
    if (!req.model)
        return cli_usage_error("models plan", "--model M is required");
    if (optind != argc)
        return cli_usage_error("models plan", "unexpected argument '%s'", argv[optind]);
    ia_model_plan p;
    ia_status st = ia_model_plan_make(&req, &p);
    if (st != IA_OK)
        return cli_fail("models plan", st);
    if (json)
        print_json(ia_model_plan_to_json(&p));
    else
        print_plan(&p);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_models(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(models_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subcommands[] = {{"classify", classify}, {"list", list}, {"plan", plan}};
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].fn(argc - 1, argv + 1);
    return cli_usage_error("models", "unknown subcommand '%s' (classify, list, plan)", argv[1]);
}
