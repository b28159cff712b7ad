/*
 * `ipfs-accelerate serve`: the model server (OpenAI, TEI and Ollama APIs over
 * HTTP; see docs/HTTP_API.md) until SIGINT or SIGTERM. The first line it
 * prints, to stdout and flushed, is "serving on http://HOST:PORT" (port 0
 * asks for a free port, and this line says which), the second an example
 * curl request; "ready" follows once every model is loaded (/health answers
 * 503 until then). A model that fails to load stops the server with exit
 * status 1.
 *
 * Signals are handled as in `gateway`: blocked before the server's threads
 * start, then awaited with sigwait, so shutdown runs in ordinary code.
 *
 * A --model that is not a path on disk but a CID (or CID/sub/path, or
 * /ipfs/CID/...) in the local store is turned into a path the loaders can
 * open before the server starts, by ia_model_source_resolve_in (runtime/
 * model_source.c): a cache entry under
 * ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid/<CIDv1>/ that maps files
 * added with --nocopy in place and holds verified exports of the rest. The
 * model's id is the argument as given unless NAME=CID names it.
 *
 * --dtype, --kv-cache and --context load every model as `embed` and
 * `generate` would: their values go through those commands' own parsers
 * (cli_embed_dtype_parse, cli_gen_*_parse), so the names, defaults and
 * messages are theirs. One --dtype serves both kinds of model when each
 * parser takes it; once the models' kinds are known (their configs, read as
 * the server will classify them), a model whose command would refuse the
 * value stops serve with a usage error naming the model, as does --kv-cache
 * or --context with no decoder to apply to.
 */
#define _XOPEN_SOURCE 700 /* sigtimedwait, pthread_sigmask */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"
#include "ia/runtime.h"
#include "ia/server.h"

static const char serve_usage[] =
    "usage: ipfs-accelerate serve --model M [--model M2 ...] [--host 127.0.0.1] [--port 8080]\n"
    "                             [--api-key-file F] [--max-queue N] [--max-batch-tokens N]\n"
    "                             [--parallel N] [--max-streams N] [--dtype T]\n"
    "                             [--kv-cache T] [--context N] [limits]\n"
    "\n"
    "Serves models over HTTP: OpenAI (/v1/models, /v1/embeddings, /v1/completions,\n"
    "/v1/chat/completions), Hugging Face TEI (/embed, /tokenize, /info), Ollama\n"
    "(/api/tags, /api/version, /api/embed, /api/generate, /api/chat), /health and\n"
    "/metrics. Text encoders answer embeddings; decoders answer generation. Runs until\n"
    "SIGINT or SIGTERM.\n"
    "\n"
    "  --model M            a model directory or .gguf file, or a CID of one in the local\n"
    "                       store (--nocopy files mapped in place, the rest exported once\n"
    "                       to ~/.cache/ipfs-accelerate/cid/);\n"
    "                       NAME=M names it (else the last path component, without\n"
    "                       .gguf, or the CID as given); repeat for more models\n"
    "  --host H             address to listen on (default 127.0.0.1)\n"
    "  --port P             port (default 8080; 0 picks a free one, printed first)\n"
    "  --api-key-file F     Bearer keys, one per line; /health and /metrics stay open\n"
    "  --max-queue N        requests waiting per model before 429 (default 256)\n"
    "  --max-batch-tokens N tokens per embedding batch (default 8192)\n"
    "  --batch-wait-us N    how long a batch below its budget waits for more (default 2000)\n"
    "  --parallel N         generation slots per model: sequences decoded together in one\n"
    "                       batched step (default 4)\n"
    "  --max-streams N      concurrent streamed responses per model before 429 (default 64)\n"
    "  --dtype T            weights in memory for every model: T as `embed --dtype` takes it\n"
    "                       for encoders (f32, bf16, q8_0, q4_0 ... q6_k, or a `quantize`\n"
    "                       mix such as q4_k_m) and `generate --dtype` for decoders (f32,\n"
    "                       f16, bf16, q8_0, q4_0 ... q6_k); default f32. A model that\n"
    "                       cannot take T stops serve with a usage error naming it\n"
    "  --kv-cache f32|f16|q8_0  decoders' KV cache type (default f32)\n"
    "  --context N          decoders' context length (default: the model's)\n"
    "                       (--kv-cache and --context apply to the decoders; encoders have\n"
    "                       no KV cache and ignore them, but one decoder must be served)\n"
    "  --threads N          compute threads per model (default: physical cores)\n"
    "  --max-body-bytes N   request body limit (default 4194304)\n"
    "  --max-inputs N       texts per embedding request (default 2048)\n"
    "  --max-input-tokens N tokens per input or prompt (default: the model's limit)\n"
    "  --max-tokens N       tokens one generation may ask for (default 4096)\n"
    "  --timeout-ms N       per request, queueing included (default 600000)\n"
    "  --gateway            also serve the local store as an IPFS Trustless Gateway under\n"
    "                       /ipfs/ (open, like /health; see `gateway`)\n"
    "  --repo DIR           the store for --gateway and CID models (default\n"
    "                       $IPFS_ACCELERATE_HOME or ~/.local/share/ipfs-accelerate)\n"
    "  --endpoints FILE     also serve the remote models of an endpoints YAML on /v1/*\n"
    "                       (docs/PROVIDERS.md); with it --model is optional\n"
    "\n"
    "GET / is a live dashboard page and GET /stats its JSON (open, like /metrics).\n";

