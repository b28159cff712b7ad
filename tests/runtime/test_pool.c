/*
 * The resource pool: counters, LRU eviction order, models in use never
 * evicted, the budget error after a timeout, failed loads not cached,
 * low-memory mode, the oversize rule, one load for concurrent acquires of a
 * key, and a 16-thread stress run under a budget that forces eviction. A
 * test loader allocates buffers of chosen sizes, fills them with a per-model
 * pattern, and tracks the bytes really live with atomics, so the tests check
 * memory held, not only what the pool says it counts; its free fails the run
 * if the object still has users.
 *
 * The same file builds as runtime/pool_tsan with ThreadSanitizer (see the end
 * of tests/CMakeLists.txt); IA_POOL_TEST_NO_MODELS leaves out the case with
 * real encoder fixtures there, so that build needs only base/, hw/ and the
 * pool.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "ia/runtime.h"
#include "test.h"

#define N_MODELS 12
#define OBJ_MAGIC 0x600dcafeu
#define OBJ_DEAD 0xdeadbeefu

typedef struct test_obj {
    _Atomic uint32_t magic;
    int index;
    size_t size;
    atomic_int users; /* handles a test thread holds and is using */
    atomic_ullong uses;
    unsigned char *buf;
} test_obj;

typedef struct test_loader {
    size_t sizes[N_MODELS];
    bool unsized[N_MODELS];         /* estimate returns 0 */
    size_t estimate_of[N_MODELS];   /* nonzero: estimate returns this instead */
    atomic_int fail_next[N_MODELS]; /* loads to fail */
    atomic_int load_delay_ms;
    atomic_llong live_bytes, peak_live;
    atomic_int loads, frees, attempts;
    atomic_int freed_while_used;
    pthread_mutex_t order_lock; /* guards freed_order, n_freed */
    int freed_order[4096];
    int n_freed;
} test_loader;

static unsigned char pattern_byte(int index, size_t i) { return (unsigned char)(index * 37 + i); }

static int key_index(const ia_pool_key *key) { return atoi(key->source + 1); } /* "m3" -> 3 */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static ia_status tl_load(void *ctx, const ia_pool_key *key, void **obj, size_t *bytes) {
    test_loader *tl = ctx;
    int i = key_index(key);
    atomic_fetch_add(&tl->attempts, 1);
    int delay = atomic_load(&tl->load_delay_ms);
    if (delay)
        sleep_ms(delay);
    if (atomic_load(&tl->fail_next[i]) > 0) {
        atomic_fetch_sub(&tl->fail_next[i], 1);
        return ia_error_set(IA_EIO, "%s: simulated read error", key->source);
    }
    test_obj *o = calloc(1, sizeof *o);
    o->buf = malloc(tl->sizes[i]);
    if (!o || !o->buf)
        return IA_ENOMEM;
    o->index = i;
    o->size = tl->sizes[i];
    for (size_t k = 0; k < o->size; k++)
        o->buf[k] = pattern_byte(i, k);
    atomic_store(&o->magic, OBJ_MAGIC);
    long long live = atomic_fetch_add(&tl->live_bytes, (long long)o->size) + (long long)o->size;
    long long peak = atomic_load(&tl->peak_live);
    while (live > peak && !atomic_compare_exchange_weak(&tl->peak_live, &peak, live)) {
    }
    atomic_fetch_add(&tl->loads, 1);
    *obj = o;
    *bytes = o->size;
    return IA_OK;
}

static void tl_free(void *ctx, void *obj) {
    test_loader *tl = ctx;
    test_obj *o = obj;
    if (atomic_load(&o->users) != 0 || atomic_load(&o->magic) != OBJ_MAGIC)
        atomic_fetch_add(&tl->freed_while_used, 1);
    atomic_store(&o->magic, OBJ_DEAD);
    atomic_fetch_sub(&tl->live_bytes, (long long)o->size);
    atomic_fetch_add(&tl->frees, 1);
    pthread_mutex_lock(&tl->order_lock);
    if (tl->n_freed < 4096)
        tl->freed_order[tl->n_freed++] = o->index;
    pthread_mutex_unlock(&tl->order_lock);
    free(o->buf);
    free(o);
}

