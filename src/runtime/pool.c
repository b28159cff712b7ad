/*
 * The resource pool: loaded models shared by every caller in the process,
 * reference counted, kept within a memory budget by evicting idle models
 * least recently used first. The contract (size rule, waits, what is
 * counted) is in include/ia/runtime.h under "resource pool"; this file is
 * the mechanism.
 *
 * Every entry lives on one doubly linked list ordered by last use (head =
 * least recent). Lookups walk it: a process holds tens of models, not
 * thousands, and a walk of a short list under the lock costs less than the
 * hashing would. Entries move through LOADING -> READY, or LOADING -> FAILED
 * (unlinked at once; freed when the last acquire waiting on it leaves), or
 * READY -> unlinked for freeing (eviction). A waiter on a LOADING entry holds
 * a reference, which keeps the entry's memory alive and makes it ineligible
 * for eviction once READY.
 *
 * Accounting: `committed` = bytes of READY entries + estimates of LOADING
 * entries that made room for them + bytes of evicted entries whose free has
 * not returned yet. Admission requires committed + need <= budget, or that
 * nothing at all is committed (the oversize rule). The `unsized` flag is the
 * single slot for a model whose bytes are not (yet, or not fully) counted.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ia/hw.h"
#include "ia/runtime.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_BUDGET_PERCENT 80

typedef enum entry_state { ENTRY_LOADING, ENTRY_READY, ENTRY_FAILED } entry_state;

typedef struct pool_entry {
    char *source, *device, *variant;
    ia_dtype dtype;
    ia_pool_loader loader;
    void *obj;
    size_t bytes; /* counted in committed: the estimate while loading, then the real size */
    int refs;     /* handles out + acquires waiting on the load */
    entry_state state;
    ia_status error_status; /* FAILED: the load's status and message */
    char *error;
    struct pool_entry *prev, *next;
} pool_entry;

struct ia_pool {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* load finished, handle released, bytes freed */
    uint64_t budget;
    bool low_memory;
    int timeout_ms;
    /* guarded by lock: */
    pool_entry *head, *tail; /* LRU order, head least recently used */
    uint64_t committed;
    bool unsized;   /* the one slot for a model outside the accounting is taken */
    size_t loading; /* entries in ENTRY_LOADING */
    size_t handles; /* handles out */
    ia_pool_stats stats;
};

struct ia_pool_handle {
    ia_pool *pool;
    pool_entry *entry;
};

/* ---- small helpers ------------------------------------------------------------ */

/* "1.5 GiB", "300 MiB", "12 KiB", "512 B". */
static const char *format_bytes(uint64_t n, char buf[32]) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, 32, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

