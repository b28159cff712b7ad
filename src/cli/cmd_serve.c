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
 * open before the server starts: the DAG is exported once, with every block
 * re-hashed, into ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid/<CIDv1>/
 * (a directory CID: the model directory itself; a file CID: a GGUF, written
 * as model.gguf inside it), through a temporary directory renamed into
 * place, so a cache entry is either whole or absent and concurrent servers
 * agree. The next start reuses the entry. The model's id is the argument as
 * given unless NAME=CID names it.
 */
#define _XOPEN_SOURCE 700 /* nftw, kill */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ia/ipfs.h"
#include "ia/server.h"

static const char serve_usage[] =
    "usage: ipfs-accelerate serve --model M [--model M2 ...] [--host 127.0.0.1] [--port 8080]\n"
    "                             [--api-key-file F] [--max-queue N] [--max-batch-tokens N]\n"
    "                             [--parallel N] [--max-streams N] [limits]\n"
    "\n"
    "Serves models over HTTP: OpenAI (/v1/models, /v1/embeddings, /v1/completions,\n"
    "/v1/chat/completions), Hugging Face TEI (/embed, /tokenize, /info), Ollama\n"
    "(/api/tags, /api/version, /api/embed, /api/generate, /api/chat), /health and\n"
    "/metrics. Text encoders answer embeddings; decoders answer generation. Runs until\n"
    "SIGINT or SIGTERM.\n"
    "\n"
    "  --model M            a model directory or .gguf file, or a CID of one in the local\n"
    "                       store (exported once to ~/.cache/ipfs-accelerate/cid/);\n"
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
};

#define SERVE_MAX_MODELS 64

/* ---- models given as CIDs --------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Removes a file or a directory tree (a failed export's leftovers). */
static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static bool exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static ia_status mkdirs(char *path) {
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = c;
        if (rc != 0 && errno != EEXIST)
            return ia_error_set(IA_EIO, "cannot create the cache directory %s: %s", path,
                                strerror(errno));
        if (!c)
            return IA_OK;
    }
}

/* ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid, created (malloc'd). */
static ia_status cid_cache_root(char **out) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char buf[4096];
    int n = xdg && *xdg ? snprintf(buf, sizeof buf, "%s/ipfs-accelerate/cid", xdg)
                        : snprintf(buf, sizeof buf, "%s/.cache/ipfs-accelerate/cid",
                                   home && *home ? home : "/tmp");
    if (n < 0 || (size_t)n >= sizeof buf)
        return ia_error_set(IA_EINVAL, "the cache directory's path is too long");
    ia_status st = mkdirs(buf);
    if (st == IA_OK && !(*out = ia_strdup(buf)))
        st = IA_ENOMEM;
    return st;
}

/* true when the argument reads as "CID", "CID/a/b" or "/ipfs/CID/...". */
static bool looks_like_cid(const char *arg) {
    if (strncmp(arg, "/ipfs/", 6) == 0)
        arg += 6;
    size_t n = strcspn(arg, "/");
    char first[256];
    if (n == 0 || n >= sizeof first)
        return false;
    memcpy(first, arg, n);
    first[n] = 0;
    ia_cid cid;
    return ia_cid_parse(first, &cid) == IA_OK;
}

typedef struct head_buf {
    uint8_t b[4];
    size_t n;
} head_buf;

static ia_status take_head(void *ctx, const void *data, size_t len) {
    head_buf *h = ctx;
    size_t k = len < sizeof h->b - h->n ? len : sizeof h->b - h->n;
    memcpy(h->b + h->n, data, k);
    h->n += k;
    return IA_OK;
}

/* Removes "<final>.tmp-PID" leftovers of exports whose process is gone
 * (killed mid-export); live ones belong to a server exporting right now. */
static void rm_stale_exports(const char *root, const char *key) {
    DIR *d = opendir(root);
    struct dirent *e;
    size_t klen = strlen(key);
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, key, klen) != 0 || strncmp(e->d_name + klen, ".tmp-", 5) != 0)
            continue;
        char *end = NULL;
        long pid = strtol(e->d_name + klen + 5, &end, 10);
        if (pid <= 0 || *end || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char *path = ia_path_join(root, e->d_name);
            if (path)
                rm_tree(path);
            free(path);
        }
    }
    if (d)
        closedir(d);
}

/* Exports cid into final (a directory; a file CID becomes final/model.gguf)
 * through a temporary sibling renamed into place. */