static size_t tl_estimate(void *ctx, const ia_pool_key *key) {
    test_loader *tl = ctx;
    int i = key_index(key);
    if (tl->unsized[i])
        return 0;
    return tl->estimate_of[i] ? tl->estimate_of[i] : tl->sizes[i];
}

static test_loader *tl_new(size_t size_each) {
    test_loader *tl = calloc(1, sizeof *tl);
    pthread_mutex_init(&tl->order_lock, NULL);
    for (int i = 0; i < N_MODELS; i++)
        tl->sizes[i] = size_each;
    return tl;
}

static void tl_destroy(test_loader *tl) {
    pthread_mutex_destroy(&tl->order_lock);
    free(tl);
}

static ia_pool_loader loader_of(test_loader *tl) {
    return (ia_pool_loader){tl_load, tl_free, tl_estimate, tl};
}

static const char *model_name(int i) {
    static const char *const names[N_MODELS] = {"m0", "m1", "m2", "m3", "m4",  "m5",
                                                "m6", "m7", "m8", "m9", "m10", "m11"};
    return names[i];
}

static ia_status acquire(ia_pool *pool, test_loader *tl, int i, ia_pool_handle **h) {
    ia_pool_key key = {.source = model_name(i), .device = "cpu", .dtype = IA_DTYPE_F32};
    ia_pool_loader ld = loader_of(tl);
    return ia_pool_acquire(pool, &key, &ld, h);
}

static ia_pool *pool_new(uint64_t budget, bool low_memory, int timeout_ms) {
    ia_pool_options opts = {
        .budget_bytes = budget, .low_memory = low_memory, .acquire_timeout_ms = timeout_ms};
    ia_pool *pool = NULL;
    CHECK_OK(ia_pool_create(&opts, &pool));
    return pool;
}

/* Acquires and releases at once (a model left resident and idle). */
static void touch_model(ia_pool *pool, test_loader *tl, int i) {
    ia_pool_handle *h = NULL;
    CHECK_OK(acquire(pool, tl, i, &h));
    ia_pool_release(h);
}

TEST(hit_miss_counters) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(1000, false, 0);
    ia_pool_handle *a = NULL, *b = NULL;
    CHECK_OK(acquire(pool, tl, 0, &a));
    CHECK_OK(acquire(pool, tl, 0, &b));
    CHECK(a && b && ia_pool_handle_get(a) == ia_pool_handle_get(b));
    CHECK_EQ_INT(ia_pool_handle_bytes(a), 100);
    test_obj *o = ia_pool_handle_get(a);
    CHECK(o->magic == OBJ_MAGIC && o->index == 0 && o->buf[5] == pattern_byte(0, 5));
    /* a different dtype is a different model */
    ia_pool_key key = {.source = "m0", .device = "cpu", .dtype = IA_DTYPE_BF16};
    ia_pool_loader ld = loader_of(tl);
    ia_pool_handle *c = NULL;
    CHECK_OK(ia_pool_acquire(pool, &key, &ld, &c));
    CHECK(ia_pool_handle_get(c) != ia_pool_handle_get(a));
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.misses, 2);
    CHECK_EQ_INT(s.hits, 1);
    CHECK_EQ_INT(s.loaded, 2);
    CHECK_EQ_INT(s.in_use, 2);
    CHECK_EQ_INT(s.bytes, 200);
    CHECK_EQ_INT(s.budget, 1000);
    ia_pool_release(a);
    ia_pool_release(b);
    ia_pool_release(c);
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.in_use, 0);
    CHECK_EQ_INT(s.loaded, 2); /* idle models stay resident */
    CHECK_EQ_INT(atomic_load(&tl->frees), 0);
    CHECK_OK(ia_pool_destroy(pool));
    CHECK_EQ_INT(atomic_load(&tl->frees), 2);
    CHECK_EQ_INT(atomic_load(&tl->live_bytes), 0);
    tl_destroy(tl);
}

