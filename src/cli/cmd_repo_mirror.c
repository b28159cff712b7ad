/*
 * `ipfs-accelerate repo mirror`: the local IPFS store mirrored to an S3
 * bucket (Amazon S3 or any S3-compatible store) and read back from it.
 *
 * Push: every block of the store (or, with --cid, every block of that DAG)
 * goes up as the object PREFIX/<key>, where <key> names the block by its
 * multihash as a CIDv1 with the raw codec in base32 ("bafkrei..."), as the
 * store itself keys blocks: a block has one object whatever CID (v0 or v1,
 * dag-pb or raw) links to it. The objects already under the prefix are
 * listed once (ListObjectsV2) and a block whose object exists with the same
 * size is skipped, so a second run uploads nothing. A block of the
 * multipart threshold or more goes up as a multipart upload (aborted on
 * failure). Identity-hash CIDs carry their bytes inline and are not
 * uploaded.
 *
 * Pull (--pull --cid CID): the DAG under CID is fetched block by block,
 * each object checked against the CID it was asked for (a block whose bytes
 * do not hash to it is refused, naming the CID and the key, and nothing of
 * it is stored), stored, its links followed; blocks already in the store
 * are read locally. The root is then pinned recursively (--no-pin to skip),
 * so that `repo gc` keeps what was pulled.
 *
 * The bucket's endpoint, region and keys come from the environment as for
 * `s3` (cmd_s3.c): --endpoint-url and --region override the first two; keys
 * never come from the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"
#include "ia/s3.h"

static const char mirror_usage[] =
    "usage: ipfs-accelerate repo mirror s3://BUCKET[/PREFIX] [--cid CID] [options]\n"
    "       ipfs-accelerate repo mirror --pull s3://BUCKET[/PREFIX] --cid CID [options]\n"
    "\n"
    "Mirrors the local store's blocks to S3 as PREFIX/<CIDv1 raw base32 of the block's\n"
    "multihash>, skipping objects already there; --pull fetches a DAG back, every block\n"
    "verified against its CID.\n"
    "\n"
    "  --cid CID                push: only the DAG under CID; pull: the DAG to fetch\n"
    "  --pull                   fetch instead of upload\n"
    "  --no-pin                 pull: do not pin CID afterwards\n"
    "  --repo DIR               the store (default $IPFS_ACCELERATE_HOME or\n"
    "                           ~/.local/share/ipfs-accelerate)\n"
    "  --endpoint-url URL       an S3-compatible server (default $IA_S3_ENDPOINT or\n"
    "                           $AWS_ENDPOINT_URL, else AWS)\n"
    "  --region NAME            default $AWS_REGION or $AWS_DEFAULT_REGION, else us-east-1\n"
    "  --multipart-threshold N  blocks this big or bigger go multipart (default 16M)\n"
    "  --part-size N            bytes per part (default 8M)\n"
    "  --json                   print the summary as JSON\n"
    "\n"
    "Credentials as for `s3`: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)\n"
    "or the shared credentials file.\n";

enum { O_CID = 256, O_PULL, O_NOPIN, O_REPO, O_ENDPOINT, O_REGION, O_THRESHOLD, O_PART, O_JSON };

/* Objects bigger than this are not blocks: a pull refuses them. */
#define MAX_BLOCK ((size_t)256 << 20)

typedef struct mirror {
    ia_blockstore *bs;
    ia_s3_client *s3;
    const char *bucket;
    char *prefix; /* "" or "p/" (with its slash) */
    ia_s3_put_options put;
    /* keys already in the bucket (push), sorted, with their sizes */
    char **keys;
    uint64_t *sizes;
    size_t n_keys, cap_keys;
    /* pull: CIDs to fetch and keys seen */
    ia_cid *todo;
    size_t n_todo, cap_todo;
    uint64_t blocks, bytes, skipped, multipart;
} mirror;

/* ---- keys ------------------------------------------------------------------------------ */