static void list_unlink(ia_pool *p, pool_entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        p->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_append(ia_pool *p, pool_entry *e) {
    e->prev = p->tail;
    e->next = NULL;
    if (p->tail)
        p->tail->next = e;
    else
        p->head = e;
    p->tail = e;
}

static void touch(ia_pool *p, pool_entry *e) {
    list_unlink(p, e);
    list_append(p, e);
}

static void entry_free(pool_entry *e) {
    if (!e)
        return;
    free(e->source);
    free(e->device);
    free(e->variant);
    free(e->error);
    free(e);
}

static bool entry_matches(const pool_entry *e, const ia_pool_key *key, const ia_pool_loader *ld) {
    return e->loader.load == ld->load && e->dtype == key->dtype &&
           strcmp(e->source, key->source) == 0 &&
           strcmp(e->device, key->device ? key->device : "cpu") == 0 &&
           strcmp(e->variant, key->variant ? key->variant : "") == 0;
}

static pool_entry *find(ia_pool *p, const ia_pool_key *key, const ia_pool_loader *ld) {
    for (pool_entry *e = p->head; e; e = e->next)
        if (entry_matches(e, key, ld))
            return e;
    return NULL;
}

static void add_committed(ia_pool *p, uint64_t n) {
    p->committed += n;
    if (p->committed > p->stats.peak_bytes)
        p->stats.peak_bytes = p->committed;
}

/* Absolute CLOCK_MONOTONIC deadline timeout_ms from now. */
static struct timespec deadline_after(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- making room ---------------------------------------------------------------- */

/* `need` more bytes fit beside `others` committed bytes: within the budget,
 * or alone (the oversize rule). */
static bool fits(const ia_pool *p, uint64_t others, uint64_t need) {
    return others == 0 || (need <= p->budget && others <= p->budget - need);
}

/* Unlinks idle READY entries, least recently used first, until `need` fits
 * beside `others` minus what they hold; their bytes stay committed until
 * free_victims. Returns the victims chained through ->next. */
static pool_entry *pick_victims(ia_pool *p, uint64_t others, uint64_t need) {
    pool_entry *victims = NULL;
    for (pool_entry *e = p->head, *next; e && !fits(p, others, need); e = next) {
        next = e->next;
        if (e->state != ENTRY_READY || e->refs > 0)
            continue;
        list_unlink(p, e);
        p->stats.loaded--;
        p->stats.bytes -= e->bytes;
        p->stats.evictions++;
        others -= e->bytes;
        e->next = victims;
        victims = e;
    }
    return victims;
}

/* Frees victims outside the lock, then uncounts their bytes and wakes
 * waiters. Called and returns with the lock held. */
static void free_victims(ia_pool *p, pool_entry *victims) {
    if (!victims)
        return;
    pthread_mutex_unlock(&p->lock);
    uint64_t freed = 0;
    for (pool_entry *e = victims; e; e = e->next) {
        ia_log(IA_LOG_DEBUG, "pool: evicting %s (%zu bytes)", e->source, e->bytes);
        e->loader.free(e->loader.ctx, e->obj);
        freed += e->bytes;
    }
    pthread_mutex_lock(&p->lock);
    p->committed -= freed;
    pthread_cond_broadcast(&p->changed);
    while (victims) {
        pool_entry *next = victims->next;
        entry_free(victims);
        victims = next;
    }
}

static ia_status budget_error(ia_pool *p, const char *source, uint64_t need, uint64_t others) {
    size_t busy = 0;
    uint64_t busy_bytes = 0;
    for (pool_entry *e = p->head; e; e = e->next)
        if (e->refs > 0 && e->state == ENTRY_READY) {
            busy++;
            busy_bytes += e->bytes;
        }
    char b1[32], b2[32], b3[32], b4[32];
    p->stats.timeouts++;
    return ia_error_set(IA_ERANGE,
                        "pool budget %s: model %s needs %s, %s in use by %zu model%s (%s counted "
                        "with loads and frees in progress); release a model or raise the budget",
                        format_bytes(p->budget, b1), source, format_bytes(need, b2),
                        format_bytes(busy_bytes, b3), busy, busy == 1 ? "" : "s",
                        format_bytes(others, b4));
}

/* Makes `need` bytes fit beside everything committed except `own` (bytes
 * the caller already counts): evicts idle models, then waits for releases
 * until the deadline. With `excess` the caller holds an object whose bytes
 * beyond `own` are uncounted: it may wait only while holding the unsized
 * slot, and returns IA_EUNSUPPORTED (no message) when another holds it.
 * Called and returns with the lock held. */
static ia_status make_room(ia_pool *p, const char *source, uint64_t own, uint64_t need, bool excess,
                           bool *holds_slot, int timeout_ms) {
    bool waited = false;
    struct timespec deadline = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t others = p->committed - own;
        if (fits(p, others, need))
            return IA_OK;
        pool_entry *victims = pick_victims(p, others, need);
        if (victims) {
            free_victims(p, victims);
            continue;
        }
        if (excess && !*holds_slot) {
            if (p->unsized)
                return IA_EUNSUPPORTED;
            p->unsized = true;
            *holds_slot = true;
        }
        if (timeout_ms == IA_POOL_NO_WAIT)
            return budget_error(p, source, need, others);
        if (!waited) {
            p->stats.waits++;
            waited = true;
        }
        int rc = pthread_cond_timedwait(&p->changed, &p->lock, &deadline);
        if (rc == ETIMEDOUT && !fits(p, p->committed - own, need))
            return budget_error(p, source, need, p->committed - own);
    }
}

/* Waits for the unsized slot. Called and returns with the lock held. */
static ia_status take_unsized_slot(ia_pool *p, const char *source, int timeout_ms) {
    struct timespec deadline = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
    bool waited = false;
    while (p->unsized) {
        if (!waited) {
            p->stats.waits++;
            waited = true;
        }
        if (timeout_ms == IA_POOL_NO_WAIT ||
            pthread_cond_timedwait(&p->changed, &p->lock, &deadline) == ETIMEDOUT) {
            if (!p->unsized)
                break;
            p->stats.timeouts++;
            return ia_error_set(IA_ERANGE,
                                "pool: model %s has no size estimate and another such load "
                                "held the pool's one unsized slot for the whole timeout",
                                source);
        }
    }
    p->unsized = true;
    return IA_OK;
}

/* ---- loading ------------------------------------------------------------------------ */

/* Marks a LOADING entry FAILED, unlinks it and wakes its waiters; drops the
 * loader's own reference. Called with the lock held. */
static void fail_entry(ia_pool *p, pool_entry *e, ia_status st) {
    e->state = ENTRY_FAILED;
    e->error_status = st;
    e->error = strdup(ia_error_message()); /* NULL only costs waiters the detail */
    list_unlink(p, e);
    p->loading--;
    p->stats.load_failures++;
    pthread_cond_broadcast(&p->changed);
    if (--e->refs == 0)
        entry_free(e);
}

static void warn_oversize(const ia_pool *p, const char *source, uint64_t bytes) {
    char b1[32], b2[32];
    ia_log(IA_LOG_WARN,
           "pool: model %s (%s) is larger than the whole budget (%s); it is "
           "resident alone",
           source, format_bytes(bytes, b1), format_bytes(p->budget, b2));
}

/* Loads a new entry (LOADING, one reference held by this thread): makes room
 * for the estimate (or takes the unsized slot), loads outside the lock, then
 * admits the real size. When the real size exceeds the estimate, does not
 * fit, and the unsized slot is busy, the object is freed and loaded again
 * with its now known size, so that never two objects are outside the
 * accounting. Called and returns with the lock held; on failure the entry is
 * gone. */
static ia_status load_entry(ia_pool *p, pool_entry *e, const ia_pool_key *key) {
    bool slot = false;
    void *obj = NULL;
    size_t hint = 0, real = 0;
    ia_status st;

    if (e->loader.estimate) {
        pthread_mutex_unlock(&p->lock);
        hint = e->loader.estimate(e->loader.ctx, key);
        pthread_mutex_lock(&p->lock);
    }
    for (;;) {
        if (hint == 0)
            st = take_unsized_slot(p, e->source, p->timeout_ms);
        else
            st = make_room(p, e->source, 0, hint, false, &slot, p->timeout_ms);
        if (st != IA_OK)
            goto fail;
        slot = hint == 0;
        if (hint > p->budget)
            warn_oversize(p, e->source, hint);
        e->bytes = hint;
        add_committed(p, hint);

        pthread_mutex_unlock(&p->lock);
        st = e->loader.load(e->loader.ctx, key, &obj, &real);
        pthread_mutex_lock(&p->lock);
        if (st == IA_OK && !obj)
            st = ia_error_set(IA_EINTERNAL, "pool: the loader of %s returned no object", e->source);
        if (st != IA_OK)
            goto fail_counted;
        if (real <= hint)
            break;
        st = make_room(p, e->source, hint, real, true, &slot, p->timeout_ms);
        if (st == IA_OK)
            break;
        if (st != IA_EUNSUPPORTED)
            goto fail_counted;
        ia_log(IA_LOG_DEBUG,
               "pool: %s is %zu bytes, not the estimated %zu; loading it again "
               "once there is room",
               e->source, real, hint);
        pthread_mutex_unlock(&p->lock);
        e->loader.free(e->loader.ctx, obj);
        pthread_mutex_lock(&p->lock);
        obj = NULL;
        p->committed -= hint; /* only now: the memory is really gone */
        hint = real;
        pthread_cond_broadcast(&p->changed);
    }
    if (real > p->budget && hint <= p->budget)
        warn_oversize(p, e->source, real);
    p->committed -= hint;
    add_committed(p, real);
    e->bytes = real;
    e->obj = obj;
    e->state = ENTRY_READY;
    p->loading--;
    p->stats.loaded++;
    p->stats.bytes += real;
    if (slot)
        p->unsized = false;
    pthread_cond_broadcast(&p->changed);
    return IA_OK;

fail_counted:
    if (obj) {
        char *msg = strdup(ia_error_message()); /* free may leave its own */
        pthread_mutex_unlock(&p->lock);
        e->loader.free(e->loader.ctx, obj);
        pthread_mutex_lock(&p->lock);
        if (msg)
            ia_error_set(st, "%s", msg);
        free(msg);
    }
    p->committed -= hint;
fail:
    if (slot)
        p->unsized = false;
    fail_entry(p, e, st);
    return st;
}

static pool_entry *entry_new(const ia_pool_key *key, const ia_pool_loader *loader) {
    pool_entry *e = ia_calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->source = ia_strdup(key->source);
    e->device = ia_strdup(key->device ? key->device : "cpu");
    e->variant = ia_strdup(key->variant ? key->variant : "");
    if (!e->source || !e->device || !e->variant) {
        entry_free(e);
        return NULL;
    }
    e->dtype = key->dtype;
    e->loader = *loader;
    e->state = ENTRY_LOADING;
    e->refs = 1;
    return e;
}

/* ---- the public API -------------------------------------------------------------------- */

static uint64_t default_budget(void) {
    uint64_t usable = 0;
    ia_hw_options hopts = ia_hw_options_default();
    hopts.libraries = false;
    hopts.perf = false;
    ia_hw_info *info = NULL;
    if (ia_hw_detect(&hopts, &info) == IA_OK && info)
        usable = info->memory.usable;
    ia_hw_info_free(info);
    if (usable == 0) {
        /* no memory probe result: fall back to physical memory */
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        usable = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 1ull << 30;
        ia_log(IA_LOG_DEBUG,
               "pool: no usable-memory figure from hw detection; using physical "
               "memory (%llu bytes)",
               (unsigned long long)usable);
    }
    return usable / 100 * DEFAULT_BUDGET_PERCENT;
}

ia_status ia_pool_create(const ia_pool_options *opts_in, ia_pool **out) {
    ia_pool_options opts = opts_in ? *opts_in : (ia_pool_options){0};
    *out = NULL;
    if (opts.acquire_timeout_ms < IA_POOL_NO_WAIT)
        return ia_error_set(IA_EINVAL,
                            "pool: acquire_timeout_ms %d is negative (use 0 for the "
                            "default or IA_POOL_NO_WAIT)",
                            opts.acquire_timeout_ms);
    ia_pool *p = ia_calloc(1, sizeof *p);
    if (!p)
        return IA_ENOMEM;
    pthread_condattr_t attr;
    bool attr_ok = false, lock_ok = false;
    ia_status st = ia_error_set(IA_EINTERNAL, "pool: cannot create its lock or condition");
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto fail;
    lock_ok = true;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    attr_ok = true;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->changed, &attr) != 0)
        goto fail;
    pthread_condattr_destroy(&attr);
    p->budget = opts.budget_bytes ? opts.budget_bytes : default_budget();
    p->low_memory = opts.low_memory;
    p->timeout_ms = opts.acquire_timeout_ms ? opts.acquire_timeout_ms : DEFAULT_TIMEOUT_MS;
    p->stats.budget = p->budget;
    *out = p;
    return IA_OK;