TEST(lru_eviction_order) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(300, false, 0);
    touch_model(pool, tl, 0);
    touch_model(pool, tl, 1);
    touch_model(pool, tl, 2);
    touch_model(pool, tl, 0); /* m0 is now the most recent: m1 goes first */
    touch_model(pool, tl, 3);
    CHECK_EQ_INT(tl->n_freed, 1);
    CHECK_EQ_INT(tl->freed_order[0], 1);
    touch_model(pool, tl, 4);
    CHECK_EQ_INT(tl->n_freed, 2);
    CHECK_EQ_INT(tl->freed_order[1], 2);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.evictions, 2);
    CHECK_EQ_INT(s.loaded, 3);
    CHECK_EQ_INT(s.bytes, 300);
    uint64_t hits = s.hits;
    touch_model(pool, tl, 0); /* still resident */
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.hits, hits + 1);
    CHECK_EQ_INT(s.peak_bytes, 300);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(in_use_never_evicted_and_timeout_message) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(300, false, 50);
    ia_pool_handle *h[3] = {0};
    for (int i = 0; i < 3; i++)
        CHECK_OK(acquire(pool, tl, i, &h[i]));
    ia_pool_handle *x = NULL;
    CHECK_ERR(acquire(pool, tl, 3, &x), IA_ERANGE,
              "pool budget 300 B: model m3 needs 100 B, 300 B in use by 3 models");
    CHECK(x == NULL);
    CHECK_EQ_INT(atomic_load(&tl->frees), 0);
    CHECK_EQ_INT(atomic_load(&tl->attempts), 3); /* m3 was never loaded */
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.waits, 1);
    CHECK_EQ_INT(s.timeouts, 1);
    CHECK_EQ_INT(s.bytes, 300);
    /* the failed acquire left nothing behind: one release makes room */
    ia_pool_release(h[1]);
    CHECK_OK(acquire(pool, tl, 3, &x));
    CHECK_EQ_INT(tl->n_freed, 1);
    CHECK_EQ_INT(tl->freed_order[0], 1);
    /* the sizes are in words */
    ia_pool_release(x);
    CHECK_ERR(ia_pool_destroy(pool), IA_EINVAL, "2 handles out");
    ia_pool_release(h[0]);
    ia_pool_release(h[2]);
    CHECK_OK(ia_pool_destroy(pool));
    CHECK_EQ_INT(atomic_load(&tl->freed_while_used), 0);
    tl_destroy(tl);
}

typedef struct acquire_job {
    ia_pool *pool;
    test_loader *tl;
    int index;
    ia_status status;
    char error[256];
    ia_pool_handle *handle;
} acquire_job;

static void *acquire_thread(void *arg) {
    acquire_job *job = arg;
    job->status = acquire(job->pool, job->tl, job->index, &job->handle);
    snprintf(job->error, sizeof job->error, "%s", ia_error_message());
    return NULL;
}