/* PREFIX + the block's key into buf (IA_CID_MAX_STRING + prefix room). */
static ia_status block_key(const mirror *m, const ia_cid *cid, char *buf, size_t cap) {
    ia_cid raw = *cid;
    raw.version = 1;
    raw.codec = IA_CODEC_RAW;
    char text[IA_CID_MAX_STRING];
    ia_status st = ia_cid_format(&raw, IA_BASE32, text, sizeof text);
    if (st)
        return st;
    if ((size_t)snprintf(buf, cap, "%s%s", m->prefix, text) >= cap)
        return ia_error_set(IA_EINVAL, "the S3 key for %s is too long", text);
    return IA_OK;
}

static ia_status collect_key(void *ctx, const ia_s3_list_entry *e) {
    mirror *m = ctx;
    if (m->n_keys == m->cap_keys) {
        size_t cap = m->cap_keys ? m->cap_keys * 2 : 256;
        char **k = ia_realloc_array(m->keys, cap, sizeof *k);
        if (!k)
            return IA_ENOMEM;
        m->keys = k;
        uint64_t *s = ia_realloc_array(m->sizes, cap, sizeof *s);
        if (!s)
            return IA_ENOMEM;
        m->sizes = s;
        m->cap_keys = cap;
    }
    if (!(m->keys[m->n_keys] = ia_strdup(e->key)))
        return IA_ENOMEM;
    m->sizes[m->n_keys++] = e->info.size;
    return IA_OK;
}

/* Sorts keys and sizes together (a permutation through an index array). */
static const char *const *sort_keys_base;
static int cmp_index(const void *a, const void *b) {
    return strcmp(sort_keys_base[*(const size_t *)a], sort_keys_base[*(const size_t *)b]);
}

static ia_status sort_keys(mirror *m) {
    if (m->n_keys < 2)
        return IA_OK;
    size_t *idx = ia_malloc_array(m->n_keys, sizeof *idx);
    char **k = ia_malloc_array(m->n_keys, sizeof *k);
    uint64_t *s = ia_malloc_array(m->n_keys, sizeof *s);
    if (!idx || !k || !s) {
        free(idx);
        free(k);
        free(s);
        return IA_ENOMEM;
    }
    for (size_t i = 0; i < m->n_keys; i++)
        idx[i] = i;
    sort_keys_base = (const char *const *)m->keys;
    qsort(idx, m->n_keys, sizeof *idx, cmp_index);
    for (size_t i = 0; i < m->n_keys; i++) {
        k[i] = m->keys[idx[i]];
        s[i] = m->sizes[idx[i]];
    }
    free(m->keys);
    free(m->sizes);
    free(idx);
    m->keys = k;
    m->sizes = s;
    return IA_OK;
}

