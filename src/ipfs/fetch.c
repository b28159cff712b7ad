/*
 * The multi-peer fetch client: copies a DAG into the local store from one or
 * more trustless HTTP gateways at once (`ipfs-accelerate get --from`).
 *
 * Any gateway that follows the trustless gateway spec is a peer: a block is
 * one `GET {peer}/ipfs/{cid}?format=raw` with `Accept:
 * application/vnd.ipld.raw`, and the answer is the block's bytes, which we
 * hash before anything else looks at them (ia_blockstore_put verifies, and
 * a mismatch is the peer's fault, so the peer is dropped on the spot).
 *
 * A dag-pb node whose link gives a subtree of 2-64 MiB (Tsize) is asked for
 * whole instead, `?format=car&dag-scope=all`: one request brings hundreds of
 * blocks, which the write callback parses out of the CAR as they arrive,
 * verifies and stores (only a block cut at the end of curl's buffer is
 * copied). A CAR may only hold blocks linked from blocks already verified;
 * each block's links join the stream's list of blocks it still owes, and
 * what a stream did not bring (it broke off, brought a corrupt block, or
 * left something out) goes back to the queue, to be asked block by block.
 * A peer whose CAR is unusable (HTTP 400/406/501, not a CARv1, blocks from
 * elsewhere) is asked block by block from then on.
 *
 * The walk is breadth first from the root: a block that arrives is stored,
 * then its links (ia_block_links) join the back of the queue, so memory is
 * the queue of CIDs still wanted plus one buffer per request in flight.
 * Blocks already in the store are not requested again (resume): dag-pb nodes
 * among them are read back to find their children, raw leaves only checked.
 *
 * Scheduling is one libcurl multi handle driving up to max_inflight requests
 * per peer. Each peer keeps an estimate of its service time per block (an
 * exponential average of request time divided by the requests it had in
 * flight); the next block goes to the peer whose queue would finish it
 * soonest, (inflight + 1) * service time, and waits for a busy fast peer
 * rather than going to an idle slow one. Peers not measured yet cost
 * nothing, so each gets tried. A failed block goes back to the front of the
 * queue and prefers peers it has not failed on; a peer that answers 404/410
 * is never asked for that block again. A peer is dropped when it serves a
 * block that does not match its CID or a body past the block size limit,
 * stalls past the stall timeout, or fails max_failures requests in a row.
 * When no live peer may still have a block the fetch fails naming the block
 * and the peers asked.
 *
 * ia_fetch_get (get --from) runs the same walk but sends each verified
 * block's bytes straight to the output instead of through the store and an
 * export: every block has placements (a byte range of an output file, from
 * its parent's blocksizes; or a directory entry, whose type its own block
 * tells), kept beside the set of blocks seen. A leaf is pwritten at its
 * offsets as soon as it is verified; on a second CPU a verifier thread hashes
 * and writes CAR leaves while the main thread goes on reading (at most
 * VQUEUE_MAX wait for it; past that the main thread verifies the next one
 * itself, so both cores hash). A finished job keeps only the leaf's framing
 * until the main thread collects it. A block that occurs
 * twice is fetched once: a leaf is copied into its other places at the end,
 * a repeated node is asked for again for the new place alone. The output is
 * built under OUT.get-XXXXXX and renamed once complete. The store keeps the
 * DAG without a second copy: leaves as references into the output (pending
 * until the rename, so never served half-written), other nodes as blocks.
 */
#define _GNU_SOURCE /* renameat2 */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FETCH_MAX_PEERS 64
#define DEFAULT_MAX_BLOCK ((size_t)2 << 20) /* Kubo's block size limit */

ia_fetch_options ia_fetch_options_default(void) {
    ia_fetch_options o = {
        .max_inflight = 8,
        .max_failures = 3,
        .connect_timeout_s = 10,
        .stall_timeout_s = 20,
        .request_timeout_s = 300,
        .max_block_size = DEFAULT_MAX_BLOCK,
    };
    return o;
}

/* ---- small containers --------------------------------------------------------- */

typedef struct task {
    ia_cid cid;
    uint64_t tried;   /* peers that failed this block (bit per peer) */
    uint64_t missing; /* peers that said they do not have it */
    uint64_t tsize;   /* the parent link's Tsize (size of the subtree) */
    bool has_tsize;
    int attempts;
    bool checked;    /* looked for in the local store already */
    uint32_t place1; /* get: 1 + the one placement to fill (a block seen before); 0: all */
    bool redo;       /* get: the verifier found it corrupt: fetch it although marked SLOT_GOT */
} task;

/* A ring of tasks: new blocks go to the back, retries to the front. */
typedef struct task_queue {
    task *items;
    size_t head, n, cap;
} task_queue;

static ia_status queue_grow(task_queue *q) {
    size_t cap = q->cap ? q->cap * 2 : 256;
    task *items = ia_malloc_array(cap, sizeof *items);
    if (!items)
        return IA_ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items;
    q->head = 0;
    q->cap = cap;
    return IA_OK;
}

static ia_status queue_push_back(task_queue *q, const task *t) {
    ia_status st;
    if (q->n == q->cap && (st = queue_grow(q)))
        return st;
    q->items[(q->head + q->n++) % q->cap] = *t;
    return IA_OK;
}

static ia_status queue_push_front(task_queue *q, const task *t) {
    ia_status st;
    if (q->n == q->cap && (st = queue_grow(q)))
        return st;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->items[q->head] = *t;
    q->n++;
    return IA_OK;
}

static task queue_pop(task_queue *q) {
    task t = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return t;
}

/* Multihashes already queued or stored: a DAG may link one block many times
 * (a file of zeros is one leaf repeated), and each is fetched once. Open
 * addressing over the digest, which is already uniform for sha2-256. */
/* The blocks of the DAG seen so far, as an open-addressing hash table keyed
 * by multihash. A key is 32 bytes whatever the CID: a SHA-256 digest as it
 * is, any other multihash hashed down to 32 bytes with SHA-256 (a collision
 * would need a SHA-256 preimage), so a 4 GiB file of 256 KiB blocks costs
 * about 0.8 MB of table, not one whole ia_cid per block. */
typedef struct cid_key {
    uint8_t b[32];
} cid_key;

typedef struct cid_set {
    cid_key *keys;
    int32_t *head;  /* get: the block's placements (fetcher.places), -1: none */
    uint8_t *flags; /* SLOT_USED, and for get SLOT_DONE, SLOT_LEAF; SLOT_GOT */
    size_t n, cap;
} cid_set;

#define SLOT_DONE 1 /* its bytes went to its placements */
#define SLOT_LEAF 2 /* ... and it has no links: copies come from head's place */
#define SLOT_GOT 4  /* this fetch has it (stored, or written and kept) */
#define SLOT_USED 0x80

static void cid_key_of(const ia_cid *c, cid_key *k) {
    if (c->mh_code == IA_MH_SHA2_256 && c->digest_len == sizeof k->b) {
        memcpy(k->b, c->digest, sizeof k->b);
        return;
    }
    uint8_t buf[2 * IA_VARINT_MAX_BYTES + IA_MH_MAX_DIGEST];
    size_t n = ia_varint_encode(c->mh_code, buf);
    n += ia_varint_encode(c->digest_len, buf + n);
    memcpy(buf + n, c->digest, c->digest_len);
    ia_sha256(buf, n + c->digest_len, k->b);
}

static size_t key_home(const cid_key *k, size_t cap) {
    uint64_t h;
    memcpy(&h, k->b, sizeof h); /* already uniformly spread */
    return (size_t)h & (cap - 1);
}

/* The slot holding key k, or SIZE_MAX. */
static size_t set_find_key(const cid_set *s, const cid_key *k) {
    if (s->cap == 0)
        return SIZE_MAX;
    for (size_t j = key_home(k, s->cap); s->flags[j] & SLOT_USED; j = (j + 1) & (s->cap - 1))
        if (memcmp(s->keys[j].b, k->b, sizeof k->b) == 0)
            return j;
    return SIZE_MAX;
}

/* The slot holding c, or SIZE_MAX. */
static size_t set_find(const cid_set *s, const ia_cid *c) {
    cid_key k;
    if (s->cap == 0)
        return SIZE_MAX;
    cid_key_of(c, &k);
    return set_find_key(s, &k);
}

static bool set_has(const cid_set *s, const ia_cid *c) { return set_find(s, c) != SIZE_MAX; }

static void set_free(cid_set *s) {
    free(s->keys);
    free(s->head);
    free(s->flags);
    memset(s, 0, sizeof *s);
}

/* Adds c (its slot in *slot, head -1 and flags SLOT_USED when new); *added
 * is false when it was there already. Slots move when the set grows. */
static ia_status set_add_at(cid_set *s, const ia_cid *c, bool *added, size_t *slot) {
    cid_key k;
    cid_key_of(c, &k);
    if ((s->n + 1) * 4 > s->cap * 3) { /* load at most 3/4 */
        cid_set bigger = {0};
        bigger.cap = s->cap ? s->cap * 2 : 1024;
        bigger.keys = ia_malloc_array(bigger.cap, sizeof *bigger.keys);
        bigger.head = ia_malloc_array(bigger.cap, sizeof *bigger.head);
        bigger.flags = ia_calloc(bigger.cap, sizeof *bigger.flags);
        if (!bigger.keys || !bigger.head || !bigger.flags) {
            set_free(&bigger);
            return IA_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!(s->flags[i] & SLOT_USED))
                continue;
            size_t j = key_home(&s->keys[i], bigger.cap);
            while (bigger.flags[j] & SLOT_USED)
                j = (j + 1) & (bigger.cap - 1);
            bigger.keys[j] = s->keys[i];
            bigger.head[j] = s->head[i];
            bigger.flags[j] = s->flags[i];
        }
        bigger.n = s->n;
        set_free(s);
        *s = bigger;
    }
    size_t j = key_home(&k, s->cap);
    for (; s->flags[j] & SLOT_USED; j = (j + 1) & (s->cap - 1)) {
        if (memcmp(s->keys[j].b, k.b, sizeof k.b) == 0) {
            *added = false;
            *slot = j;
            return IA_OK;
        }
    }
    s->keys[j] = k;
    s->head[j] = -1;
    s->flags[j] = SLOT_USED;
    s->n++;
    *added = true;
    *slot = j;
    return IA_OK;
}

static ia_status set_add(cid_set *s, const ia_cid *c, bool *added) {
    size_t slot;
    return set_add_at(s, c, added, &slot);
}

/* Whether this fetch has c already (SLOT_GOT). */
static bool got_has(const cid_set *s, const ia_cid *c) {
    size_t slot = set_find(s, c);
    return slot != SIZE_MAX && (s->flags[slot] & SLOT_GOT);
}

/* Marks c as had by this fetch (adding it to the set if it was not seen). */
static ia_status got_add(cid_set *s, const ia_cid *c) {
    size_t slot;
    bool added;
    ia_status st = set_add_at(s, c, &added, &slot);
    if (st == IA_OK)
        s->flags[slot] |= SLOT_GOT;
    return st;
}

/* ---- the fetcher --------------------------------------------------------------- */

typedef struct peer {
    char *base; /* URL without a trailing slash */
    int inflight;
    int consecutive_failures;
    double svc; /* seconds per block, 0 until measured */
    bool alive;
    bool no_car; /* refused or garbled a CAR request: blocks one by one only */
} peer;

typedef struct fetcher fetcher;
typedef struct verifier verifier;