TEST(wait_for_release) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(300, false, 10000);
    ia_pool_handle *h[3] = {0};
    for (int i = 0; i < 3; i++)
        CHECK_OK(acquire(pool, tl, i, &h[i]));
    acquire_job job = {pool, tl, 3, IA_EINTERNAL, "", NULL};
    pthread_t t;
    pthread_create(&t, NULL, acquire_thread, &job);
    sleep_ms(100);
    CHECK_EQ_INT(atomic_load(&tl->attempts), 3); /* still waiting for room */
    ia_pool_release(h[2]);
    pthread_join(t, NULL);
    CHECK_MSG(job.status == IA_OK, "%s", job.error);
    CHECK_EQ_INT(tl->n_freed, 1);
    CHECK_EQ_INT(tl->freed_order[0], 2);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.waits, 1);
    CHECK_EQ_INT(s.timeouts, 0);
    ia_pool_release(job.handle);
    ia_pool_release(h[0]);
    ia_pool_release(h[1]);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(failed_load_not_cached) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(300, false, 0);
    atomic_store(&tl->fail_next[5], 1);
    ia_pool_handle *h = NULL;
    CHECK_ERR(acquire(pool, tl, 5, &h), IA_EIO, "m5: simulated read error");
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.load_failures, 1);
    CHECK_EQ_INT(s.loaded, 0);
    CHECK_EQ_INT(s.bytes, 0);
    CHECK_OK(acquire(pool, tl, 5, &h)); /* tried again, not a cached failure */
    CHECK_EQ_INT(atomic_load(&tl->attempts), 2);
    ia_pool_release(h);
    /* the failed load's reservation was given back: three models still fit */
    touch_model(pool, tl, 0);
    touch_model(pool, tl, 1);
    CHECK_EQ_INT(atomic_load(&tl->frees), 0);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(concurrent_acquires_load_once) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(1000, false, 0);
    atomic_store(&tl->load_delay_ms, 300);
    enum { N = 8 };
    acquire_job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (acquire_job){pool, tl, 7, IA_EINTERNAL, "", NULL};
        pthread_create(&t[i], NULL, acquire_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&tl->attempts), 1);
    for (int i = 0; i < N; i++) {
        CHECK_MSG(jobs[i].status == IA_OK, "%s", jobs[i].error);
        CHECK(ia_pool_handle_get(jobs[i].handle) == ia_pool_handle_get(jobs[0].handle));
    }
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.misses, 1);
    CHECK_EQ_INT(s.hits, N - 1);
    for (int i = 0; i < N; i++)
        ia_pool_release(jobs[i].handle);

    /* a failing load: every acquire waiting on it gets its error, one attempt */
    atomic_store(&tl->fail_next[8], 1);
    for (int i = 0; i < N; i++) {
        jobs[i] = (acquire_job){pool, tl, 8, IA_EINTERNAL, "", NULL};
        pthread_create(&t[i], NULL, acquire_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    int failed = 0, ok = 0;
    for (int i = 0; i < N; i++) {
        if (jobs[i].status == IA_EIO && strstr(jobs[i].error, "m8: simulated read error"))
            failed++;
        if (jobs[i].status == IA_OK) {
            ok++;
            ia_pool_release(jobs[i].handle);
        }
    }
    /* threads that arrived after the failure load again (and succeed) */
    CHECK_EQ_INT(failed + ok, N);
    CHECK(failed >= 1);
    CHECK_EQ_INT(atomic_load(&tl->attempts), 2 + (ok > 0));
    atomic_store(&tl->load_delay_ms, 0);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(low_memory_mode) {
    test_loader *tl = tl_new(100);
    ia_pool *pool = pool_new(1000, true, 0);
    ia_pool_handle *a = NULL, *b = NULL;
    CHECK_OK(acquire(pool, tl, 0, &a));
    CHECK_OK(acquire(pool, tl, 0, &b));
    ia_pool_release(a);
    CHECK_EQ_INT(atomic_load(&tl->frees), 0); /* still in use through b */
    ia_pool_release(b);
    CHECK_EQ_INT(atomic_load(&tl->frees), 1);
    CHECK_EQ_INT(atomic_load(&tl->live_bytes), 0);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.loaded, 0);
    CHECK_EQ_INT(s.bytes, 0);
    CHECK_EQ_INT(s.evictions, 1);
    touch_model(pool, tl, 0);
    CHECK_EQ_INT(atomic_load(&tl->attempts), 2);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(oversize_model_alone) {
    test_loader *tl = tl_new(100);
    tl->sizes[9] = 500;
    ia_pool *pool = pool_new(300, false, IA_POOL_NO_WAIT);
    ia_log_level level = ia_log_get_level();
    ia_log_set_level(IA_LOG_ERROR); /* the warning is expected */
    ia_pool_handle *small = NULL, *big = NULL, *x = NULL;
    CHECK_OK(acquire(pool, tl, 0, &small));
    CHECK_ERR(acquire(pool, tl, 9, &big), IA_ERANGE, "needs 500 B, 100 B in use by 1 model");
    ia_pool_release(small);
    touch_model(pool, tl, 1);
    CHECK_OK(acquire(pool, tl, 9, &big)); /* evicts both idle models, then loads alone */
    CHECK_EQ_INT(atomic_load(&tl->frees), 2);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.bytes, 500);
    CHECK_EQ_INT(s.loaded, 1);
    CHECK_ERR(acquire(pool, tl, 2, &x), IA_ERANGE, "500 B in use by 1 model");
    ia_pool_release(big);
    CHECK_OK(acquire(pool, tl, 2, &x)); /* the idle big model makes way */
    CHECK_EQ_INT(atomic_load(&tl->frees), 3);
    ia_pool_release(x);
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.peak_bytes, 500);
    CHECK(atomic_load(&tl->peak_live) <= 300 + 500);
    ia_log_set_level(level);
    CHECK_OK(ia_pool_destroy(pool));
    tl_destroy(tl);
}