fail:
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (lock_ok)
        pthread_mutex_destroy(&p->lock);
    free(p);
    return st;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static ia_pool *global_pool;
static ia_status global_status;
static char global_error[256];

ia_status ia_pool_destroy(ia_pool *p) {
    if (!p)
        return IA_OK;
    if (p == global_pool)
        return ia_error_set(IA_EINVAL, "pool: the process-wide pool is never destroyed");
    pthread_mutex_lock(&p->lock);
    size_t handles = p->handles, loading = p->loading;
    pthread_mutex_unlock(&p->lock);
    if (handles || loading)
        return ia_error_set(IA_EINVAL,
                            "pool: cannot destroy with %zu handle%s out and %zu "
                            "load%s running; release them first",
                            handles, handles == 1 ? "" : "s", loading, loading == 1 ? "" : "s");
    for (pool_entry *e = p->head, *next; e; e = next) {
        next = e->next;
        e->loader.free(e->loader.ctx, e->obj);
        entry_free(e);
    }
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return IA_OK;
}

static void global_create(void) {
    global_status = ia_pool_create(NULL, &global_pool);
    if (global_status != IA_OK)
        snprintf(global_error, sizeof global_error, "%s", ia_error_message());
}

ia_status ia_pool_global(ia_pool **out) {
    pthread_once(&global_once, global_create);
    *out = global_pool;
    if (global_status != IA_OK)
        return ia_error_set(global_status, "%s", global_error);
    return IA_OK;
}