static ia_status cid_export(ia_blockstore *bs, const ia_cid *cid, bool dir, const char *final) {
    char tmp[4200], file[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", final, (long)getpid());
    rm_tree(tmp); /* a crashed start of this pid's predecessor */
    ia_status st;
    if (dir) {
        st = ia_unixfs_get(bs, cid, tmp);
    } else if (mkdir(tmp, 0755) != 0) {
        st = ia_error_set(IA_EIO, "cannot create %s: %s", tmp, strerror(errno));
    } else {
        snprintf(file, sizeof file, "%s/model.gguf", tmp);
        st = ia_unixfs_get(bs, cid, file);
    }
    if (st == IA_OK && rename(tmp, final) != 0) {
        /* another server exported it first: theirs is as good as ours */
        if ((errno == EEXIST || errno == ENOTEMPTY) && exists(final))
            rm_tree(tmp);
        else
            st = ia_error_set(IA_EIO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    }
    if (st)
        rm_tree(tmp);
    return st;
}

/* The path a CID model is served from (malloc'd): the cache entry, exported
 * now unless a whole one is there. */
static ia_status cid_model_path(ia_blockstore *bs, const char *arg, char **out) {
    *out = NULL;
    ia_cid cid, v1;
    ia_unixfs_info info;
    char key[128], *root = NULL, *final = NULL;
    ia_status st = ia_unixfs_resolve(bs, arg, &cid);
    if (st == IA_OK && !ia_blockstore_has(bs, &cid))
        st = ia_error_set(IA_ENOTFOUND, "no block %s", arg);
    if (st) {
        ia_error_prefix("--model %s: not in the local store at %s (add it with `ipfs-accelerate "
                        "add`, or fetch it with `get --from`)",
                        arg, ia_blockstore_dir(bs));
        return st;
    }
    if ((st = ia_unixfs_stat(bs, &cid, &info)))
        goto fail;
    bool dir = info.type == IA_UNIXFS_DIRECTORY || info.type == IA_UNIXFS_HAMT_SHARD;
    if (!dir) {
        head_buf h = {{0}, 0};
        if ((st = ia_unixfs_cat(bs, &cid, 0, 4, take_head, &h)))
            goto fail;
        if (h.n < 4 || memcmp(h.b, "GGUF", 4) != 0) {
            st = ia_error_set(IA_EUNSUPPORTED,
                              "a file CID must be a GGUF file (a model directory is added as "
                              "a directory)");
            goto fail;
        }
    }
    /* one cache entry per DAG, whichever CID version names it */
    if ((st = ia_cid_convert(&cid, 1, &v1)) ||
        (st = ia_cid_format(&v1, IA_BASE32, key, sizeof key)))
        goto fail;
    if ((st = cid_cache_root(&root)))
        goto fail;
    if (!(final = ia_path_join(root, key))) {
        st = IA_ENOMEM;
        goto fail;
    }
    char probe[4300];
    snprintf(probe, sizeof probe, "%s%s", final, dir ? "" : "/model.gguf");
    struct stat sb;
    bool whole =
        stat(probe, &sb) == 0 &&
        (dir ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == info.size);
    if (!whole) {
        if (exists(final))
            rm_tree(final); /* not what this CID holds: made by hand, or cut short */
        rm_stale_exports(root, key);
        ia_log(IA_LOG_INFO, "serve: exporting %s from the store to %s", arg, final);
        /* the store trusts its blocks on read; an export that becomes a
         * model re-hashes every one */
        bool was = ia_blockstore_hash_on_read(bs);
        ia_blockstore_set_hash_on_read(bs, true);
        st = cid_export(bs, &cid, dir, final);
        ia_blockstore_set_hash_on_read(bs, was);
        if (st)
            goto fail;
    }
    if (dir) {
        *out = final;
        final = NULL;
    } else if (!(*out = ia_path_join(final, "model.gguf"))) {
        st = IA_ENOMEM;
    }
fail:
    if (st)
        ia_error_prefix("--model %s", arg);
    free(root);
    free(final);
    return st;
}

/* Rewrites the --model arguments that name CIDs as "ID=PATH" (*owned keeps
 * the strings; models[i] points at them). The store is opened on first need
 * and left in *bs for the gateway. */
static ia_status resolve_cid_models(const char **models, size_t n, char **owned, const char *repo,
                                    ia_blockstore **bs) {
    for (size_t i = 0; i < n; i++) {
        const char *spec = models[i], *eq = strchr(spec, '=');
        const char *arg = eq ? eq + 1 : spec;
        if (exists(arg) || !looks_like_cid(arg))
            continue; /* a path (or a missing one: the loader says so) */
        ia_status st = *bs ? IA_OK : cli_repo_open(repo, bs);
        char *path = NULL;
        if (st == IA_OK)
            st = cid_model_path(*bs, arg, &path);
        if (st)
            return st;
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *models[SERVE_MAX_MODELS], *key_file = NULL, *repo = NULL;
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
    if (!gateway) { /* the exports are done: leave the store to others */
        ia_blockstore_close(bs);
        bs = NULL;
    }
    if (st == IA_OK && gateway && (bs || (st = cli_repo_open(repo, &bs)) == IA_OK))
        st = ia_gateway_start(bs, NULL, NULL, &gw);
    o.gateway = gw;
    if (st == IA_OK)
        st = ia_server_start(&o, &srv);
    ia_server_keys_free(keys, n_keys);
    for (size_t i = 0; i < n_models; i++)
        free(owned[i]);
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