/* The size of the object named key when the bucket listing had it. */
static bool have_object(const mirror *m, const char *key, uint64_t *size) {
    size_t lo = 0, hi = m->n_keys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->keys[mid], key);
        if (c == 0) {
            *size = m->sizes[mid];
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ---- push ---------------------------------------------------------------------------------- */

typedef struct mem_src {
    const uint8_t *p;
    size_t n;
} mem_src;

static ia_status read_mem(void *ctx, uint64_t off, void *buf, size_t len) {
    const mem_src *s = ctx;
    if (off > s->n || len > s->n - off)
        return ia_error_set(IA_EINVAL, "read past the block's end");
    if (len)
        memcpy(buf, s->p + off, len);
    return IA_OK;
}

static ia_status push_block(mirror *m, const ia_cid *cid, const uint8_t *data, size_t len) {
    if (cid->mh_code == IA_MH_IDENTITY)
        return IA_OK; /* the bytes are the CID */
    char key[IA_CID_MAX_STRING + 1024];
    ia_status st = block_key(m, cid, key, sizeof key);
    if (st)
        return st;
    uint64_t have;
    if (have_object(m, key, &have) && have == len) {
        m->skipped++;
        return IA_OK;
    }
    mem_src src = {data, len};
    ia_s3_put_report rep;
    if ((st = ia_s3_object_put_from(m->s3, m->bucket, key, len, read_mem, &src, &m->put, &rep))) {
        ia_error_prefix("s3://%s/%s", m->bucket, key);
        return st;
    }
    m->blocks++;
    m->bytes += len;
    m->multipart += rep.multipart;
    return IA_OK;
}

static ia_status push_visit(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len) {
    return push_block(ctx, cid, data, len);
}

static ia_status push_stored(void *ctx, const ia_cid *cid) {
    mirror *m = ctx;
    if (cid->mh_code == IA_MH_IDENTITY)
        return IA_OK;
    uint8_t *data = NULL;
    size_t len = 0;
    ia_status st = ia_blockstore_get(m->bs, cid, &data, &len);
    if (st == IA_OK)
        st = push_block(m, cid, data, len);
    free(data);
    return st;
}

static ia_status push(mirror *m, const ia_cid *root) {
    /* One listing of what is there. The prefix is listed without its last
     * '/' (some S3 implementations, moto among them, mis-sign a %2F in the
     * query); keys beside it ("prefix2/...") never equal a block's key, so
     * they cost only listing time. */
    size_t plen = strlen(m->prefix);
    char *list_prefix = plen ? ia_strndup(m->prefix, plen - 1) : NULL;
    if (plen && !list_prefix)
        return IA_ENOMEM;
    ia_status st = ia_s3_list(m->s3, m->bucket, list_prefix, 1000, collect_key, m);
    free(list_prefix);
    if (st == IA_OK)
        st = sort_keys(m);
    if (st)
        return st;
    return root ? ia_dag_walk(m->bs, root, false, push_visit, m)
                : ia_blockstore_foreach(m->bs, push_stored, m);
}

/* ---- pull ---------------------------------------------------------------------------------- */

typedef struct getbuf {
    uint8_t *p;
    size_t n, cap;
} getbuf;

static ia_status to_buf(void *ctx, const void *data, size_t len) {
    getbuf *b = ctx;
    if (len == 0)
        return IA_OK;
    if (len > MAX_BLOCK - b->n)
        return ia_error_set(IA_ERANGE, "the object is larger than %zu bytes: not a block",
                            MAX_BLOCK);
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return IA_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return IA_OK;
}

static ia_status todo_push(mirror *m, const ia_cid *cid) {
    if (!ia_array_reserve(&m->todo, &m->cap_todo, m->n_todo + 1, sizeof *m->todo, 64))
        return IA_ENOMEM;
    m->todo[m->n_todo++] = *cid;
    return IA_OK;
}

/* One block: from the store when there, else from the bucket, verified and
 * stored; its links are queued (pull() skips the ones already visited). */
static ia_status pull_one(mirror *m, const ia_cid *cid, getbuf *b) {
    char key[IA_CID_MAX_STRING + 1024], text[IA_CID_MAX_STRING];
    ia_status st = block_key(m, cid, key, sizeof key);
    if (st == IA_OK)
        st = ia_cid_format(cid, cid->version ? IA_BASE32 : IA_BASE58BTC, text, sizeof text);
    if (st)
        return st;
    uint8_t *data = NULL;
    size_t len = 0;
    bool local = cid->mh_code != IA_MH_IDENTITY && ia_blockstore_has(m->bs, cid);
    if (cid->mh_code == IA_MH_IDENTITY) {
        data = (uint8_t *)cid->digest;
        len = cid->digest_len;
    } else if (local) {
        if ((st = ia_blockstore_get(m->bs, cid, &data, &len)))
            return st;
        m->skipped++;
    } else {
        b->n = 0;
        if ((st = ia_s3_object_get(m->s3, m->bucket, key, false, 0, 0, to_buf, b, NULL))) {
            ia_error_prefix("block %s (s3://%s/%s)", text, m->bucket, key);
            return st;
        }
        static uint8_t empty[1];
        data = b->p ? b->p : empty; /* an empty block: nothing was written */
        if ((st = ia_cid_verify(cid, data, b->n))) {
            ia_error_prefix("s3://%s/%s is not block %s", m->bucket, key, text);
            return st;
        }
        if ((st = ia_blockstore_put(m->bs, cid, data, b->n)))
            return st;
        len = b->n;
        m->blocks++;
        m->bytes += len;
    }
    ia_cid *links = NULL;
    size_t n_links = 0;
    st = ia_block_links(cid, data, len, &links, &n_links);
    for (size_t i = 0; st == IA_OK && i < n_links; i++)
        st = todo_push(m, &links[i]);
    free(links);
    if (local)
        free(data);
    if (st)
        ia_error_prefix("block %s", text);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ia_status pull(mirror *m, const ia_cid *root) {
    getbuf b = {0};
    char **seen = NULL; /* visited keys, kept sorted for lookups */
    size_t n_seen = 0, cap_seen = 0;
    ia_status st = todo_push(m, root);
    ia_blockstore_batch_begin(m->bs);
    while (st == IA_OK && m->n_todo > 0) {
        ia_cid cid = m->todo[--m->n_todo];
        char key[IA_CID_MAX_STRING + 1024], *kp = key;
        if ((st = block_key(m, &cid, key, sizeof key)))
            break;
        if (n_seen && bsearch(&kp, seen, n_seen, sizeof *seen, cmp_str))
            continue; /* one block may be linked from many places */
        if (n_seen == cap_seen) {
            size_t cap = cap_seen ? cap_seen * 2 : 64;
            char **s = ia_realloc_array(seen, cap, sizeof *s);
            if (!s) {
                st = IA_ENOMEM;
                break;
            }
            seen = s;
            cap_seen = cap;
        }
        char *copy = ia_strdup(key);
        if (!copy) {
            st = IA_ENOMEM;
            break;
        }
        size_t at = n_seen;
        while (at > 0 && strcmp(seen[at - 1], copy) > 0)
            at--;
        memmove(seen + at + 1, seen + at, (n_seen - at) * sizeof *seen);
        seen[at] = copy;
        n_seen++;
        st = pull_one(m, &cid, &b);
    }
    /* what was verified and stored stays, whatever came after */
    ia_status cst = ia_blockstore_batch_commit(m->bs);
    if (st == IA_OK)
        st = cst;
    for (size_t i = 0; i < n_seen; i++)
        free(seen[i]);
    free(seen);
    free(b.p);
    return st;
}

/* ---- the command ------------------------------------------------------------------------- */

static ia_status parse_size(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = *end == 'K' || *end == 'k'   ? 10
                     : *end == 'M' || *end == 'm' ? 20
                     : *end == 'G' || *end == 'g' ? 30
                                                  : 0;
    if (shift)
        end++;
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > (UINT64_MAX >> shift))
        return ia_error_set(IA_EINVAL, "%s: '%s' is not a positive size (like 8388608 or 8M)", flag,
                            s);
    *out = (uint64_t)v << shift;
    return IA_OK;
}

static ia_status open_s3(const char *endpoint, const char *region, ia_s3_client **out) {
    ia_s3_env env;
    ia_s3_config cfg;
    ia_status st = ia_s3_config_from_env(&env, &cfg);
    if (st)
        return st;
    if (endpoint)
        cfg.endpoint = endpoint;
    if (region)
        cfg.region = region;
    st = ia_s3_client_create(&cfg, out);
    ia_s3_env_free(&env);
    return st;
}

int cmd_repo_mirror(int argc, char **argv) {
    static const struct option options[] = {
        {"cid", required_argument, NULL, O_CID},
        {"pull", no_argument, NULL, O_PULL},
        {"no-pin", no_argument, NULL, O_NOPIN},
        {"repo", required_argument, NULL, O_REPO},
        {"endpoint-url", required_argument, NULL, O_ENDPOINT},
        {"region", required_argument, NULL, O_REGION},
        {"multipart-threshold", required_argument, NULL, O_THRESHOLD},
        {"part-size", required_argument, NULL, O_PART},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cid_arg = NULL, *repo = NULL, *endpoint = NULL, *region = NULL;
    bool pull_mode = false, pin = true, json = false;
    mirror m;
    memset(&m, 0, sizeof m);
    ia_status st = IA_OK;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case O_CID:
            cid_arg = optarg;
            break;
        case O_PULL:
            pull_mode = true;
            break;
        case O_NOPIN:
            pin = false;
            break;
        case O_REPO:
            repo = optarg;
            break;
        case O_ENDPOINT:
            endpoint = optarg;
            break;
        case O_REGION:
            region = optarg;
            break;
        case O_THRESHOLD:
        case O_PART:
            st = parse_size(c == O_PART ? "--part-size" : "--multipart-threshold", optarg,
                            c == O_PART ? &m.put.part_size : &m.put.multipart_threshold);
            if (st)
                return cli_fail("repo mirror", st);
            break;
        case O_JSON:
            json = true;
            break;
        case 'h':
            fputs(mirror_usage, stdout);
            return 0;
        default:
            return cli_usage_error("repo mirror", "bad option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("repo mirror", "expected one s3://BUCKET[/PREFIX]");
    if (pull_mode && !cid_arg)
        return cli_usage_error("repo mirror", "--pull needs --cid CID");
    ia_cid root;
    if (cid_arg && (st = cli_parse_cid(cid_arg, &root)))
        return cli_fail("repo mirror", st);
    char *bucket = NULL, *prefix = NULL;
    int rc = 1;
    if ((st = ia_s3_url_parse(argv[optind], &bucket, &prefix)))
        goto done;
    size_t plen = strlen(prefix);
    while (plen && prefix[plen - 1] == '/')
        prefix[--plen] = 0;
    m.bucket = bucket;
    if (!(m.prefix = malloc(plen + 2))) {
        st = IA_ENOMEM;
        goto done;
    }
    snprintf(m.prefix, plen + 2, "%s%s", prefix, plen ? "/" : "");
    if ((st = cli_repo_open(repo, &m.bs)) || (st = open_s3(endpoint, region, &m.s3)))
        goto done;
    if (pull_mode) {
        st = pull(&m, &root);
        if (st == IA_OK && pin)
            st = ia_pin_add(m.bs, &root, IA_PIN_RECURSIVE);
    } else {
        st = push(&m, cid_arg ? &root : NULL);
    }
    /* the summary, also after a failure: it says how far it got */
    if (json)
        printf("{\"direction\": \"%s\", \"bucket\": \"%s\", \"prefix\": \"%s\", \"blocks\": %llu, "
               "\"bytes\": %llu, \"skipped\": %llu, \"multipart\": %llu, \"ok\": %s}\n",
               pull_mode ? "pull" : "push", bucket, m.prefix, (unsigned long long)m.blocks,
               (unsigned long long)m.bytes, (unsigned long long)m.skipped,
               (unsigned long long)m.multipart, st ? "false" : "true");
    else
        printf("%s %llu blocks (%llu bytes) %s s3://%s/%s; %llu %s%s\n",
               pull_mode ? "pulled" : "mirrored", (unsigned long long)m.blocks,
               (unsigned long long)m.bytes, pull_mode ? "from" : "to", bucket, m.prefix,
               (unsigned long long)m.skipped,
               pull_mode ? "already in the store" : "already in the bucket",
               pull_mode && pin && st == IA_OK ? "; pinned" : "");
    if (st == IA_OK)
        rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (st)
        rc = cli_fail("repo mirror", st);
    for (size_t i = 0; i < m.n_keys; i++)
        free(m.keys[i]);
    free(m.keys);
    free(m.sizes);
    free(m.todo);
    free(m.prefix);
    ia_s3_client_destroy(m.s3);
    ia_blockstore_close(m.bs);
    free(bucket);
    free(prefix);
    return rc;
}