enum {
    O_MODEL = 256,
    O_HOST,
    O_PORT,
    O_KEYS,
    O_QUEUE,
    O_BATCH,
    O_WAIT,
    O_PARALLEL,
    O_THREADS,
    O_BODY,
    O_INPUTS,
    O_INTOK,
    O_MAXTOK,
    O_TIMEOUT,
    O_GATEWAY,
    O_REPO,
    O_MAXSTREAMS,
    O_ENDPOINTS,
    O_DTYPE,
    O_KV,
    O_CONTEXT,
};

#define SERVE_MAX_MODELS 64

/* ---- models given as CIDs --------------------------------------------------------- */

/* Rewrites the --model arguments that name CIDs as "ID=PATH" (*owned keeps
 * the strings; models[i] points at them). The store is opened on first need
 * and left in *bs for the gateway. */
static ia_status resolve_cid_models(const char **models, size_t n, char **owned, const char *repo,
                                    ia_blockstore **bs) {
    for (size_t i = 0; i < n; i++) {
        const char *spec = models[i], *eq = strchr(spec, '=');
        const char *arg = eq ? eq + 1 : spec;
        if (!ia_model_source_is_cid(arg))
            continue; /* a path (or a missing one: the loader says so) */
        ia_status st = *bs ? IA_OK : cli_repo_open(repo, bs);
        char *path = NULL;
        if (st == IA_OK)
            st = ia_model_source_resolve_in(*bs, arg, &path, NULL);
        if (st)
            return st; /* the message names the argument */
        size_t id_len = eq ? (size_t)(eq - spec) : strlen(arg);
        size_t len = id_len + 1 + strlen(path) + 1;
        if (!(owned[i] = ia_malloc(len))) {
            free(path);
            return IA_ENOMEM;
        }
        snprintf(owned[i], len, "%.*s=%s", (int)id_len, spec, path);
        free(path);
        models[i] = owned[i];
    }
    return IA_OK;
}

/* ---- model options: which models take them ---------------------------------------------- */

/* --dtype, --kv-cache and --context as given (NULL: absent), and whether
 * embed's and generate's parsers took the --dtype value (why not, if not). */
typedef struct serve_load_args {
    const char *dtype, *kv_cache, *context;
    bool encoders_ok, decoders_ok;
    char encoder_why[256], decoder_why[256];
} serve_load_args;

/* Whether spec ("PATH" or "ID=PATH") is a text decoder, read from its config
 * as the server classifies it. false when the config cannot be read or
 * names another family: the server then says why it cannot serve it. */