TEST(unsized_and_underestimated_loads) {
    test_loader *tl = tl_new(100);
    tl->unsized[0] = true;
    tl->estimate_of[1] = 10; /* the loader guesses low */
    ia_pool *pool = pool_new(200, false, IA_POOL_NO_WAIT);
    touch_model(pool, tl, 2);
    touch_model(pool, tl, 3);
    ia_pool_handle *a = NULL, *b = NULL;
    CHECK_OK(acquire(pool, tl, 0, &a)); /* no estimate: admitted after loading */
    CHECK_EQ_INT(tl->n_freed, 1);
    CHECK_EQ_INT(tl->freed_order[0], 2);
    CHECK_OK(acquire(pool, tl, 1, &b)); /* making room for the low 10 evicts m3 */
    CHECK_EQ_INT(tl->n_freed, 2);
    CHECK_EQ_INT(tl->freed_order[1], 3);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.bytes, 200);
    CHECK_EQ_INT(ia_pool_handle_bytes(b), 100);
    /* over budget with everything in use: the loaded object is freed again */
    ia_pool_handle *c = NULL;
    tl->unsized[4] = true;
    CHECK_ERR(acquire(pool, tl, 4, &c), IA_ERANGE, "model m4 needs 100 B");
    CHECK_EQ_INT(atomic_load(&tl->live_bytes), 200);
    ia_pool_release(a);
    ia_pool_release(b);
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.load_failures, 1);
    CHECK(s.peak_bytes <= 200);
    CHECK_OK(ia_pool_destroy(pool));
    CHECK_EQ_INT(atomic_load(&tl->live_bytes), 0);
    tl_destroy(tl);
}

TEST(global_pool) {
    ia_pool *a = NULL, *b = NULL;
    CHECK_OK(ia_pool_global(&a));
    CHECK_OK(ia_pool_global(&b));
    CHECK(a != NULL && a == b);
    ia_pool_stats s;
    ia_pool_stats_get(a, &s);
    CHECK_MSG(s.budget > 0, "default budget is 0");
    CHECK_ERR(ia_pool_destroy(a), IA_EINVAL, "never destroyed");
    ia_pool *p = NULL;
    ia_pool_options bad = {.acquire_timeout_ms = -5};
    CHECK_ERR(ia_pool_create(&bad, &p), IA_EINVAL, "acquire_timeout_ms -5");
}

/* ---- stress --------------------------------------------------------------------- */

#define STRESS_THREADS 16
#define STRESS_MODELS 10
#define STRESS_UNIT 4096

typedef struct stress_ctx {
    ia_pool *pool;
    test_loader *tl;
    uint64_t budget, largest;
    int iterations;
    atomic_int errors, pattern_errors, over_budget;
    char first_error[256];
    atomic_int error_taken;
} stress_ctx;