/* Why a CAR stream was cut short by us (the write callback returned 0). */
typedef enum car_fault {
    CAR_OK,
    CAR_GARBLED, /* not a CARv1, or a block that is not part of the DAG */
    CAR_CORRUPT, /* a block that does not match its CID */
    CAR_STORE,   /* storing a verified block failed (ours, not the peer's) */
} car_fault;

typedef struct request {
    CURL *easy;
    task t;
    int peer;
    uint8_t *buf;
    size_t len, cap, limit;
    bool oversize;
    double start;
    char error[CURL_ERROR_SIZE];
    struct request *next; /* in the list of active requests */
    struct fetcher *fetcher;
    /* A CAR stream (t's whole subtree): buf holds an unparsed partial item. */
    bool car, car_header_done;
    uint64_t car_total, car_limit; /* bytes received, most accepted */
    uint64_t car_blocks, car_bytes;
    task *expect; /* blocks this stream should bring (t, then links found) */
    size_t n_expect, cap_expect;
    car_fault fault;
    ia_status fault_status;
    char fault_why[512];
} request;

/* get: where a block's bytes go. A file's blocks are RANGEs of it (offsets
 * from their parents' blocksizes); a directory's links are ENTRYs (a path,
 * whose type the child's own block tells: it becomes a RANGE covering the
 * whole new file, a DIR or a LINK), and a HAMT shard's links to its child
 * shards are SHARDs of the same directory. */
typedef enum place_kind { P_RANGE, P_ENTRY, P_SHARD, P_DIR, P_LINK } place_kind;

typedef struct place {
    uint8_t kind;
    uint32_t path;         /* ENTRY, SHARD, DIR, LINK: fetcher.paths index */
    uint32_t file;         /* RANGE: fetcher.files index */
    uint64_t offset, size; /* RANGE: file bytes [offset, offset + size) */
    int32_t next;          /* the block's next placement, -1: none */
} place;

/* A file being written (under the temporary root). */
typedef struct out_file {
    uint32_t path; /* fetcher.paths index */
    int fd;        /* -1 once closed */
    uint64_t size, written;
    char *abs; /* its final absolute path (references name it) */
} out_file;

/* A placement filled at the end by copying the bytes of a leaf written
 * elsewhere (a block that occurs twice is fetched once). */
typedef struct copy_item {
    uint32_t src, dst; /* fetcher.places indexes */
} copy_item;

