/*
 * `ipfs-accelerate search`: embeds a query and a set of texts and prints the
 * texts ranked by cosine similarity, the main job of `make run` until the
 * server exists.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/runtime.h"

static const char search_usage[] =
    "usage: ipfs-accelerate search --model DIR|CID --query TEXT [options] [TEXT ...]\n"
    "\n"
    "Ranks the texts by cosine similarity to the query, best first.\n"
    "\n"
    "  --model DIR      model directory (or .gguf file), or the CID of one in the local\n"
    "                   store (CID, CID/sub/path, /ipfs/CID/...; --nocopy files mapped in place)\n"
    "  --repo DIR       the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                   ~/.local/share/ipfs-accelerate)\n"
    "  --query TEXT     what to search for\n"
    "  --input FILE     read texts from FILE, one per line\n"
    "  --top N          print only the N best (default: all)\n"
    "  --threads N      worker threads (default: physical cores)\n"
    "  --device D       auto (default), cpu, cuda:N, ...: where to run\n"
    "  --json           print a JSON array of {\"rank\", \"score\", \"index\", \"text\"}\n";

typedef struct scored {
    double score;
    size_t index;
} scored;

static int by_score_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

static double cosine(const float *a, const float *b, size_t n) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return na > 0 && nb > 0 ? dot / sqrt(na * nb) : 0.0;
}

int cmd_search(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},   {"query", required_argument, NULL, 'q'},
        {"input", required_argument, NULL, 'i'},   {"top", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
        {"device", required_argument, NULL, 'D'},  {"repo", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *input = NULL, *query = NULL, *device = NULL, *repo = NULL;
    char *model_path = NULL; /* the model's path on disk (a CID resolved) */
    long top = 0, v;
    bool json = false;
    ia_embedder_options opts = ia_embedder_options_default();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'q':
            query = optarg;
            break;
        case 'R':
            repo = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'k':
            st = cli_parse_int("--top", optarg, 1, 1L << 30, &top);
            break;
        case 't':
            st = cli_parse_int("--threads", optarg, 1, 1024, &v);
            opts.n_threads = (int)v;
            break;
        case 'j':
            json = true;
            break;
        case 'D':
            st = cli_parse_device(optarg);
            device = optarg;
            break;
        case 'h':
            fputs(search_usage, stdout);
            return 0;
        default:
            return cli_usage_error("search", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("search", "%s", ia_error_message());
    }
    if (!model || !query)
        return cli_usage_error("search", "--model DIR and --query TEXT are required");
    size_t bad;
    if (!ia_utf8_valid(query, strlen(query), &bad))
        return cli_usage_error("search", "--query: invalid UTF-8 at byte %zu", bad + 1);

    cli_inputs in;
    int rc_in = cli_collect_inputs("search", input, argc - optind, argv + optind, &in);
    if (rc_in != 0)
        return rc_in;
    ia_status st = IA_OK;
    ia_embedder *emb = NULL;
    float *vecs = NULL;
    scored *ranked = NULL;
    const char **all = NULL;
    int rc = 1;
    char chosen[32];
    if ((st = ia_model_source_resolve(model, repo, &model_path, NULL)))
        goto done;
    if ((st = ia_model_device_select(model_path, device, ia_dtype_name(opts.dtype), chosen,
                                     sizeof chosen)))
        goto done;
    if ((st = ia_embedder_load(model_path, &opts, &emb)))
        goto done;
    size_t dim = ia_embedder_dim(emb), n = in.n;
    vecs = ia_malloc_array((n + 1) * dim, sizeof(float));
    ranked = ia_malloc_array(n ? n : 1, sizeof *ranked);
    all = ia_malloc_array(n + 1, sizeof *all);
    if (!vecs || !ranked || !all) {
        st = IA_ENOMEM;
        goto done;
    }
    all[0] = query;
    memcpy(all + 1, in.texts, n * sizeof *all);
    if ((st = ia_embedder_embed(emb, all, NULL, n + 1, vecs)))
        goto done;
    for (size_t i = 0; i < n; i++)
        ranked[i] = (scored){cosine(vecs, vecs + (i + 1) * dim, dim), i};
    qsort(ranked, n, sizeof *ranked, by_score_desc);
    size_t shown = top > 0 && (size_t)top < n ? (size_t)top : n;
    if (json) {
        fputc('[', stdout);
        for (size_t r = 0; r < shown; r++) {
            printf("%s{\"rank\": %zu, \"score\": %.6f, \"index\": %zu, \"text\": ", r ? ",\n " : "",
                   r + 1, ranked[r].score, ranked[r].index);
            cli_write_string(stdout, in.texts[ranked[r].index]);
            fputc('}', stdout);
        }
        fputs("]\n", stdout);
    } else {
        printf("query: %s\n", query);
        for (size_t r = 0; r < shown; r++)
            printf("%3zu. %.4f  %s\n", r + 1, ranked[r].score, in.texts[ranked[r].index]);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (st != IA_OK)
        rc = cli_fail("search", st);
    free(vecs);
    free(ranked);
    free(all);
    free(model_path);
    ia_embedder_free(emb);
    cli_inputs_free(&in);
    return rc;
}