static void *stress_thread(void *arg) {
    stress_ctx *s = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed ^ (unsigned)time(NULL);
    for (int it = 0; it < s->iterations; it++) {
        int i = (int)(rand_r(&seed) % STRESS_MODELS);
        ia_pool_handle *h = NULL;
        ia_status st = acquire(s->pool, s->tl, i, &h);
        if (st != IA_OK) {
            atomic_fetch_add(&s->errors, 1);
            if (atomic_fetch_add(&s->error_taken, 1) == 0)
                snprintf(s->first_error, sizeof s->first_error, "%s", ia_error_message());
            continue;
        }
        test_obj *o = ia_pool_handle_get(h);
        atomic_fetch_add(&o->users, 1);
        long long live = atomic_load(&s->tl->live_bytes);
        if ((uint64_t)live > s->budget + s->largest)
            atomic_fetch_add(&s->over_budget, 1);
        /* use it: every byte must still hold this model's pattern */
        bool ok = atomic_load(&o->magic) == OBJ_MAGIC && o->index == i;
        for (size_t k = (size_t)it % 61; ok && k < o->size; k += 61)
            ok = o->buf[k] == pattern_byte(i, k);
        atomic_fetch_add(&o->uses, 1);
        if (!ok)
            atomic_fetch_add(&s->pattern_errors, 1);
        if (it % 7 == 0)
            sched_yield();
        atomic_fetch_sub(&o->users, 1);
        ia_pool_release(h);
    }
    return NULL;
}

static void run_stress(bool low_memory, int iterations) {
    test_loader *tl = tl_new(0);
    uint64_t total = 0, largest = 0;
    for (int i = 0; i < STRESS_MODELS; i++) {
        tl->sizes[i] = (size_t)(i + 1) * STRESS_UNIT;
        tl->unsized[i] = i % 4 == 3; /* some loads without an estimate */
        total += tl->sizes[i];
        largest = tl->sizes[i] > largest ? tl->sizes[i] : largest;
    }
    stress_ctx s = {.tl = tl, .budget = total / 3, .largest = largest, .iterations = iterations};
    s.pool = pool_new(s.budget, low_memory, 60000);
    pthread_t t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_create(&t[i], NULL, stress_thread, &s);
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(t[i], NULL);
    ia_pool_stats st;
    ia_pool_stats_get(s.pool, &st);
    CHECK_MSG(atomic_load(&s.errors) == 0, "%d acquires failed; first: %s", atomic_load(&s.errors),
              s.first_error);
    CHECK_EQ_INT(atomic_load(&s.pattern_errors), 0);
    CHECK_EQ_INT(atomic_load(&s.over_budget), 0);
    CHECK_EQ_INT(atomic_load(&tl->freed_while_used), 0);
    CHECK_MSG((uint64_t)atomic_load(&tl->peak_live) <= s.budget + largest,
              "peak live %lld > budget %llu + largest %llu", atomic_load(&tl->peak_live),
              (unsigned long long)s.budget, (unsigned long long)largest);
    CHECK_MSG(st.peak_bytes <= s.budget, "counted peak %llu > budget %llu",
              (unsigned long long)st.peak_bytes, (unsigned long long)s.budget);
    CHECK_EQ_INT(st.hits + st.misses, (uint64_t)STRESS_THREADS * (uint64_t)iterations);
    CHECK(st.evictions > 0);
    CHECK_EQ_INT(st.in_use, 0);
    CHECK_EQ_INT(st.bytes, atomic_load(&tl->live_bytes)); /* the count matches reality */
    CHECK_EQ_INT(atomic_load(&tl->loads) - atomic_load(&tl->frees), st.loaded);
    fprintf(stderr,
            "  stress%s: %llu hits, %llu misses, %llu evictions, %llu waits, peak "
            "counted %llu, peak live %lld, budget %llu\n",
            low_memory ? " (low memory)" : "", (unsigned long long)st.hits,
            (unsigned long long)st.misses, (unsigned long long)st.evictions,
            (unsigned long long)st.waits, (unsigned long long)st.peak_bytes,
            atomic_load(&tl->peak_live), (unsigned long long)s.budget);
    CHECK_OK(ia_pool_destroy(s.pool));
    CHECK_EQ_INT(atomic_load(&tl->live_bytes), 0);
    CHECK_EQ_INT(atomic_load(&tl->loads), atomic_load(&tl->frees));
    tl_destroy(tl);
}