static bool model_is_decoder(const char *spec, bool *encoder) {
    const char *eq = strchr(spec, '=');
    json_t *cfg = NULL;
    ia_model_class cls;
    ia_classify_options co = {true};
    bool ok = ia_model_config_load(eq ? eq + 1 : spec, &cfg) == IA_OK &&
              ia_model_classify(cfg, &co, &cls) == IA_OK;
    json_decref(cfg);
    ia_error_clear();
    *encoder = ok && cls.family == IA_FAMILY_TEXT_ENCODER;
    return ok && cls.family == IA_FAMILY_TEXT_DECODER;
}

/* Checks the model options against the models' kinds (given: the --model
 * arguments as typed, for messages; specs: the same resolved to paths).
 * Returns 0, or the usage error's exit status (printed). */
static int check_load_args(const serve_load_args *a, const char *const *given,
                           const char *const *specs, size_t n) {
    const char *flag = a->kv_cache ? "--kv-cache" : "--context";
    if (n == 0 && (a->dtype || a->kv_cache || a->context))
        return cli_usage_error("serve", "%s applies to the --model models, and none is given",
                               a->dtype ? "--dtype" : flag);
    bool any_decoder = false;
    const char *an_encoder = NULL;
    for (size_t i = 0; i < n; i++) {
        bool encoder, decoder = model_is_decoder(specs[i], &encoder);
        any_decoder |= decoder;
        if (encoder && !an_encoder)
            an_encoder = given[i];
        if (a->dtype && encoder && !a->encoders_ok)
            return cli_usage_error("serve", "--model %s is a text encoder, as `embed` loads it: %s",
                                   given[i], a->encoder_why);
        if (a->dtype && decoder && !a->decoders_ok)
            return cli_usage_error("serve",
                                   "--model %s is a text decoder, as `generate` loads it: %s",
                                   given[i], a->decoder_why);
    }
    /* (a model of unknown kind: the server says what is wrong with it) */
    if ((a->kv_cache || a->context) && !any_decoder && an_encoder)
        return cli_usage_error("serve",
                               "%s %s: no --model here is a text decoder (encoders such as %s "
                               "keep no KV cache)",
                               flag, a->kv_cache ? a->kv_cache : a->context, an_encoder);
    return 0;
}

/* Parses --dtype with both commands' parsers into o; a usage error (exit 2)
 * only when neither takes the value. */