ia_status ia_pool_acquire(ia_pool *p, const ia_pool_key *key, const ia_pool_loader *loader,
                          ia_pool_handle **out) {
    *out = NULL;
    if (!key || !key->source || !loader || !loader->load || !loader->free)
        return ia_error_set(IA_EINVAL, "pool: acquire needs a key with a source and a loader "
                                       "with load and free");
    ia_pool_handle *h = ia_calloc(1, sizeof *h);
    if (!h)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    pthread_mutex_lock(&p->lock);
    pool_entry *e = find(p, key, loader);
    if (e) {
        e->refs++;
        touch(p, e);
        while (e->state == ENTRY_LOADING)
            pthread_cond_wait(&p->changed, &p->lock);
        if (e->state == ENTRY_FAILED) {
            st = ia_error_set(e->error_status, "%s", e->error ? e->error : "the load failed");
            if (--e->refs == 0)
                entry_free(e);
            goto fail;
        }
        p->stats.hits++;
    } else {
        p->stats.misses++;
        if (!(e = entry_new(key, loader))) {
            st = IA_ENOMEM;
            goto fail;
        }
        list_append(p, e);
        p->loading++;
        if ((st = load_entry(p, e, key)))
            goto fail;
    }
    p->handles++;
    pthread_mutex_unlock(&p->lock);
    h->pool = p;
    h->entry = e;
    *out = h;
    return IA_OK;
fail:
    pthread_mutex_unlock(&p->lock);
    free(h);
    return st;
}

void *ia_pool_handle_get(const ia_pool_handle *h) { return h->entry->obj; }

size_t ia_pool_handle_bytes(const ia_pool_handle *h) {
    /* bytes is written only while the entry is LOADING, before any handle exists */
    return h->entry->bytes;
}

void ia_pool_release(ia_pool_handle *h) {
    if (!h)
        return;
    ia_pool *p = h->pool;
    pool_entry *e = h->entry;
    free(h);
    pthread_mutex_lock(&p->lock);
    assert(e->refs > 0 && e->state == ENTRY_READY); /* else a double release */
    touch(p, e);
    if (--e->refs == 0 && p->low_memory) {
        list_unlink(p, e);
        p->stats.loaded--;
        p->stats.bytes -= e->bytes;
        p->stats.evictions++;
        free_victims(p, e);
    }
    /* counted down last, so that a destroy refuses until the free above is done */
    p->handles--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

void ia_pool_stats_get(ia_pool *p, ia_pool_stats *out) {
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    out->in_use = 0;
    for (pool_entry *e = p->head; e; e = e->next)
        if (e->state == ENTRY_READY && e->refs > 0)
            out->in_use++;
    pthread_mutex_unlock(&p->lock);
}