struct fetcher {
    ia_blockstore *bs;
    ia_fetch_options opts;
    ia_fetch_report *report;
    peer *peers;
    size_t n_peers;
    CURLM *multi;
    struct curl_slist *headers;
    task_queue queue;
    cid_set seen;
    request *active;
    struct curl_slist *car_headers;
    CURL **idle; /* easy handles kept for reuse (their connections stay warm) */
    size_t n_idle;
    /* get (ia_fetch_get): bytes go to the output as they are verified */
    bool get;
    const char *out; /* the final path, as given */
    char *out_abs;   /* ... made absolute (for references) */
    char *tmp;       /* the temporary root, once the root block arrived */
    place *places;
    size_t n_places, cap_places;
    char **paths; /* entry paths relative to the root ("" is the root) */
    size_t n_paths, cap_paths;
    out_file *files;
    size_t n_files, cap_files;
    copy_item *copies;
    size_t n_copies, cap_copies;
    ia_bs_ref *refs; /* references not yet recorded (pending) */
    size_t n_refs;
    verifier *verifier;  /* a thread that verifies and writes leaves, or NULL */
    uint64_t n_unusable; /* blocks in the store that could not be read back */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;
static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void cid_text(const ia_cid *cid, char buf[IA_CID_MAX_STRING]) {
    if (ia_cid_format(cid, IA_BASE32, buf, IA_CID_MAX_STRING) != IA_OK)
        snprintf(buf, IA_CID_MAX_STRING, "(unprintable CID)");
}

/* The text of cid for an error message, formatted only when one is made
 * (base58 of every block would cost more than parsing it); one per message. */
static const char *cid_str(const ia_cid *cid) {
    static _Thread_local char buf[IA_CID_MAX_STRING];
    cid_text(cid, buf);
    return buf;
}

/* Records why a peer misbehaved or failed, for the report (one line each). */
static ia_status note(fetcher *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ia_status note(fetcher *f, const char *fmt, ...) {
    ia_fetch_report *r = f->report;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ia_log(IA_LOG_INFO, "fetch: %s", line);
    char **notes = ia_realloc_array(r->notes, r->n_notes + 1, sizeof *notes);
    if (!notes)
        return IA_ENOMEM;
    r->notes = notes;
    if (!(notes[r->n_notes] = ia_strdup(line)))
        return IA_ENOMEM;
    r->n_notes++;
    return IA_OK;
}

/* Checks one peer URL: http or https, a host, no query or fragment. The
 * stored base drops trailing slashes so that "{base}/ipfs/..." is right. */
static ia_status parse_peer(const char *url, char **out) {
    ia_status st = IA_OK;
    char *scheme = NULL, *host = NULL, *query = NULL, *fragment = NULL;
    CURLU *u = curl_url();
    if (!u)
        return ia_error_set(IA_ENOMEM, "out of memory parsing peer URL '%s'", url);
    if (!*url || strspn(url, " \t\r\n") || strpbrk(url, " \t\r\n,") ||
        curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        st = ia_error_set(
            IA_EINVAL, "peer '%s' is not a URL like http://HOST:PORT (a trustless gateway)", url);
        goto fail;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        st = ia_error_set(IA_EINVAL, "peer '%s': scheme '%s' is not http or https", url, scheme);
        goto fail;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK) {
        st = ia_error_set(IA_EINVAL, "peer '%s': a gateway URL takes no query or fragment", url);
        goto fail;
    }
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (!(*out = ia_strndup(url, len)))
        st = IA_ENOMEM;
fail:
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return st;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx) {
    request *r = ctx;
    size_t n = size * nmemb;
    if (n > r->limit - r->len) {
        r->oversize = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 64 * 1024;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > r->limit)
            cap = r->limit;
        uint8_t *buf = realloc(r->buf, cap);
        if (!buf)
            return 0;
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return n;
}

/* ---- get: verified bytes straight into the output ------------------------------- */

static ia_status expect_push(request *r, const task *t);

#define REF_BATCH 1024
#define OPEN_FILES_MAX 64 /* past this many files, each is closed once complete */
#define VJOB_MAX_TARGETS 4
#define VQUEUE_MAX 8
#define WRITE_LOCKS \
    16 /* striped by output file */ /* leaves handed to the verifier and not yet finished */
#define HAMT_MAX_FANOUT 4096
#define COPY_BUFFER ((size_t)1 << 20)

/* Grows an array of elem-sized items to hold need of them. */
static bool grow(void *items, size_t *cap, size_t need, size_t elem) {
    return ia_array_reserve(items, cap, need, elem, 64);
}

/* A block decoded as far as UnixFS; content borrows from the block. */
typedef struct unode {
    ia_unixfs_type type;
    const uint8_t *content;
    size_t content_len;
    ia_pb_node pb;
    ia_unixfs fs;
    bool raw;
} unode;

static void unode_free(unode *u) {
    if (!u->raw) {
        ia_pb_node_free(&u->pb);
        ia_unixfs_free(&u->fs);
    }
}

static ia_status unode_decode(const ia_cid *cid, const uint8_t *data, size_t len, unode *u) {
    ia_status st;
    memset(u, 0, sizeof *u);
    if (cid->codec == IA_CODEC_RAW) {
        u->raw = true;
        u->type = IA_UNIXFS_RAW;
        u->content = data;
        u->content_len = len;
        return IA_OK;
    }
    if (cid->codec != IA_CODEC_DAG_PB) {
        u->raw = true; /* nothing to free */
        const char *name = ia_codec_name(cid->codec);
        return ia_error_set(IA_EUNSUPPORTED, "%s: codec %s is not UnixFS (dag-pb or raw)",
                            cid_str(cid), name ? name : "unknown");
    }
    if ((st = ia_dagpb_decode(data, len, &u->pb)))
        goto fail;
    if (!u->pb.has_data) {
        st = ia_error_set(IA_EPARSE, "%s: dag-pb node has no UnixFS Data", cid_str(cid));
        goto fail;
    }
    if ((st = ia_unixfs_decode(u->pb.data, u->pb.data_len, &u->fs)))
        goto fail;
    u->type = u->fs.type;
    u->content = u->fs.data;
    u->content_len = u->fs.data_len;
    return IA_OK;
fail:
    ia_error_prefix("%s (verified against its CID)", cid_str(cid));
    ia_pb_node_free(&u->pb);
    u->raw = true;
    return st;
}

static const char *type_name(ia_unixfs_type t) {
    static const char *names[] = {"raw", "directory", "file", "metadata", "symlink", "HAMT shard"};
    return (unsigned)t < 6 ? names[t] : "unknown";
}

/* File bytes under a file node: its own data plus its children's. */
static ia_status unode_file_size(const unode *u, const ia_cid *cid, uint64_t *out) {
    uint64_t total = u->content_len;
    if (!u->raw && u->fs.n_blocksizes != u->pb.n_links)
        return ia_error_set(IA_EPARSE, "%s: %zu links but %zu blocksizes", cid_str(cid),
                            u->pb.n_links, u->fs.n_blocksizes);
    for (size_t i = 0; !u->raw && i < u->fs.n_blocksizes; i++)
        if (__builtin_add_overflow(total, u->fs.blocksizes[i], &total))
            return ia_error_set(IA_EPARSE, "%s: blocksizes overflow", cid_str(cid));
    *out = total;
    return IA_OK;
}

/* The path of entry `path` under the temporary root, or its final absolute
 * path (malloc'd). */
static char *entry_path(const fetcher *f, uint32_t path, bool final) {
    const char *root = final ? f->out_abs : f->tmp, *rel = f->paths[path];
    return *rel ? ia_path_join(root, rel) : ia_strdup(root);
}

static ia_status new_path(fetcher *f, uint32_t dir, const char *name, size_t len, uint32_t *out) {
    const char *parent = f->paths[dir];
    if (len == 0 || (len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.') || memchr(name, '/', len) ||
        memchr(name, '\0', len))
        return ia_error_set(IA_EPARSE,
                            "%s/%s: refusing the entry name '%.*s' (not one path "
                            "component)",
                            f->out, parent, (int)len, name);
    if (!grow(&f->paths, &f->cap_paths, f->n_paths + 1, sizeof *f->paths))
        return IA_ENOMEM;
    size_t plen = strlen(parent);
    char *p = ia_malloc(plen + len + 2);
    if (!p)
        return IA_ENOMEM;
    if (plen)
        memcpy(p, parent, plen);
    p[plen] = '/';
    memcpy(p + plen + (plen > 0), name, len);
    p[plen + (plen > 0) + len] = '\0';
    f->paths[f->n_paths] = p;
    *out = (uint32_t)f->n_paths++;
    return IA_OK;
}

/* Records a new placement of cid: a block not seen yet becomes a task (for
 * the stream, when it comes from one); one seen but not yet arrived gets one
 * more placement; a leaf already written is copied at the end; a node already
 * expanded is asked for again for this placement alone (rare: a repeated
 * subtree). */
static ia_status add_place(fetcher *f, const ia_cid *cid, const place *p, const ia_pb_link *link,
                           request *stream) {
    bool added;
    size_t slot;
    ia_status st;
    if (!grow(&f->places, &f->cap_places, f->n_places + 1, sizeof *f->places))
        return IA_ENOMEM;
    uint32_t pi = (uint32_t)f->n_places++;
    f->places[pi] = *p;
    f->places[pi].next = -1;
    if ((st = set_add_at(&f->seen, cid, &added, &slot)))
        return st;
    task t = {.cid = *cid};
    if (link) {
        t.tsize = link->tsize;
        t.has_tsize = link->has_tsize;
    }
    if (added) {
        f->seen.head[slot] = (int32_t)pi;
        return stream ? expect_push(stream, &t) : queue_push_back(&f->queue, &t);
    }
    uint8_t flags = f->seen.flags[slot];
    if (!(flags & SLOT_DONE)) {
        f->places[pi].next = f->seen.head[slot];
        f->seen.head[slot] = (int32_t)pi;
        return IA_OK;
    }
    if (flags & SLOT_LEAF) {
        if (!grow(&f->copies, &f->cap_copies, f->n_copies + 1, sizeof *f->copies))
            return IA_ENOMEM;
        f->copies[f->n_copies++] = (copy_item){(uint32_t)f->seen.head[slot], pi};
        return IA_OK;
    }
    t.place1 = pi + 1;
    return queue_push_back(&f->queue, &t);
}

/* Opens an output file again (a directory's files are closed once complete). */
static ia_status out_open(fetcher *f, uint32_t file) {
    out_file *o = &f->files[file];
    if (o->fd >= 0)
        return IA_OK;
    char *path = entry_path(f, o->path, false);
    if (!path)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    if ((o->fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        st = ia_error_set(IA_EIO, "%s: cannot open: %s", path, strerror(errno));
    free(path);
    return st;
}

static void write_lock(fetcher *f, uint32_t file, bool take);

static ia_status out_write(fetcher *f, uint32_t file, uint64_t offset, const uint8_t *data,
                           size_t len) {
    out_file *o = &f->files[file];
    ia_status st = out_open(f, file);
    if (st)
        return st;
    write_lock(f, file, true);
    while (len > 0) {
        ssize_t n = pwrite(o->fd, data, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            write_lock(f, file, false);
            return ia_error_set(IA_EIO, "%s/%s: cannot write: %s%s", f->out, f->paths[o->path],
                                strerror(e), e == ENOSPC ? " (the disk is full)" : "");
        }
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
        o->written += (uint64_t)n;
    }
    write_lock(f, file, false);
    /* Many files (a directory): close each once complete. */
    if (o->written >= o->size && f->n_files > OPEN_FILES_MAX) {
        close(o->fd);
        o->fd = -1;
    }
    return IA_OK;
}

/* Creates the temporary root beside the output: a file (its fd in *fd), a
 * folder or a symlink to target. */
static ia_status make_root(fetcher *f, ia_unixfs_type type, const char *target, int *fd) {
    size_t n = strlen(f->out) + 32;
    if (!(f->tmp = ia_malloc(n)))
        return IA_ENOMEM;
    for (unsigned tries = 0;; tries++) {
        snprintf(f->tmp, n, "%s.get-XXXXXX", f->out);
        int rc = 0;
        if (type == IA_UNIXFS_DIRECTORY || type == IA_UNIXFS_HAMT_SHARD) {
            rc = mkdtemp(f->tmp) ? 0 : -1;
        } else if (type == IA_UNIXFS_SYMLINK) {
            snprintf(f->tmp, n, "%s.get-%ld-%u", f->out, (long)getpid(), tries);
            rc = symlink(target, f->tmp);
        } else {
            rc = *fd = mkstemp(f->tmp);
            if (rc >= 0)
                fchmod(*fd, 0644);
        }
        if (rc >= 0)
            return IA_OK;
        if (errno != EEXIST || tries > 100) {
            ia_status st = ia_error_set(IA_EIO, "%s: cannot create: %s", f->tmp, strerror(errno));
            free(f->tmp);
            f->tmp = NULL;
            return st;
        }
    }
}

static ia_status fill_range(fetcher *f, const ia_cid *cid, const unode *u, uint32_t pi,
                            request *stream);

/* The links of a directory (or of a HAMT shard of it) become its entries. */
static ia_status dir_links(fetcher *f, const unode *u, const ia_cid *cid, uint32_t dir,
                           request *stream) {
    ia_status st = IA_OK;
    size_t pad = 0;
    bool hamt = u->type == IA_UNIXFS_HAMT_SHARD;
    if (hamt) {
        uint64_t fo = u->fs.fanout;
        if (!u->fs.has_hash_type || u->fs.hash_type != IA_HAMT_MURMUR3)
            return ia_error_set(IA_EUNSUPPORTED, "%s: HAMT hash type 0x%llx is not murmur3",
                                cid_str(cid), (unsigned long long)u->fs.hash_type);
        if (!u->fs.has_fanout || fo < 2 || fo > HAMT_MAX_FANOUT || (fo & (fo - 1)))
            return ia_error_set(IA_EPARSE, "%s: HAMT fanout %llu is not a power of two up to %d",
                                cid_str(cid), (unsigned long long)fo, HAMT_MAX_FANOUT);
        for (uint64_t v = fo - 1; v; v >>= 4)
            pad++;
    }
    for (size_t i = 0; i < u->pb.n_links && st == IA_OK; i++) {
        const ia_pb_link *l = &u->pb.links[i];
        place p = {.kind = P_SHARD, .path = dir};
        if (hamt && l->name_len < pad)
            return ia_error_set(IA_EPARSE, "%s: HAMT link %zu has a name shorter than its slot",
                                cid_str(cid), i);
        if (!hamt || l->name_len > pad) {
            p.kind = P_ENTRY;
            if ((st = new_path(f, dir, l->name ? l->name + pad : "", l->name_len - pad, &p.path)))
                return st;
        }
        st = add_place(f, &l->cid, &p, l, stream);
    }
    return st;
}

/* A directory entry's block tells what it is: a file is created (sized
 * already) and filled as a RANGE of it, a folder made, a symlink written. */
static ia_status fill_entry(fetcher *f, const ia_cid *cid, const unode *u, uint32_t pi,
                            request *stream) {
    ia_status st = IA_OK;
    uint32_t path = f->places[pi].path;
    char *where = NULL, *target = NULL;
    int fd = -1;
    uint64_t size = 0;
    bool root = path == 0;
    switch (u->type) {
    case IA_UNIXFS_FILE:
    case IA_UNIXFS_RAW:
        if ((st = unode_file_size(u, cid, &size)))
            return st;
        if (!grow(&f->files, &f->cap_files, f->n_files + 1, sizeof *f->files))
            return IA_ENOMEM;
        if (root) {
            if ((st = make_root(f, u->type, NULL, &fd)))
                return st;
        } else {
            if (!(where = entry_path(f, path, false)))
                return IA_ENOMEM;
            if ((fd = open(where, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
                st = ia_error_set(IA_EIO, "%s: cannot create: %s", where, strerror(errno));
                goto done;
            }
        }
        if (size > 0 && ftruncate(fd, (off_t)size) != 0) {
            st = ia_error_set(IA_EIO, "%s/%s: cannot make a %llu-byte file: %s", f->out,
                              f->paths[path], (unsigned long long)size, strerror(errno));
            close(fd);
            goto done;
        }
        f->files[f->n_files] = (out_file){.path = path, .fd = fd, .size = size};
        if (f->bs && !(f->files[f->n_files].abs = entry_path(f, path, true))) {
            close(fd);
            st = IA_ENOMEM;
            goto done;
        }
        f->places[pi] = (place){P_RANGE, 0, (uint32_t)f->n_files++, 0, size, f->places[pi].next};
        st = fill_range(f, cid, u, pi, stream);
        break;
    case IA_UNIXFS_DIRECTORY:
    case IA_UNIXFS_HAMT_SHARD:
        if (root) {
            st = make_root(f, u->type, NULL, NULL);
        } else if (!(where = entry_path(f, path, false))) {
            st = IA_ENOMEM;
        } else if (mkdir(where, 0755) != 0) {
            st = ia_error_set(IA_EIO, "%s: cannot create folder: %s", where, strerror(errno));
        }
        f->places[pi].kind = P_DIR;
        if (st == IA_OK)
            st = dir_links(f, u, cid, path, stream);
        break;
    case IA_UNIXFS_SYMLINK:
        if (!(target = ia_strndup((const char *)u->content, u->content_len)))
            return IA_ENOMEM;
        if (root) {
            st = make_root(f, u->type, target, NULL);
        } else if (!(where = entry_path(f, path, false))) {
            st = IA_ENOMEM;
        } else if (symlink(target, where) != 0) {
            st = ia_error_set(IA_EIO, "%s: cannot create symlink: %s", where, strerror(errno));
        }
        f->places[pi].kind = P_LINK;
        break;
    default:
        st = ia_error_set(IA_EUNSUPPORTED, "%s: cannot write a UnixFS %s to disk", cid_str(cid),
                          type_name(u->type));
    }
done:
    free(where);
    free(target);
    return st;
}

/* A file's block at its RANGE: its own data written at the offset, its
 * children placed after it by their blocksizes. */
static ia_status fill_range(fetcher *f, const ia_cid *cid, const unode *u, uint32_t pi,
                            request *stream) {
    place p = f->places[pi];
    uint64_t size;
    ia_status st;
    if (u->type != IA_UNIXFS_FILE && u->type != IA_UNIXFS_RAW)
        return ia_error_set(IA_EPARSE, "%s: a %s inside a file's DAG", cid_str(cid),
                            type_name(u->type));
    if ((st = unode_file_size(u, cid, &size)))
        return st;
    if (size != p.size)
        return ia_error_set(IA_EPARSE, "%s: holds %llu bytes but its parent says %llu",
                            cid_str(cid), (unsigned long long)size, (unsigned long long)p.size);
    if (u->content_len && (st = out_write(f, p.file, p.offset, u->content, u->content_len)))
        return st;
    uint64_t off = p.offset + u->content_len;
    for (size_t i = 0; !u->raw && i < u->pb.n_links; i++) {
        place child = {.kind = P_RANGE, .file = p.file, .offset = off, .size = u->fs.blocksizes[i]};
        if ((st = add_place(f, &u->pb.links[i].cid, &child, &u->pb.links[i], stream)))
            return st;
        off += child.size;
    }
    return IA_OK;
}

static ia_status flush_refs(fetcher *f) {
    ia_status st = ia_bs_put_refs_pending(f->bs, f->refs, f->n_refs);
    f->n_refs = 0;
    return st;
}

/* Keeps a fetched block in the store: a leaf as a reference into the file
 * it was written to (its dag-pb framing, if any, as the reference's prefix
 * and suffix), anything else as a block. */
/* Keeps a leaf written at place p as a reference: its content_len bytes
 * there, framed by the n_prefix bytes of wrap before and n_suffix after. */
static ia_status keep_ref(fetcher *f, const ia_cid *cid, const place *p, size_t content_len,
                          const uint8_t *wrap, size_t n_prefix, size_t n_suffix) {
    if (!f->refs && !(f->refs = ia_malloc_array(REF_BATCH, sizeof *f->refs)))
        return IA_ENOMEM;
    ia_bs_ref *r = &f->refs[f->n_refs++];
    r->cid = *cid;
    r->path = f->files[p->file].abs;
    r->offset = p->offset;
    r->len = content_len;
    r->n_prefix = (uint8_t)n_prefix;
    r->n_suffix = (uint8_t)n_suffix;
    memcpy(r->prefix, wrap, n_prefix);
    memcpy(r->suffix, wrap + n_prefix, n_suffix);
    return f->n_refs == REF_BATCH ? flush_refs(f) : IA_OK;
}

/* Whether a leaf with this framing, written at p, can be kept as a
 * reference (otherwise it is stored as a block). */
static bool ref_fits(const place *p, const ia_cid *cid, size_t content_len, size_t n_prefix,
                     size_t n_suffix) {
    return p && p->kind == P_RANGE && content_len > 0 && n_prefix <= IA_BS_WRAP_MAX &&
           n_suffix <= IA_BS_WRAP_MAX && cid->mh_code != IA_MH_IDENTITY;
}

static ia_status keep_block(fetcher *f, const ia_cid *cid, const uint8_t *data, size_t len,
                            const unode *u, int32_t written_at) {
    const place *p = written_at >= 0 ? &f->places[written_at] : NULL;
    bool leaf = u->raw || u->pb.n_links == 0;
    size_t n_prefix = u->content_len ? (size_t)(u->content - data) : 0;
    size_t n_suffix = u->content_len ? len - n_prefix - u->content_len : 0;
    if (!leaf || !ref_fits(p, cid, u->content_len, n_prefix, n_suffix))
        return ia_blockstore_put(f->bs, cid, len ? (const void *)data : "", len);
    uint8_t wrap[2 * IA_BS_WRAP_MAX];
    memcpy(wrap, data, n_prefix);
    memcpy(wrap + n_prefix, u->content + u->content_len, n_suffix);
    return keep_ref(f, cid, p, u->content_len, wrap, n_prefix, n_suffix);
}

/* A verified block in a get: its bytes go to each of its placements (or to
 * the one its task names), its links get theirs, and a fetched block is kept
 * in the store (stored: it came from there). */
static ia_status get_block(fetcher *f, const ia_cid *cid, const uint8_t *data, size_t len,
                           bool stored, uint32_t place1, request *stream) {
    unode u;
    ia_status st = unode_decode(cid, data, len, &u);
    if (st)
        return st;
    size_t slot = set_find(&f->seen, cid);
    int32_t pi = place1 ? (int32_t)place1 - 1 : (slot != SIZE_MAX ? f->seen.head[slot] : -1);
    int32_t written_at = -1;
    if (pi < 0) {
        st = ia_error_set(IA_EINVAL, "%s arrived but has no place in the output", cid_str(cid));
        goto done;
    }
    while (pi >= 0 && st == IA_OK) {
        int32_t next = place1 ? -1 : f->places[pi].next;
        uint8_t kind = f->places[pi].kind;
        if (kind == P_RANGE)
            st = fill_range(f, cid, &u, (uint32_t)pi, stream);
        else if (kind == P_ENTRY)
            st = fill_entry(f, cid, &u, (uint32_t)pi, stream);
        else if (kind == P_SHARD && u.type != IA_UNIXFS_HAMT_SHARD)
            st = ia_error_set(IA_EPARSE, "%s: HAMT slot link leads to a %s", cid_str(cid),
                              type_name(u.type));
        else if (kind == P_SHARD)
            st = dir_links(f, &u, cid, f->places[pi].path, stream);
        if (st == IA_OK && written_at < 0 &&
            (f->places[pi].kind == P_RANGE || f->places[pi].kind == P_LINK))
            written_at = pi;
        pi = next;
    }
    if (st || place1)
        goto done;
    slot = set_find(&f->seen, cid); /* the set may have grown */
    f->seen.flags[slot] |= SLOT_DONE;
    if (written_at >= 0 && (u.raw || u.pb.n_links == 0)) {
        f->seen.flags[slot] |= SLOT_LEAF;
        f->seen.head[slot] = written_at; /* copies come from there */
    }
    if (f->bs && !stored)
        st = keep_block(f, cid, data, len, &u, written_at);
done:
    unode_free(&u);
    return st;
}

/* Copies the bytes of place src (written) to place dst. */
static ia_status copy_place(fetcher *f, const place *src, place *dst, uint8_t *buf) {
    ia_status st = IA_OK;
    char *path = NULL;
    if (src->kind == P_LINK && dst->kind == P_ENTRY) {
        char *from = entry_path(f, src->path, false), target[PATH_MAX];
        path = entry_path(f, dst->path, false);
        ssize_t n = from ? readlink(from, target, sizeof target - 1) : -1;
        if (!from || !path)
            st = IA_ENOMEM;
        else if (n < 0 || (target[n] = '\0', symlink(target, path) != 0))
            st = ia_error_set(IA_EIO, "%s: cannot create symlink: %s", path, strerror(errno));
        free(from);
        free(path);
        return st;
    }
    if (src->kind != P_RANGE || (dst->kind != P_RANGE && dst->kind != P_ENTRY))
        return ia_error_set(IA_EPARSE,
                            "%s: one block is both a file and something else in this "
                            "DAG",
                            f->out);
    if (dst->kind == P_ENTRY) { /* a file of its own: created here, not referenced */
        if (!(path = entry_path(f, dst->path, false)))
            return IA_ENOMEM;
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = ia_error_set(IA_EIO, "%s: cannot create: %s", path, strerror(errno));
            free(path);
            return st;
        }
        free(path);
        if (!grow(&f->files, &f->cap_files, f->n_files + 1, sizeof *f->files)) {
            close(fd);
            return IA_ENOMEM;
        }
        f->files[f->n_files] = (out_file){.path = dst->path, .fd = fd, .size = src->size};
        *dst = (place){P_RANGE, 0, (uint32_t)f->n_files++, 0, src->size, -1};
    }
    if (dst->size != src->size)
        return ia_error_set(IA_EPARSE, "%s/%s: a block of %llu bytes placed where %llu belong",
                            f->out, f->paths[f->files[dst->file].path],
                            (unsigned long long)src->size, (unsigned long long)dst->size);
    for (uint64_t done = 0; done < src->size;) {
        size_t n = src->size - done < COPY_BUFFER ? (size_t)(src->size - done) : COPY_BUFFER;
        const out_file *s = &f->files[src->file];
        if ((st = out_open(f, src->file)))
            return st;
        ssize_t got = pread(s->fd, buf, n, (off_t)(src->offset + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return ia_error_set(IA_EIO, "%s/%s: cannot read back: %s", f->out, f->paths[s->path],
                                got < 0 ? strerror(errno) : "file is shorter");
        if ((st = out_write(f, dst->file, dst->offset + done, buf, (size_t)got)))
            return st;
        done += (uint64_t)got;
    }
    return IA_OK;
}

/* Removes a temporary tree (a file, symlink or folder). */
static void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = ia_path_join(path, e->d_name);
            if (p)
                remove_tree(p);
            free(p);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* The end of a get's run: copies, then the temporary root renamed to the
 * output (never over something that appeared meanwhile), then the
 * references made valid. On failure the temporary output is removed and its
 * pending references dropped. */
static ia_status get_finish(fetcher *f, ia_status st) {
    uint8_t *buf = NULL;
    if (st == IA_OK && f->n_copies && !(buf = ia_malloc(COPY_BUFFER)))
        st = IA_ENOMEM;
    for (size_t i = 0; st == IA_OK && i < f->n_copies; i++) {
        place src = f->places[f->copies[i].src];
        st = copy_place(f, &src, &f->places[f->copies[i].dst], buf);
    }
    free(buf);
    for (size_t i = 0; i < f->n_files; i++) {
        if (f->files[i].fd >= 0 && close(f->files[i].fd) != 0 && st == IA_OK)
            st = ia_error_set(IA_EIO, "%s/%s: cannot close: %s", f->out, f->paths[f->files[i].path],
                              strerror(errno));
        f->files[i].fd = -1;
    }
    if (st == IA_OK && !f->tmp)
        st = ia_error_set(IA_EIO, "%s: nothing was written", f->out);
    if (st == IA_OK && renameat2(AT_FDCWD, f->tmp, AT_FDCWD, f->out, RENAME_NOREPLACE) != 0) {
        if (errno == EINVAL || errno == ENOSYS) { /* no RENAME_NOREPLACE here */
            struct stat sb;
            if (lstat(f->out, &sb) == 0)
                errno = EEXIST;
            else if (rename(f->tmp, f->out) == 0)
                errno = 0;
        }
        if (errno)
            st = ia_error_set(IA_EIO, "%s: cannot rename to %s: %s", f->tmp, f->out,
                              strerror(errno));
    }
    const char **abs = NULL;
    size_t n_abs = 0;
    if (f->bs && f->n_files && (abs = ia_malloc_array(f->n_files, sizeof *abs)))
        for (size_t i = 0; i < f->n_files; i++)
            if (f->files[i].abs)
                abs[n_abs++] = f->files[i].abs;
    if (st == IA_OK && f->bs) {
        if (f->n_files && !abs)
            st = IA_ENOMEM;
        if (st == IA_OK && (st = flush_refs(f)) == IA_OK)
            st = ia_bs_refs_finish(f->bs, abs, n_abs);
    }
    if (st != IA_OK) {
        ia_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ia_error_message());
        if (f->tmp)
            remove_tree(f->tmp);
        if (f->bs && abs) {
            f->n_refs = 0;
            ia_bs_refs_drop(f->bs, abs, n_abs);
        }
        ia_error_set(keep, "%s", msg);
        st = keep;
    }
    free(abs);
    return st;
}

/* ---- get: verification on a second core ------------------------------------------- */

/* A leaf of a CAR stream, copied out of curl's buffer, for the verifier
 * thread to hash and write while the main thread reads on. Only leaves whose
 * placements are all known ranges of open files go there; anything else is
 * verified inline. The main thread finishes each job (references, copies,
 * or the peer's blame when the bytes do not match). */
typedef struct vjob {
    ia_cid cid;
    uint8_t *buf;  /* owned: data's allocation (a copy, or a stream's cut-item buffer) */
    uint8_t *data; /* the block, inside buf */
    size_t len, content_off, content_len;
    uint8_t wrap[2 * IA_BS_WRAP_MAX]; /* data's framing, kept once data is freed */
    int peer;
    int32_t head; /* the block's first placement when it was handed over */
    int n_targets;
    int fd[VJOB_MAX_TARGETS];
    uint32_t file[VJOB_MAX_TARGETS]; /* fetcher.files indexes (for their write lock) */
    uint64_t off[VJOB_MAX_TARGETS];
    bool corrupt;
    ia_status st;
    char why[512];
    struct vjob *next;
} vjob;

struct verifier {
    pthread_t thread;
    pthread_mutex_t lock; /* guards the lists, n_queued and stop */
    /* Writes to one file are serialised by the kernel anyway (its inode
     * lock, where the loser spins); taking a lock of ours first makes the
     * loser sleep instead, leaving the CPU to the other work. */
    pthread_mutex_t write_locks[WRITE_LOCKS];
    pthread_cond_t wake;
    vjob *todo, *todo_tail, *done;
    size_t n_todo;   /* handed over, not yet verified */
    size_t n_queued; /* handed over, not yet collected by the main thread */
    bool stop;
    CURLM *multi; /* woken when a job is done */
};

static void write_lock(fetcher *f, uint32_t file, bool take) {
    if (!f->verifier)
        return;
    pthread_mutex_t *m = &f->verifier->write_locks[file % WRITE_LOCKS];
    if (take)
        pthread_mutex_lock(m);
    else
        pthread_mutex_unlock(m);
}

static void vjob_free(vjob *j) {
    if (j)
        free(j->buf);
    free(j);
}

static void vjob_run(verifier *v, vjob *j) {
    if (ia_cid_verify(&j->cid, j->data, j->len) != IA_OK) {
        j->corrupt = true;
        return;
    }
    for (int i = 0; i < j->n_targets && j->st == IA_OK; i++) {
        const uint8_t *p = j->data + j->content_off;
        size_t left = j->content_len;
        uint64_t off = j->off[i];
        pthread_mutex_t *m = &v->write_locks[j->file[i] % WRITE_LOCKS];
        pthread_mutex_lock(m);
        while (left > 0) {
            ssize_t n = pwrite(j->fd[i], p, left, (off_t)off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                int e = n < 0 ? errno : ENOSPC;
                j->st = IA_EIO;
                snprintf(j->why, sizeof j->why, "cannot write: %s%s", strerror(e),
                         e == ENOSPC ? " (the disk is full)" : "");
                break;
            }
            p += n;
            left -= (size_t)n;
            off += (uint64_t)n;
        }
        pthread_mutex_unlock(m);
    }
    /* Done: the bytes are in the output; only the framing is still needed
     * (for the reference), and done jobs wait for the main thread. */
    size_t n_suffix = j->len - j->content_off - j->content_len;
    if (j->st == IA_OK && j->content_off <= IA_BS_WRAP_MAX && n_suffix <= IA_BS_WRAP_MAX) {
        memcpy(j->wrap, j->data, j->content_off);
        memcpy(j->wrap + j->content_off, j->data + j->content_off + j->content_len, n_suffix);
        free(j->buf);
        j->buf = j->data = NULL;
    }
}

static void *verifier_main(void *arg) {
    verifier *v = arg;
    pthread_mutex_lock(&v->lock);
    for (;;) {
        while (!v->todo && !v->stop)
            pthread_cond_wait(&v->wake, &v->lock);
        if (v->stop)
            break;
        vjob *j = v->todo;
        v->todo = j->next;
        if (!v->todo)
            v->todo_tail = NULL;
        pthread_mutex_unlock(&v->lock);
        vjob_run(v, j);
        pthread_mutex_lock(&v->lock);
        v->n_todo--;
        j->next = v->done;
        v->done = j;
        curl_multi_wakeup(v->multi);
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

/* A verifier thread when this process may use more than one CPU. */
static void verifier_start(fetcher *f) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    verifier *v = ia_calloc(1, sizeof *v);
    if (!v)
        return;
    v->multi = f->multi;
    pthread_mutex_init(&v->lock, NULL);
    for (int i = 0; i < WRITE_LOCKS; i++)
        pthread_mutex_init(&v->write_locks[i], NULL);
    pthread_cond_init(&v->wake, NULL);
    if (pthread_create(&v->thread, NULL, verifier_main, v) != 0) {
        pthread_mutex_destroy(&v->lock);
        for (int i = 0; i < WRITE_LOCKS; i++)
            pthread_mutex_destroy(&v->write_locks[i]);
        pthread_cond_destroy(&v->wake);
        free(v);
        return;
    }
    f->verifier = v;
}

/* Stops the thread (it finishes the job in hand) and drops what is left. */
static void verifier_stop(fetcher *f) {
    verifier *v = f->verifier;
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->stop = true;
    pthread_cond_signal(&v->wake);
    pthread_mutex_unlock(&v->lock);
    pthread_join(v->thread, NULL);
    for (vjob *lists[2] = {v->todo, v->done}, **l = lists; l < lists + 2; l++) {
        while (*l) {
            vjob *next = (*l)->next;
            vjob_free(*l);
            *l = next;
        }
    }
    for (int i = 0; i < WRITE_LOCKS; i++)
        pthread_mutex_destroy(&v->write_locks[i]);
    pthread_mutex_destroy(&v->lock);
    pthread_cond_destroy(&v->wake);
    free(v);
    f->verifier = NULL;
}

/* Hands a stream's leaf to the verifier when it can take it: a leaf (by its
 * still unverified bytes; nothing is acted on before they are verified),
 * every placement a range of an open file, and fewer than VQUEUE_MAX jobs
 * waiting (otherwise the main thread verifies it inline: both cores hash). */
static bool offload(fetcher *f, request *r, const ia_cid *cid, const uint8_t *data, size_t len) {
    verifier *v = f->verifier;
    size_t slot;
    bool ok = false;
    unode u;
    if (!v || f->n_files > OPEN_FILES_MAX || (slot = set_find(&f->seen, cid)) == SIZE_MAX ||
        f->seen.head[slot] < 0)
        return false;
    pthread_mutex_lock(&v->lock);
    bool room = v->n_todo < VQUEUE_MAX;
    pthread_mutex_unlock(&v->lock);
    if (!room || unode_decode(cid, data, len, &u) != IA_OK) {
        ia_error_clear();
        return false;
    }
    vjob *j = NULL;
    if ((!u.raw && u.pb.n_links > 0) || (u.type != IA_UNIXFS_FILE && u.type != IA_UNIXFS_RAW) ||
        !(j = ia_calloc(1, sizeof *j)))
        goto done;
    for (int32_t pi = f->seen.head[slot]; pi >= 0; pi = f->places[pi].next) {
        const place *p = &f->places[pi];
        if (p->kind != P_RANGE || p->size != u.content_len || j->n_targets == VJOB_MAX_TARGETS ||
            f->files[p->file].fd < 0)
            goto done;
        j->fd[j->n_targets] = f->files[p->file].fd;
        j->file[j->n_targets] = p->file;
        j->off[j->n_targets++] = p->offset;
    }
    if (got_add(&f->seen, cid) != IA_OK)
        goto done;
    if (r->buf && data >= r->buf && data + len == r->buf + r->len) {
        /* A cut item completed in the stream's own buffer, which holds just
         * this item (nothing after it is parsed from there): the job takes
         * the buffer instead of a copy of it. */
        j->buf = r->buf;
        j->data = (uint8_t *)data;
        r->buf = NULL;
        r->cap = 0;
    } else {
        if (!(j->buf = j->data = ia_malloc(len ? len : 1)))
            goto done;
        memcpy(j->data, data, len);
    }
    j->cid = *cid;
    j->len = len;
    j->content_off = u.content_len ? (size_t)(u.content - data) : 0;
    j->content_len = u.content_len;
    j->peer = r->peer;
    j->head = f->seen.head[slot];
    pthread_mutex_lock(&v->lock);
    if (v->todo_tail)
        v->todo_tail->next = j;
    else
        v->todo = j;
    v->todo_tail = j;
    v->n_todo++;
    v->n_queued++;
    pthread_cond_signal(&v->wake);
    pthread_mutex_unlock(&v->lock);
    j = NULL;
    ok = true;
done:
    vjob_free(j);
    unode_free(&u);
    return ok;
}

static ia_status drop_peer(fetcher *f, int p, const char *why);
static ia_status retry(fetcher *f, task t, int p, bool missing);

/* A job came back: a good leaf is done (its reference kept; placements
 * found meanwhile become copies); a corrupt one drops its peer and is
 * fetched again elsewhere. */
static ia_status vjob_finish(fetcher *f, vjob *j) {
    size_t slot = set_find(&f->seen, &j->cid);
    ia_fetch_peer_stats *ps = &f->report->peers[j->peer];
    if (j->st)
        return ia_error_set(j->st, "%s: %s", f->out, j->why);
    if (j->corrupt) {
        char why[IA_CID_MAX_STRING + 64];
        ps->corrupt++;
        ps->blocks--;
        ps->bytes -= j->len;
        f->report->blocks--;
        f->report->blocks_fetched--;
        f->report->bytes_fetched -= j->len;
        snprintf(why, sizeof why, "served a block that does not match %s", cid_str(&j->cid));
        ia_status st = drop_peer(f, j->peer, why);
        task t = {.cid = j->cid, .redo = true, .attempts = 1};
        return st ? st : retry(f, t, j->peer, false);
    }
    for (int32_t pi = f->seen.head[slot]; pi >= 0 && pi != j->head; pi = f->places[pi].next) {
        if (!grow(&f->copies, &f->cap_copies, f->n_copies + 1, sizeof *f->copies))
            return IA_ENOMEM;
        f->copies[f->n_copies++] = (copy_item){(uint32_t)j->head, (uint32_t)pi};
    }
    f->seen.head[slot] = j->head;
    f->seen.flags[slot] |= SLOT_DONE | SLOT_LEAF;
    if (!f->bs)
        return IA_OK;
    size_t n_suffix = j->len - j->content_off - j->content_len;
    if (!j->data) /* the verifier kept the framing only: it fits a reference */
        return keep_ref(f, &j->cid, &f->places[j->head], j->content_len, j->wrap, j->content_off,
                        n_suffix);
    unode u = {.raw = true, .content = j->data + j->content_off, .content_len = j->content_len};
    return keep_block(f, &j->cid, j->data, j->len, &u, j->head);
}

/* Finishes the jobs the verifier has done. */
static ia_status verifier_collect(fetcher *f) {
    verifier *v = f->verifier;
    ia_status st = IA_OK;
    if (!v)
        return IA_OK;
    pthread_mutex_lock(&v->lock);
    vjob *done = v->done;
    v->done = NULL;
    pthread_mutex_unlock(&v->lock);
    while (done) {
        vjob *next = done->next;
        if (st == IA_OK)
            st = vjob_finish(f, done);
        vjob_free(done);
        pthread_mutex_lock(&v->lock);
        v->n_queued--;
        pthread_mutex_unlock(&v->lock);
        done = next;
    }
    return st;
}

static size_t verifier_pending(fetcher *f) {
    verifier *v = f->verifier;
    if (!v)
        return 0;
    pthread_mutex_lock(&v->lock);
    size_t n = v->n_queued;
    pthread_mutex_unlock(&v->lock);
    return n;
}

/* ---- CAR streams ------------------------------------------------------------------ */

static ia_status expect_push(request *r, const task *t);
static ia_status enqueue_links(fetcher *f, const ia_cid *cid, const uint8_t *data, size_t len,
                               request *stream);

/* A varint at the start of p[0..len): 1 when read, 0 when more bytes are
 * needed, -1 when it is malformed (how much of a cut item is missing). */
static int car_varint(const uint8_t *p, size_t len, uint64_t *v, size_t *used) {
    size_t i = 0;
    while (i < len && i < IA_VARINT_MAX_BYTES && (p[i] & 0x80))
        i++;
    if (i == len && i < IA_VARINT_MAX_BYTES)
        return 0;
    return ia_varint_decode(p, len, v, used) == IA_OK ? 1 : -1;
}

static size_t car_fail(request *r, car_fault fault, ia_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t car_fail(request *r, car_fault fault, ia_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->fault_why, sizeof r->fault_why, fmt, ap);
    va_end(ap);
    r->fault = fault;
    r->fault_status = st;
    return 0;
}

/* One verified section of a stream: stored unless this fetch has it already,
 * and its links become blocks the stream should bring. A block nobody asked
 * for (not linked from a block seen so far) garbles the stream. */
static bool car_block(fetcher *f, request *r, const ia_cid *cid, const uint8_t *data, size_t len) {
    char text[IA_CID_MAX_STRING];
    if (!set_has(&f->seen, cid)) {
        cid_text(cid, text);
        car_fail(r, CAR_GARBLED, IA_EPARSE, "sent block %s, which is not part of the DAG asked for",
                 text);
        return false;
    }
    if (got_has(&f->seen, cid))
        return true; /* another stream brought it, or dups=y */
    if (f->get) {    /* verified, then written where it belongs */
        ia_status st = IA_OK;
        if (offload(f, r, cid, data, len))
            goto counted;
        if (ia_cid_verify(cid, data, len) != IA_OK) {
            cid_text(cid, text);
            car_fail(r, CAR_CORRUPT, IA_EPARSE, "served a block that does not match %s", text);
            return false;
        }
        if ((st = get_block(f, cid, data, len, false, 0, r)) || (st = got_add(&f->seen, cid))) {
            car_fail(r, CAR_STORE, st, "%s", ia_error_message());
            return false;
        }
        goto counted;
    }
    if (ia_blockstore_has(f->bs, cid)) {
        /* Resume below a missing node: kept, not stored again; its own
         * links may still be missing. Not verified: the store's copy is. */
        ia_status st = got_add(&f->seen, cid);
        uint8_t *local = NULL;
        size_t local_len = 0;
        if (st == IA_OK && cid->codec != IA_CODEC_RAW &&
            (st = ia_blockstore_get(f->bs, cid, &local, &local_len)) == IA_OK)
            st = enqueue_links(f, cid, local, local_len, r);
        free(local);
        if (st) {
            car_fail(r, CAR_STORE, st, "%s", ia_error_message());
            return false;
        }
        f->report->blocks++;
        f->report->blocks_present++;
        return true;
    }
    ia_status st = ia_blockstore_put(f->bs, cid, len ? (const void *)data : "", len);
    if (st == IA_EPARSE) {
        cid_text(cid, text);
        car_fail(r, CAR_CORRUPT, st, "served a block that does not match %s", text);
        return false;
    }
    if (st == IA_OK && (st = got_add(&f->seen, cid)) == IA_OK)
        st = enqueue_links(f, cid, data, len, r);
    if (st) {
        car_fail(r, CAR_STORE, st, "%s", ia_error_message());
        return false;
    }
counted:
    r->car_blocks++;
    r->car_bytes += len;
    f->report->peers[r->peer].blocks++;
    f->report->peers[r->peer].bytes += len;
    f->report->blocks++;
    f->report->blocks_fetched++;
    f->report->bytes_fetched += len;
    return true;
}

/* Parses whole items (the header, then sections) from p[0..len), which
 * starts at byte `base` of the stream; *used is how far it got. false when
 * the stream must stop (r->fault says why). */
static bool car_parse(fetcher *f, request *r, const uint8_t *p, size_t len, uint64_t base,
                      size_t *used) {
    size_t pos = 0;
    *used = 0;
    while (pos < len) {
        size_t max = r->car_header_done ? f->opts.max_block_size + IA_CID_MAX_BYTES : 1 << 20;
        const uint8_t *item;
        size_t n, step;
        if (ia_car_stream_item(p + pos, len - pos, r->car_header_done, max, &item, &n, &step)) {
            car_fail(r, CAR_GARBLED, IA_EPARSE, "%s at byte %llu of its CAR", ia_error_message(),
                     (unsigned long long)(base + pos));
            return false;
        }
        if (step == 0)
            break; /* wait for the rest */
        if (!r->car_header_done) {
            /* The header names roots and version; every block is checked
             * against the DAG instead, so it only has to be a CBOR map. */
            r->car_header_done = true;
        } else {
            ia_cid cid;
            size_t cid_len;
            if (ia_cid_decode(item, n, &cid, &cid_len) != IA_OK) {
                car_fail(r, CAR_GARBLED, IA_EPARSE, "bad CID in its CAR: %s", ia_error_message());
                return false;
            }
            if (!car_block(f, r, &cid, item + cid_len, n - cid_len))
                return false;
        }
        pos += step;
        *used = pos;
    }
    return true;
}

static bool buf_reserve(request *r, size_t need) {
    if (need <= r->cap)
        return true;
    size_t cap = r->cap ? r->cap : 64 * 1024;
    while (cap < need)
        cap *= 2;
    uint8_t *buf = realloc(r->buf, cap);
    if (!buf)
        return false;
    r->buf = buf;
    r->cap = cap;
    return true;
}

/* The body of a CAR stream: whole items are parsed straight from curl's
 * buffer; only an item cut at the buffer's end is copied, and completed from
 * the start of the next call. Every block is verified and stored as it
 * arrives. */
static size_t on_car_body(char *data, size_t size, size_t nmemb, void *ctx) {
    request *r = ctx;
    fetcher *f = r->fetcher;
    const uint8_t *in = (const uint8_t *)data;
    size_t n = size * nmemb, off = 0, used;
    if (n > r->car_limit - r->car_total) {
        r->oversize = true;
        return 0;
    }
    uint64_t start = r->car_total; /* stream offset of in[0] */
    r->car_total += n;
    while (r->len > 0 && off < n) { /* the cut item: copy just what it lacks */
        uint64_t item;
        size_t vlen, take = n - off;
        int got = car_varint(r->buf, r->len, &item, &vlen);
        if (got > 0 && vlen + item - r->len < take) /* the buffer holds less than an item */
            take = (size_t)(vlen + item - r->len);
        else if (got == 0 && take > IA_VARINT_MAX_BYTES)
            take = IA_VARINT_MAX_BYTES;
        if (got >= 0) {
            if (!buf_reserve(r, r->len + take))
                return car_fail(r, CAR_STORE, IA_ENOMEM, "out of memory");
            memcpy(r->buf + r->len, in + off, take);
            r->len += take;
            off += take;
        }
        uint64_t base = start + off - r->len;
        if (!car_parse(f, r, r->buf, r->len, base, &used))
            return 0;
        if (!r->buf) /* the verifier took it with the one item it held */
            r->len = 0;
        else if (used > 0)
            memmove(r->buf, r->buf + used, r->len - used);
        r->len -= r->buf ? used : 0;
    }
    if (off == n)
        return n;
    if (!car_parse(f, r, in + off, n - off, start + off, &used))
        return 0;
    off += used;
    if (off < n) {
        if (!buf_reserve(r, n - off))
            return car_fail(r, CAR_STORE, IA_ENOMEM, "out of memory");
        memcpy(r->buf, in + off, n - off);
        r->len = n - off;
    }
    return n;
}

/* Subtrees at most this large (their link's Tsize) come as one CAR stream
 * (`?format=car&dag-scope=all`); larger ones block by block until their
 * children are small enough. A 1 GiB file of 256 KiB chunks is 24 streams
 * of ~44 MB, so several peers share it. */
#define CAR_SUBTREE_MAX ((uint64_t)64 << 20)

static bool wants_car(const fetcher *f, const task *t, int p) {
    return !f->peers[p].no_car && t->attempts == 0 && !t->place1 &&
           t->cid.codec == IA_CODEC_DAG_PB && t->has_tsize && t->tsize > f->opts.max_block_size &&
           t->tsize <= CAR_SUBTREE_MAX;
}

/* Starts a request for t on peer p. */
static ia_status start_request(fetcher *f, const task *t, int p) {
    char text[IA_CID_MAX_STRING], url[IA_CID_MAX_STRING + 2048];
    request *r = ia_calloc(1, sizeof *r);
    if (!r)
        return IA_ENOMEM;
    cid_text(&t->cid, text);
    r->car = wants_car(f, t, p);
    snprintf(url, sizeof url, "%s/ipfs/%s?format=%s", f->peers[p].base, text,
             r->car ? "car&dag-scope=all" : "raw");
    r->t = *t;
    r->t.attempts++;
    r->peer = p;
    r->fetcher = f;
    r->limit = f->opts.max_block_size;
    if (r->car) {
        r->car_limit = 2 * t->tsize + ((uint64_t)1 << 20); /* CAR framing is small */
        ia_status st = expect_push(r, t);
        if (st) {
            free(r);
            return st;
        }
    }
    r->start = ia_time_now();
    r->easy = f->n_idle ? f->idle[--f->n_idle] : curl_easy_init();
    if (!r->easy) {
        free(r->expect);
        free(r);
        return ia_error_set(IA_ENOMEM, "cannot create an HTTP request for %s", url);
    }
    CURL *e = r->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->car ? f->car_headers : f->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ipfs-accelerate/0.1");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, r->car ? on_car_body : on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 512L * 1024); /* blocks in few reads and copies */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)(r->car ? r->car_limit : f->opts.max_block_size));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(f->opts.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(f->opts.request_timeout_s * 1000));
    long stall = (long)(f->opts.stall_timeout_s + 0.999);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall < 1 ? 1L : stall);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        free(r->expect);
        free(r);
        return ia_error_set(IA_EIO, "cannot start the HTTP request %s", url);
    }
    r->next = f->active;
    f->active = r;
    f->peers[p].inflight++;
    f->report->peers[p].requests++;
    return IA_OK;
}

/* Detaches r from the multi handle and the active list; keeps its handle. */
static void end_request(fetcher *f, request *r) {
    for (request **pp = &f->active; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    curl_multi_remove_handle(f->multi, r->easy);
    f->peers[r->peer].inflight--;
    CURL **idle = ia_realloc_array(f->idle, f->n_idle + 1, sizeof *idle);
    if (idle) {
        f->idle = idle;
        f->idle[f->n_idle++] = r->easy;
    } else {
        curl_easy_cleanup(r->easy);
    }
    free(r->buf);
    free(r->expect);
    free(r);
}

/* Puts a block back at the front of the queue after peer p failed it. */
static ia_status retry(fetcher *f, task t, int p, bool missing) {
    t.tried |= (uint64_t)1 << p;
    if (missing)
        t.missing |= (uint64_t)1 << p;
    f->report->retries++;
    return queue_push_front(&f->queue, &t);
}

/* Puts back the blocks a CAR stream was to bring and did not (its subtree's
 * root first). blame: the stream failed on peer p, which each of them then
 * prefers to avoid, and they come block by block; missing: p said it has
 * none of it. Otherwise (p was dropped for something else, or cannot do
 * CAR) they are queued as they were. */
static ia_status requeue_missing(fetcher *f, request *r, bool blame, bool missing) {
    ia_status st = IA_OK;
    for (size_t i = r->n_expect; i-- > 0 && st == IA_OK;) {
        task t = i == 0 ? r->t : r->expect[i];
        if (got_has(&f->seen, &t.cid))
            continue;
        if (blame || missing) {
            if (t.attempts == 0)
                t.attempts = 1;
            st = retry(f, t, r->peer, missing);
        } else {
            if (i == 0)
                t.attempts--; /* not the block's fault */
            st = queue_push_front(&f->queue, &t);
        }
    }
    return st;
}

/* Drops peer p: it gets no more requests and the ones it has go back to the
 * queue (a peer caught lying is not trusted with the rest). */
static ia_status drop_peer(fetcher *f, int p, const char *why) {
    ia_status st = IA_OK;
    if (!f->peers[p].alive)
        return IA_OK;
    f->peers[p].alive = false;
    f->report->peers[p].dropped = true;
    if (!(f->report->peers[p].why = ia_strdup(why)))
        return IA_ENOMEM;
    if ((st = note(f, "peer %s %s; dropped", f->peers[p].base, why)))
        return st;
    request *r = f->active;
    while (r) {
        request *next = r->next;
        if (r->peer == p && r->car) {
            st = requeue_missing(f, r, false, false);
            end_request(f, r);
            if (st)
                return st;
        } else if (r->peer == p) {
            task t = r->t;
            t.attempts--; /* not the block's fault */
            end_request(f, r);
            if ((st = retry(f, t, p, false)))
                return st;
        }
        r = next;
    }
    return IA_OK;
}

static ia_status expect_push(request *r, const task *t) {
    if (r->n_expect == r->cap_expect) {
        size_t cap = r->cap_expect ? r->cap_expect * 2 : 64;
        task *more = ia_realloc_array(r->expect, cap, sizeof *more);
        if (!more)
            return IA_ENOMEM;
        r->expect = more;
        r->cap_expect = cap;
    }
    r->expect[r->n_expect++] = *t;
    return IA_OK;
}

/* Takes the links of a stored block that are not queued or stored yet: into
 * the queue, or (stream not NULL) into the blocks that CAR stream should
 * bring next. dag-pb links keep their Tsize, which decides whether a
 * subtree is fetched as one CAR stream. */
static ia_status enqueue_links(fetcher *f, const ia_cid *cid, const uint8_t *data, size_t len,
                               request *stream) {
    ia_cid *links = NULL;
    ia_pb_node node = {0};
    size_t n = 0;
    char text[IA_CID_MAX_STRING];
    bool pb = cid->codec == IA_CODEC_DAG_PB;
    ia_status st =
        pb ? ia_dagpb_decode(data, len, &node) : ia_block_links(cid, data, len, &links, &n);
    if (st) {
        cid_text(cid, text);
        ia_error_prefix("block %s (verified against its CID) cannot be decoded", text);
        return st;
    }
    if (pb)
        n = node.n_links;
    for (size_t i = 0; i < n && st == IA_OK; i++) {
        bool added;
        task t = {.cid = pb ? node.links[i].cid : links[i]};
        if (pb) {
            t.tsize = node.links[i].tsize;
            t.has_tsize = node.links[i].has_tsize;
        }
        if ((st = set_add(&f->seen, &t.cid, &added)) || !added)
            continue;
        st = stream ? expect_push(stream, &t) : queue_push_back(&f->queue, &t);
    }
    ia_pb_node_free(&node);
    free(links);
    return st;
}

/* A block already in the store: raw leaves need nothing more; nodes are read
 * back (verified) to find their children. A copy that no longer matches its
 * CID is removed and fetched again; *fetch says so. */
static ia_status take_local(fetcher *f, const task *t, bool *fetch) {
    *fetch = false;
    if (f->get) { /* its bytes are needed for the output */
        uint8_t *data = NULL;
        size_t len = 0;
        ia_status st = IA_ENOTFOUND;
        if (t->cid.mh_code == IA_MH_IDENTITY) { /* the CID holds the bytes */
            st = (data = ia_malloc(t->cid.digest_len + 1)) ? IA_OK : IA_ENOMEM;
            if (data)
                memcpy(data, t->cid.digest, len = t->cid.digest_len);
        } else if (f->bs && ia_blockstore_has(f->bs, &t->cid)) {
            st = ia_blockstore_get(f->bs, &t->cid, &data, &len);
        }
        if (st != IA_OK) {
            if (st != IA_ENOTFOUND && f->n_unusable++ == 0) { /* one line, not thousands */
                char text[IA_CID_MAX_STRING];
                cid_text(&t->cid, text);
                ia_log(IA_LOG_WARN,
                       "fetch: local copy of %s is unusable (%s); fetching it again (and any "
                       "other such block)",
                       text, ia_error_message());
            }
            ia_error_clear();
            *fetch = true;
            return IA_OK;
        }
        if (!t->place1) { /* a repeated subtree is one block of the DAG */
            f->report->blocks++;
            f->report->blocks_present++;
        }
        st = get_block(f, &t->cid, data, len, true, t->place1, NULL);
        free(data);
        return st ? st : got_add(&f->seen, &t->cid);
    }
    if (!ia_blockstore_has(f->bs, &t->cid)) {
        *fetch = true;
        return IA_OK;
    }
    f->report->blocks++;
    f->report->blocks_present++;
    if (t->cid.codec == IA_CODEC_RAW)
        return IA_OK;
    uint8_t *data = NULL;
    size_t len = 0;
    ia_status st = ia_blockstore_get(f->bs, &t->cid, &data, &len);
    if (st == IA_EPARSE) {
        char text[IA_CID_MAX_STRING];
        cid_text(&t->cid, text);
        ia_log(IA_LOG_WARN, "fetch: local copy of %s is damaged (%s); fetching it again", text,
               ia_error_message());
        f->report->blocks--;
        f->report->blocks_present--;
        *fetch = true;
        return ia_blockstore_remove(f->bs, &t->cid);
    }
    if (st == IA_OK)
        st = enqueue_links(f, &t->cid, data, len, NULL);
    free(data);
    return st;
}

/* The peer to ask for t: among live peers that may have it, those that have
 * not failed it first, then the soonest expected finish. *wait is true when
 * that peer is busy (better to wait for it than to use a slower idle one). */
static int pick_peer(fetcher *f, const task *t, bool *wait) {
    int best = -1;
    bool best_untried = false;
    double best_cost = 0;
    for (size_t i = 0; i < f->n_peers; i++) {
        const peer *p = &f->peers[i];
        uint64_t bit = (uint64_t)1 << i;
        if (!p->alive || (t->missing & bit))
            continue;
        bool untried = !(t->tried & bit);
        double cost = (p->inflight + 1) * p->svc;
        bool better =
            best < 0 || (untried && !best_untried) ||
            (untried == best_untried &&
             (cost < best_cost || (cost == best_cost && p->inflight < f->peers[best].inflight)));
        if (better) {
            best = (int)i;
            best_untried = untried;
            best_cost = cost;
        }
    }
    *wait = best >= 0 && f->peers[best].inflight >= f->opts.max_inflight;
    return best;
}

/* The error for a block no live peer can give. */
static ia_status no_peer_for(fetcher *f, const task *t) {
    char text[IA_CID_MAX_STRING], tried[2048] = "";
    size_t used = 0;
    bool any_alive = false;
    cid_text(&t->cid, text);
    for (size_t i = 0; i < f->n_peers; i++) {
        any_alive |= f->peers[i].alive;
        int w = snprintf(tried + used, sizeof tried - used, "%s%s%s", used ? ", " : "",
                         f->peers[i].base, f->peers[i].alive ? "" : " (dropped)");
        if (w > 0 && (size_t)w < sizeof tried - used)
            used += (size_t)w;
    }
    if (!any_alive)
        return ia_error_set(IA_EIO, "cannot fetch block %s: every peer was dropped (%s)", text,
                            tried);
    return ia_error_set(IA_ENOTFOUND, "no peer has block %s (asked %s)", text, tried);
}

/* Hands queued blocks to peers until the queue is empty or the chosen peers
 * are busy. Blocks already in the store are taken here. */
static ia_status dispatch(fetcher *f) {
    ia_status st;
    int max_attempts = 2 * (int)f->n_peers + 2;
    while (f->queue.n > 0) {
        task t = f->queue.items[f->queue.head];
        if (!t.place1 && !t.redo && got_has(&f->seen, &t.cid)) { /* a CAR stream brought it */
            queue_pop(&f->queue);
            continue;
        }
        if (!t.checked) { /* first look: maybe we have it (resume) */
            bool fetch;
            queue_pop(&f->queue);
            if ((st = take_local(f, &t, &fetch)))
                return st;
            if (!fetch)
                continue;
            t.checked = true;
            if ((st = queue_push_front(&f->queue, &t)))
                return st;
        }
        if (t.attempts >= max_attempts) {
            char text[IA_CID_MAX_STRING];
            cid_text(&t.cid, text);
            return ia_error_set(IA_EIO, "cannot fetch block %s: %d attempts failed", text,
                                t.attempts);
        }
        bool wait;
        int p = pick_peer(f, &t, &wait);
        if (p < 0)
            return no_peer_for(f, &t);
        if (wait)
            return IA_OK;
        queue_pop(&f->queue);
        if ((st = start_request(f, &t, p)))
            return st;
    }
    return IA_OK;
}

/* Peer p failed a request for `what`: dropped at once when fatal (a stall,
 * an oversized answer), else after max_failures in a row. */
static ia_status peer_failed(fetcher *f, int p, const char *what, const char *why, bool fatal) {
    peer *pe = &f->peers[p];
    pe->consecutive_failures++;
    if (fatal)
        return drop_peer(f, p, why);
    if (pe->consecutive_failures >= f->opts.max_failures) {
        char longer[1200];
        snprintf(longer, sizeof longer, "stopped responding (%d failures in a row, last: %s)",
                 pe->consecutive_failures, why);
        return drop_peer(f, p, longer);
    }
    return note(f, "peer %s failed %s: %s; retrying elsewhere", pe->base, what, why);
}

/* A CAR stream ended. Its verified blocks are stored already; what it did
 * not bring goes back to the queue. A corrupt block drops the peer; an
 * answer that is not a usable CAR (HTTP 400/406/501, garbage, blocks from
 * elsewhere) makes the peer a block-by-block peer; a transport failure
 * counts against the peer as for single blocks. */
static ia_status finish_car(fetcher *f, request *r, CURLcode rc, long code) {
    ia_status st;
    int p = r->peer;
    peer *pe = &f->peers[p];
    ia_fetch_peer_stats *ps = &f->report->peers[p];
    char text[IA_CID_MAX_STRING], why[1024];
    cid_text(&r->t.cid, text);
    if (r->fault == CAR_STORE) {
        st = ia_error_set(r->fault_status, "%s", r->fault_why);
        end_request(f, r);
        return st;
    }
    if (r->fault == CAR_CORRUPT) {
        ps->corrupt++;
        snprintf(why, sizeof why, "%s", r->fault_why);
        st = requeue_missing(f, r, true, false);
        end_request(f, r);
        return st ? st : drop_peer(f, p, why);
    }
    bool clean = rc == CURLE_OK && code == 200;
    if (clean && r->len == 0 && r->car_header_done) {
        double took = ia_time_now() - r->start;
        double sample = took / (double)(r->car_blocks ? r->car_blocks : 1) /
                        (pe->inflight > 0 ? pe->inflight : 1);
        pe->svc = pe->svc > 0 ? 0.7 * pe->svc + 0.3 * sample : sample;
        pe->consecutive_failures = 0;
        st = requeue_missing(f, r, true, false); /* what a complete stream left out */
        end_request(f, r);
        return st;
    }
    if (r->fault == CAR_GARBLED || clean ||
        (rc == CURLE_OK && (code == 400 || code == 406 || code == 501))) {
        if (r->fault == CAR_GARBLED)
            snprintf(why, sizeof why, "%s", r->fault_why);
        else if (clean)
            snprintf(why, sizeof why, "its CAR ended inside a section");
        else
            snprintf(why, sizeof why, "answered HTTP %ld", code);
        pe->no_car = true;
        st = requeue_missing(f, r, false, false);
        end_request(f, r);
        return st ? st
                  : note(f,
                         "peer %s gave no usable CAR stream for %s (%s); asking it block by block",
                         pe->base, text, why);
    }
    bool missing = rc == CURLE_OK && (code == 404 || code == 410);
    bool oversize = r->oversize || rc == CURLE_FILESIZE_EXCEEDED;
    bool stalled = rc == CURLE_OPERATION_TIMEDOUT;
    if (oversize)
        snprintf(why, sizeof why, "served more than %llu bytes for the subtree %s",
                 (unsigned long long)r->car_limit, text);
    else if (stalled)
        snprintf(why, sizeof why, "stopped responding (%s)", r->error[0] ? r->error : "timeout");
    else if (rc != CURLE_OK)
        snprintf(why, sizeof why, "%s", r->error[0] ? r->error : curl_easy_strerror(rc));
    else
        snprintf(why, sizeof why, "answered HTTP %ld for %s", code, text);
    st = requeue_missing(f, r, !missing, missing);
    end_request(f, r);
    if (st)
        return st;
    if (missing) {
        ps->not_found++;
        return IA_OK;
    }
    ps->failures++;
    return peer_failed(f, p, text, why, oversize || stalled);
}

/* A request finished: store and expand the block, or decide whose fault the
 * failure is. */
static ia_status finish(fetcher *f, request *r, CURLcode rc) {
    ia_status st = IA_OK;
    int p = r->peer;
    peer *pe = &f->peers[p];
    ia_fetch_peer_stats *ps = &f->report->peers[p];
    long code = 0;
    char text[IA_CID_MAX_STRING], why[1024];
    cid_text(&r->t.cid, text);
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    task t = r->t;
    if (r->car)
        return finish_car(f, r, rc, code);
    if (rc == CURLE_OK && code == 200) {
        const uint8_t *body = r->buf ? r->buf : (const uint8_t *)"";
        if (f->get) /* verified first: a DAG error after that is not the peer's */
            st = ia_cid_verify(&t.cid, body, r->len) ? IA_EPARSE : IA_OK;
        else
            st = ia_blockstore_put(f->bs, &t.cid, body, r->len);
        if (st == IA_EPARSE) { /* the bytes do not hash to the CID */
            ps->corrupt++;
            snprintf(why, sizeof why, "served a block that does not match %s", text);
            end_request(f, r);
            if ((st = drop_peer(f, p, why)))
                return st;
            return retry(f, t, p, false);
        }
        if (st == IA_OK && f->get)
            st = get_block(f, &t.cid, body, r->len, false, t.place1, NULL);
        if (st) {
            end_request(f, r);
            return st;
        }
        double took = ia_time_now() - r->start;
        double sample = took / (pe->inflight > 0 ? pe->inflight : 1);
        pe->svc = pe->svc > 0 ? 0.7 * pe->svc + 0.3 * sample : sample;
        pe->consecutive_failures = 0;
        ps->blocks++;
        ps->bytes += r->len;
        f->report->blocks += !t.place1;
        f->report->blocks_fetched++;
        f->report->bytes_fetched += r->len;
        if (!f->get)
            st = enqueue_links(f, &t.cid, r->buf, r->len, NULL);
        if (st == IA_OK)
            st = got_add(&f->seen, &t.cid);
        end_request(f, r);
        return st;
    }
    bool missing = rc == CURLE_OK && (code == 404 || code == 410);
    bool oversize = r->oversize || rc == CURLE_FILESIZE_EXCEEDED;
    bool stalled = rc == CURLE_OPERATION_TIMEDOUT;
    if (missing)
        ps->not_found++;
    else
        ps->failures++;
    if (oversize)
        snprintf(why, sizeof why, "served more than %zu bytes for %s (the block size limit)",
                 f->opts.max_block_size, text);
    else if (stalled)
        snprintf(why, sizeof why, "stopped responding (%s)", r->error[0] ? r->error : "timeout");
    else if (rc != CURLE_OK)
        snprintf(why, sizeof why, "%s", r->error[0] ? r->error : curl_easy_strerror(rc));
    else
        snprintf(why, sizeof why, "answered HTTP %ld for %s", code, text);
    end_request(f, r);
    if (missing)
        return retry(f, t, p, true);
    st = peer_failed(f, p, text, why, oversize || stalled);
    return st ? st : retry(f, t, p, false);
}

static ia_status run(fetcher *f) {
    ia_status st;
    for (;;) {
        if ((st = verifier_collect(f)) || (st = dispatch(f)))
            return st;
        if (!f->active && f->queue.n == 0 && verifier_pending(f) == 0)
            return IA_OK;
        int running = 0, done = 0, left;
        CURLMcode mc = curl_multi_perform(f->multi, &running);
        if (mc != CURLM_OK)
            return ia_error_set(IA_EIO, "HTTP client failed: %s", curl_multi_strerror(mc));
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(f->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            request *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            if ((st = finish(f, r, msg->data.result)))
                return st;
            done++;
        }
        /* Wait for sockets only when nothing finished: a finished request
         * frees a slot that dispatch should fill at once. */
        if (!done && (mc = curl_multi_poll(f->multi, NULL, 0, 1000, NULL)) != CURLM_OK)
            return ia_error_set(IA_EIO, "HTTP client failed: %s", curl_multi_strerror(mc));
    }
}

/* Both entry points: f has bs, get and out set. */
static ia_status fetch_main(fetcher *fp, const ia_cid *root, const char *const *peers,
                            size_t n_peers, const ia_fetch_options *opts, ia_fetch_report *report) {
    ia_status st = IA_OK;
    fetcher f = *fp;
    f.report = report;
    memset(report, 0, sizeof *report);
    double t0 = ia_time_now();
    f.opts = opts ? *opts : ia_fetch_options_default();
    ia_fetch_options d = ia_fetch_options_default();
    if (f.opts.max_inflight <= 0)
        f.opts.max_inflight = d.max_inflight;
    if (f.opts.max_failures <= 0)
        f.opts.max_failures = d.max_failures;
    if (f.opts.connect_timeout_s <= 0)
        f.opts.connect_timeout_s = d.connect_timeout_s;
    if (f.opts.stall_timeout_s <= 0)
        f.opts.stall_timeout_s = d.stall_timeout_s;
    if (f.opts.request_timeout_s <= 0)
        f.opts.request_timeout_s = d.request_timeout_s;
    if (f.opts.max_block_size == 0)
        f.opts.max_block_size = d.max_block_size;
    if (n_peers == 0 || n_peers > FETCH_MAX_PEERS)
        return ia_error_set(IA_EINVAL, "fetch needs 1 to %d peers, got %zu", FETCH_MAX_PEERS,
                            n_peers);
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return ia_error_set(IA_EIO, "cannot initialise libcurl: %s",
                            curl_easy_strerror(curl_init_result));
    if (!(f.peers = ia_calloc(n_peers, sizeof *f.peers)) ||
        !(report->peers = ia_calloc(n_peers, sizeof *report->peers))) {
        st = IA_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n_peers; i++) {
        if ((st = parse_peer(peers[i], &f.peers[i].base)))
            goto fail;
        f.peers[i].alive = true;
        f.n_peers = i + 1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(f.peers[i].base, f.peers[j].base) == 0) {
                st = ia_error_set(IA_EINVAL, "peer %s is listed twice", peers[i]);
                goto fail;
            }
        }
    }
    /* The report lists peers only once they all parsed: n_peers == 0 after
     * a failure means the URLs were the problem. */
    report->n_peers = n_peers;
    for (size_t i = 0; i < n_peers; i++) {
        if (!(report->peers[i].url = ia_strdup(f.peers[i].base))) {
            st = IA_ENOMEM;
            goto fail;
        }
    }
    if (!(f.multi = curl_multi_init()) ||
        !(f.headers = curl_slist_append(NULL, "Accept: application/vnd.ipld.raw")) ||
        !(f.car_headers = curl_slist_append(
              NULL, "Accept: application/vnd.ipld.car; version=1; order=dfs; dups=n"))) {
        st = ia_error_set(IA_ENOMEM, "cannot set up the HTTP client");
        goto fail;
    }
    curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)f.opts.max_inflight);
    bool added;
    task t = {.cid = *root};
    if (f.get) {
        place p = {.kind = P_ENTRY, .path = 0};
        if (!grow(&f.paths, &f.cap_paths, 1, sizeof *f.paths) || !(f.paths[0] = ia_strdup(""))) {
            st = IA_ENOMEM;
            goto fail;
        }
        f.n_paths = 1;
        if ((st = add_place(&f, root, &p, NULL, NULL)))
            goto fail;
    } else if ((st = set_add(&f.seen, root, &added)) || (st = queue_push_back(&f.queue, &t))) {
        goto fail;
    }
    /* Blocks are written as batches synced together; on failure the verified
     * ones are still committed, so that a later fetch resumes from them. A
     * get stores few blocks (its leaves are references), each synced on its
     * own: a batch's syncfs would also write back the whole output, which
     * nothing needs durable (references are re-hashed on every read). */
    bool batch = f.bs && !f.get;
    if (batch)
        ia_blockstore_batch_begin(f.bs);
    if (f.get)
        verifier_start(&f);
    st = run(&f);
    verifier_stop(&f); /* idle after a clean run; stopped mid-job after a failure */
    if (f.get)
        st = get_finish(&f, st);
    ia_status cst = batch ? ia_blockstore_batch_commit(f.bs) : IA_OK;
    st = st ? st : cst;
fail:
    report->seconds = ia_time_now() - t0;
    while (f.active)
        end_request(&f, f.active);
    for (size_t i = 0; i < f.n_idle; i++)
        curl_easy_cleanup(f.idle[i]);
    free(f.idle);
    if (f.multi)
        curl_multi_cleanup(f.multi);
    curl_slist_free_all(f.headers);
    curl_slist_free_all(f.car_headers);
    for (size_t i = 0; i < f.n_peers; i++)
        free(f.peers[i].base);
    free(f.peers);
    free(f.queue.items);
    set_free(&f.seen);
    for (size_t i = 0; i < f.n_files; i++) {
        if (f.files[i].fd >= 0)
            close(f.files[i].fd);
        free(f.files[i].abs);
    }
    free(f.files);
    for (size_t i = 0; i < f.n_paths; i++)
        free(f.paths[i]);
    free(f.paths);
    free(f.places);
    free(f.copies);
    free(f.refs);
    free(f.tmp);
    return st;
}

ia_status ia_fetch_dag(ia_blockstore *bs, const ia_cid *root, const char *const *peers,
                       size_t n_peers, const ia_fetch_options *opts, ia_fetch_report *report) {
    fetcher f = {.bs = bs};
    return fetch_main(&f, root, peers, n_peers, opts, report);
}

ia_status ia_fetch_get(ia_blockstore *bs, const ia_cid *root, const char *out_path,
                       const char *const *peers, size_t n_peers, const ia_fetch_options *opts,
                       ia_fetch_report *report) {
    memset(report, 0, sizeof *report);
    struct stat sb;
    size_t len = strlen(out_path);
    while (len > 1 && out_path[len - 1] == '/')
        len--;
    char *out = ia_strndup(out_path, len), *abs = NULL;
    if (!out)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    if (lstat(out, &sb) == 0) {
        st = ia_error_set(IA_EINVAL, "%s: already exists; choose another output path", out);
        goto done;
    }
    /* References name the output by its absolute path: the folder it goes
     * into, resolved, and its own name. */
    const char *slash = strrchr(out, '/');
    char *parent =
        slash ? ia_strndup(out, slash == out ? 1 : (size_t)(slash - out)) : ia_strdup(".");
    char resolved[PATH_MAX];
    if (!parent) {
        st = IA_ENOMEM;
        goto done;
    }
    if (!realpath(parent, resolved)) {
        st = ia_error_set(IA_EIO, "%s: cannot write there: %s", parent, strerror(errno));
        free(parent);
        goto done;
    }
    free(parent);
    if (!(abs = ia_path_join(resolved, slash ? slash + 1 : out))) {
        st = IA_ENOMEM;
        goto done;
    }
    fetcher f = {.bs = bs, .get = true, .out = out, .out_abs = abs};
    st = fetch_main(&f, root, peers, n_peers, opts, report);
done:
    free(out);
    free(abs);
    return st;
}

void ia_fetch_report_free(ia_fetch_report *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n_peers; i++) {
        free(r->peers[i].url);
        free(r->peers[i].why);
    }
    free(r->peers);
    for (size_t i = 0; i < r->n_notes; i++)
        free(r->notes[i]);
    free(r->notes);
    memset(r, 0, sizeof *r);
}