static int parse_dtype(const char *s, serve_load_args *a, ia_server_options *o) {
    ia_embedder_options eo = ia_embedder_options_default();
    ia_dtype dec = IA_DTYPE_F32;
    a->dtype = s;
    a->encoders_ok = cli_embed_dtype_parse(s, &eo) == IA_OK;
    snprintf(a->encoder_why, sizeof a->encoder_why, "%s", a->encoders_ok ? "" : ia_error_message());
    a->decoders_ok = cli_gen_dtype_parse(s, &dec) == IA_OK;
    snprintf(a->decoder_why, sizeof a->decoder_why, "%s", a->decoders_ok ? "" : ia_error_message());
    if (!a->encoders_ok && !a->decoders_ok)
        return cli_usage_error("serve",
                               "--dtype: '%s' is a type neither `embed` (f32, bf16, a "
                               "quantisation type or a mix such as q4_k_m) nor `generate` (f32, "
                               "f16, bf16 or a quantisation type) takes",
                               s);
    /* both parsers give the same type for a value both take */
    o->dtype = a->encoders_ok ? eo.dtype : dec;
    o->weight_type = a->encoders_ok ? eo.weight_type : NULL;
    o->weight_type_ctx = a->encoders_ok ? eo.weight_type_ctx : NULL;
    o->dtype_name = o->weight_type ? s : NULL;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"api-key-file", required_argument, NULL, O_KEYS},
        {"max-queue", required_argument, NULL, O_QUEUE},
        {"max-batch-tokens", required_argument, NULL, O_BATCH},
        {"batch-wait-us", required_argument, NULL, O_WAIT},
        {"parallel", required_argument, NULL, O_PARALLEL},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-body-bytes", required_argument, NULL, O_BODY},
        {"max-inputs", required_argument, NULL, O_INPUTS},
        {"max-input-tokens", required_argument, NULL, O_INTOK},
        {"max-tokens", required_argument, NULL, O_MAXTOK},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"gateway", no_argument, NULL, O_GATEWAY},
        {"repo", required_argument, NULL, O_REPO},
        {"endpoints", required_argument, NULL, O_ENDPOINTS},
        {"max-streams", required_argument, NULL, O_MAXSTREAMS},
        {"dtype", required_argument, NULL, O_DTYPE},
        {"kv-cache", required_argument, NULL, O_KV},
        {"context", required_argument, NULL, O_CONTEXT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *models[SERVE_MAX_MODELS], *given[SERVE_MAX_MODELS];
    const char *key_file = NULL, *repo = NULL;
    serve_load_args load = {0};
    bool gateway = false;
    size_t n_models = 0;
    ia_server_options o = ia_server_options_default();
    o.port = 8080;
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        const char *flag = NULL;
        long lo = 1, hi = 1L << 40;
        switch (c) {
        case O_MODEL:
            if (n_models == SERVE_MAX_MODELS)
                return cli_usage_error("serve", "at most %d --model", SERVE_MAX_MODELS);
            given[n_models] = optarg;
            models[n_models++] = optarg;
            continue;
        case O_HOST:
            o.host = optarg;
            continue;
        case O_KEYS:
            key_file = optarg;
            continue;
        case O_GATEWAY:
            gateway = true;
            continue;
        case O_ENDPOINTS:
            o.endpoints = optarg;
            continue;
        case O_REPO:
            repo = optarg;
            continue;
        case O_DTYPE: {
            int rc = parse_dtype(optarg, &load, &o);
            if (rc)
                return rc;
            continue;
        }
        case O_KV:
            load.kv_cache = optarg;
            if (cli_gen_kv_cache_parse(optarg, &o.kv_dtype) != IA_OK)
                return cli_usage_error("serve", "%s", ia_error_message());
            continue;
        case O_CONTEXT:
            load.context = optarg;
            if (cli_gen_context_parse(optarg, &o.context) != IA_OK)
                return cli_usage_error("serve", "%s", ia_error_message());
            continue;
        case 'h':
            fputs(serve_usage, stdout);
            return 0;
        case O_PORT:
            flag = "--port", lo = 0, hi = 65535;
            break;
        case O_QUEUE:
            flag = "--max-queue", hi = 1 << 20;
            break;
        case O_BATCH:
            flag = "--max-batch-tokens", hi = 1 << 24;
            break;
        case O_WAIT:
            flag = "--batch-wait-us", hi = 10000000;
            break;
        case O_PARALLEL:
            flag = "--parallel", hi = 256;
            break;
        case O_MAXSTREAMS:
            flag = "--max-streams", hi = 65536;
            break;
        case O_THREADS:
            flag = "--threads", hi = 1024;
            break;
        case O_BODY:
            flag = "--max-body-bytes", lo = 64;
            break;
        case O_INPUTS:
            flag = "--max-inputs", hi = 1 << 20;
            break;
        case O_INTOK:
            flag = "--max-input-tokens", hi = 1 << 24;
            break;
        case O_MAXTOK:
            flag = "--max-tokens", hi = 1 << 24;
            break;
        case O_TIMEOUT:
            flag = "--timeout-ms", hi = 86400000;
            break;
        default:
            return cli_usage_error("serve", "bad option");
        }
        if (cli_parse_int(flag, optarg, lo, hi, &v) != IA_OK)
            return cli_usage_error("serve", "%s", ia_error_message());
        switch (c) {
        case O_PORT:
            o.port = (uint16_t)v;
            break;
        case O_QUEUE:
            o.max_queue = (size_t)v;
            break;
        case O_BATCH:
            o.max_batch_tokens = (size_t)v;
            break;
        case O_WAIT:
            o.batch_wait_us = (unsigned)v;
            break;
        case O_PARALLEL:
            o.parallel = (unsigned)v;
            break;
        case O_MAXSTREAMS:
            o.max_streams = (unsigned)v;
            break;
        case O_THREADS:
            o.threads = (int)v;
            break;
        case O_BODY:
            o.max_body_bytes = (size_t)v;
            break;
        case O_INPUTS:
            o.max_inputs = (size_t)v;
            break;
        case O_INTOK:
            o.max_input_tokens = (size_t)v;
            break;
        case O_MAXTOK:
            o.max_tokens = (size_t)v;
            break;
        case O_TIMEOUT:
            o.timeout_ms = (unsigned)v;
            break;
        default:
            break;
        }
    }
    if (optind != argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (n_models == 0 && !o.endpoints)
        return cli_usage_error("serve", "--model (or --endpoints) is required");

    char **keys = NULL, *owned[SERVE_MAX_MODELS] = {0};
    size_t n_keys = 0;
    if (key_file && ia_server_keys_load(key_file, &keys, &n_keys) != IA_OK)
        return cli_fail("serve", IA_EINVAL);
    o.models = models;
    o.n_models = n_models;
    o.api_keys = (const char *const *)keys;
    o.n_api_keys = n_keys;
    o.load_async = true;

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGINT, SIG_DFL); /* a shell's background jobs start with SIGINT ignored */
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);

    ia_server *srv = NULL;
    ia_blockstore *bs = NULL;
    ia_gateway *gw = NULL;
    ia_status st = resolve_cid_models(models, n_models, owned, repo, &bs);
    /* the models' kinds are known once every one is a path */
    int usage = st == IA_OK ? check_load_args(&load, given, models, n_models) : 0;
    if (!gateway || usage) { /* the exports are done: leave the store to others */
        ia_blockstore_close(bs);
        bs = NULL;
    }
    if (st == IA_OK && !usage && gateway && (bs || (st = cli_repo_open(repo, &bs)) == IA_OK))
        st = ia_gateway_start(bs, NULL, NULL, &gw);
    o.gateway = gw;
    if (st == IA_OK && !usage)
        st = ia_server_start(&o, &srv);
    ia_server_keys_free(keys, n_keys);
    for (size_t i = 0; i < n_models; i++)
        free(owned[i]);
    if (usage)
        return usage;
    if (st) {
        int rc = cli_fail("serve", st);
        ia_gateway_stop(gw);
        ia_blockstore_close(bs);
        return rc;
    }
    /* The address as given (IPv6 in brackets); the example request goes to
     * loopback when the server listens on every address. */
    bool v6 = strchr(o.host, ':') != NULL;
    const char *local = strcmp(o.host, "0.0.0.0") == 0 ? "127.0.0.1"
                        : strcmp(o.host, "::") == 0    ? "::1"
                                                       : o.host;
    unsigned port = (unsigned)ia_server_port(srv);
    printf("serving on http://%s%s%s:%u\n", v6 ? "[" : "", o.host, v6 ? "]" : "", port);
    printf("try: curl http://%s%s%s:%u/v1/models%s\n", v6 ? "[" : "", local, v6 ? "]" : "", port,
           n_keys ? " -H 'Authorization: Bearer KEY'" : "");
    fflush(stdout);
    /* Wait for the models while still answering signals. */
    int rc = 0;
    for (;;) {
        st = ia_server_wait_ready(srv, 200);
        if (st == IA_OK) {
            printf("ready\n");
            fflush(stdout);
            break;
        }
        if (st != IA_ERANGE) {
            rc = cli_fail("serve", st);
            break;
        }
        struct timespec zero = {0, 0};
        if (sigtimedwait(&stop_signals, NULL, &zero) > 0) {
            rc = -1; /* stopped while loading */
            break;
        }
    }
    if (rc == 0) {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        ia_log(IA_LOG_INFO, "serve: %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    ia_server_stop(srv);
    ia_gateway_stop(gw);
    ia_blockstore_close(bs);
    return rc < 0 ? 0 : rc;
}
