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
 */
#include "ia/ipfs.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    bool checked; /* looked for in the local store already */
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
typedef struct cid_set {
    ia_cid *slots;
    bool *used;
    size_t n, cap;
} cid_set;

static uint64_t cid_hash(const ia_cid *c) {
    uint64_t h = 1469598103934665603ull ^ c->mh_code;
    for (uint32_t i = 0; i < c->digest_len; i++)
        h = (h ^ c->digest[i]) * 1099511628211ull;
    return h;
}

static bool same_multihash(const ia_cid *a, const ia_cid *b) {
    return a->mh_code == b->mh_code && a->digest_len == b->digest_len &&
           memcmp(a->digest, b->digest, a->digest_len) == 0;
}

static bool set_has(const cid_set *s, const ia_cid *c) {
    if (s->cap == 0)
        return false;
    size_t j = cid_hash(c) & (s->cap - 1);
    while (s->used[j]) {
        if (same_multihash(&s->slots[j], c))
            return true;
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

/* Adds c; *added is false when it was there already. */
static ia_status set_add(cid_set *s, const ia_cid *c, bool *added) {
    if ((s->n + 1) * 2 > s->cap) {
        cid_set bigger = {0};
        bigger.cap = s->cap ? s->cap * 2 : 1024;
        bigger.slots = ia_malloc_array(bigger.cap, sizeof *bigger.slots);
        bigger.used = ia_calloc(bigger.cap, sizeof *bigger.used);
        if (!bigger.slots || !bigger.used) {
            free(bigger.slots);
            free(bigger.used);
            return IA_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->used[i])
                continue;
            size_t j = cid_hash(&s->slots[i]) & (bigger.cap - 1);
            while (bigger.used[j])
                j = (j + 1) & (bigger.cap - 1);
            bigger.used[j] = true;
            bigger.slots[j] = s->slots[i];
        }
        bigger.n = s->n;
        free(s->slots);
        free(s->used);
        *s = bigger;
    }
    size_t j = cid_hash(c) & (s->cap - 1);
    while (s->used[j]) {
        if (same_multihash(&s->slots[j], c)) {
            *added = false;
            return IA_OK;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->used[j] = true;
    s->slots[j] = *c;
    s->n++;
    *added = true;
    return IA_OK;
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
    cid_set got; /* blocks stored by this fetch (CAR streams may overlap) */
    request *active;
    struct curl_slist *car_headers;
    CURL **idle; /* easy handles kept for reuse (their connections stay warm) */
    size_t n_idle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;
static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void cid_text(const ia_cid *cid, char buf[IA_CID_MAX_STRING]) {
    if (ia_cid_format(cid, IA_BASE32, buf, IA_CID_MAX_STRING) != IA_OK)
        snprintf(buf, IA_CID_MAX_STRING, "(unprintable CID)");
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
    bool added;
    if (!set_has(&f->seen, cid)) {
        cid_text(cid, text);
        car_fail(r, CAR_GARBLED, IA_EPARSE, "sent block %s, which is not part of the DAG asked for",
                 text);
        return false;
    }
    if (set_has(&f->got, cid))
        return true; /* another stream brought it, or dups=y */
    if (ia_blockstore_has(f->bs, cid)) {
        /* Resume below a missing node: kept, not stored again; its own
         * links may still be missing. Not verified: the store's copy is. */
        ia_status st = set_add(&f->got, cid, &added);
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
    if (st == IA_OK && (st = set_add(&f->got, cid, &added)) == IA_OK)
        st = enqueue_links(f, cid, data, len, r);
    if (st) {
        car_fail(r, CAR_STORE, st, "%s", ia_error_message());
        return false;
    }
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
        memmove(r->buf, r->buf + used, r->len - used);
        r->len -= used;
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
    return !f->peers[p].no_car && t->attempts == 0 && t->cid.codec == IA_CODEC_DAG_PB &&
           t->has_tsize && t->tsize > f->opts.max_block_size && t->tsize <= CAR_SUBTREE_MAX;
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
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024); /* a block in few reads */
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
        if (set_has(&f->got, &t.cid))
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
        if (set_has(&f->got, &t.cid)) { /* a CAR stream brought it meanwhile */
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
        st = ia_blockstore_put(f->bs, &t.cid, r->buf ? (const void *)r->buf : "", r->len);
        if (st == IA_EPARSE) { /* the bytes do not hash to the CID */
            ps->corrupt++;
            snprintf(why, sizeof why, "served a block that does not match %s", text);
            end_request(f, r);
            if ((st = drop_peer(f, p, why)))
                return st;
            return retry(f, t, p, false);
        }
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
        f->report->blocks++;
        f->report->blocks_fetched++;
        f->report->bytes_fetched += r->len;
        st = enqueue_links(f, &t.cid, r->buf, r->len, NULL);
        if (st == IA_OK)
            st = set_add(&f->got, &t.cid, &(bool){false});
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
        if ((st = dispatch(f)))
            return st;
        if (!f->active && f->queue.n == 0)
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

ia_status ia_fetch_dag(ia_blockstore *bs, const ia_cid *root, const char *const *peers,
                       size_t n_peers, const ia_fetch_options *opts, ia_fetch_report *report) {
    ia_status st = IA_OK;
    fetcher f = {.bs = bs, .report = report};
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
    if ((st = set_add(&f.seen, root, &added)) || (st = queue_push_back(&f.queue, &t)))
        goto fail;
    /* Blocks are written as batches synced together; on failure the verified
     * ones are still committed, so that a later fetch resumes from them. */
    ia_blockstore_batch_begin(bs);
    st = run(&f);
    ia_status cst = ia_blockstore_batch_commit(bs);
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
    free(f.seen.slots);
    free(f.seen.used);
    free(f.got.slots);
    free(f.got.used);
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