TEST(stress_16_threads) { run_stress(false, 2000); }
TEST(stress_16_threads_low_memory) { run_stress(true, 500); }

/* ---- real models ------------------------------------------------------------------ */

#ifndef IA_POOL_TEST_NO_MODELS
TEST(embedders_through_the_pool) {
    char bert[4096], distil[4096];
    snprintf(bert, sizeof bert, "%s", test_source_path("tests/fixtures/models/tiny-bert"));
    snprintf(distil, sizeof distil, "%s",
             test_source_path("tests/fixtures/models/tiny-distilbert"));
    ia_embedder_options opts = ia_embedder_options_default();
    opts.n_threads = 1;
    size_t est_bert = 0, est_distil = 0;
    CHECK_OK(ia_embedder_estimate_bytes(bert, &opts, &est_bert));
    CHECK_OK(ia_embedder_estimate_bytes(distil, &opts, &est_distil));
    CHECK(est_bert > 0 && est_distil > 0);
    /* room for one of them at a time */
    ia_pool *pool = pool_new(est_bert > est_distil ? est_bert : est_distil, false, 0);
    ia_pool_handle *a = NULL, *a2 = NULL, *b = NULL;
    CHECK_OK(ia_pool_acquire_embedder(pool, bert, &opts, &a));
    if (!a) {
        ia_pool_destroy(pool);
        return;
    }
    ia_embedder *emb = ia_pool_handle_get(a);
    CHECK_EQ_INT(ia_pool_handle_bytes(a), ia_embedder_bytes(emb));
    CHECK_EQ_INT(ia_embedder_bytes(emb), est_bert); /* the estimate is the real count */
    const char *text = "the pool shares this model";
    size_t dim = ia_embedder_dim(emb);
    float *v1 = calloc(dim, sizeof(float)), *v2 = calloc(dim, sizeof(float));
    CHECK_OK(ia_embedder_embed(emb, &text, NULL, 1, v1));
    /* the same directory through another spelling is the same model */
    char other[4200];
    snprintf(other, sizeof other, "%s/../tiny-bert", bert);
    CHECK_OK(ia_pool_acquire_embedder(pool, other, &opts, &a2));
    CHECK(a2 && ia_pool_handle_get(a2) == emb);
    ia_pool_release(a2);
    ia_pool_release(a);
    CHECK_OK(ia_pool_acquire_embedder(pool, distil, &opts, &b)); /* evicts tiny-bert */
    if (b) /* DistilBERT spells its sizes dim and hidden_dim: the estimate reads those too */
        CHECK_EQ_INT(ia_pool_handle_bytes(b), est_distil);
    ia_pool_stats s;
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.evictions, 1);
    CHECK_EQ_INT(s.loaded, 1);
    CHECK(s.peak_bytes <= s.budget);
    ia_pool_release(b);
    /* back again: a fresh load gives the same embedding */
    CHECK_OK(ia_pool_acquire_embedder(pool, bert, &opts, &a));
    if (a) {
        CHECK_OK(ia_embedder_embed(ia_pool_handle_get(a), &text, NULL, 1, v2));
        CHECK(memcmp(v1, v2, dim * sizeof(float)) == 0);
        ia_pool_release(a);
    }
    /* different options are a different model */
    ia_embedder_options other_opts = opts;
    other_opts.normalize = 0;
    CHECK_OK(ia_pool_acquire_embedder(pool, bert, &other_opts, &a));
    ia_pool_stats_get(pool, &s);
    CHECK_EQ_INT(s.misses, 4);
    ia_pool_release(a);
    CHECK_ERR(ia_pool_acquire_embedder(pool, "/nonexistent/model", &opts, &a), IA_ENOTFOUND,
              "/nonexistent/model");
    free(v1);
    free(v2);
    CHECK_OK(ia_pool_destroy(pool));
}
#endif
