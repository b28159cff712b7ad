/*
 * The process-wide thread pool.
 *
 * Kernels issue many short parallel loops back to back (a BERT layer is a
 * dozen of them), so the cost that matters is wake-up latency, not
 * throughput of a queue. A job is published by bumping a generation counter;
 * workers spin on it for a while (about a millisecond) before falling back
 * to a condition variable.
 *
 * Tasks are claimed from one 64-bit word holding (job number, next task),
 * so a worker that wakes late can never claim a task of a job other than
 * the one it read: its compare-and-swap fails once the job number moved on.
 * Job descriptors alternate between two slots, and a slot is rewritten only
 * after every task of the job two back has finished, so whatever a worker
 * read before a successful claim is the claimed job's. The caller waits for
 * its job's tasks to finish, not for every worker to check in, so a worker
 * that the OS has descheduled costs nothing when others did its share.
 */
#define _GNU_SOURCE
#include "ia/base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ITERATIONS 200000
#define WAIT_SPINS_BEFORE_YIELD 4096

/* Fields are atomics (read relaxed) because a late worker may read a slot
 * while the caller rewrites it; its claim then fails and it never uses them. */
typedef struct job_slot {
    _Atomic(ia_task_fn) fn;
    _Atomic(void *) ctx;
    atomic_uint n_tasks;
    atomic_uint finished; /* tasks of this job done */
} job_slot;

struct ia_threadpool {
    int n_threads;
    pthread_t *workers;

    pthread_mutex_t run_lock; /* serialises ia_threadpool_run callers */

    pthread_mutex_t lock; /* guards sleeping workers' wake-up */
    pthread_cond_t wake;
    atomic_uint generation; /* bumped once per job, wakes workers */
    atomic_bool stop;

    job_slot slots[2];      /* job j uses slots[j & 1] */
    _Atomic uint64_t claim; /* (job << 32) | next task */
    uint32_t job;           /* the caller's job counter (under run_lock) */
};

typedef struct worker_arg {
    ia_threadpool *pool;
    int index;
} worker_arg;

/* Claims and runs tasks of the current job until none are left. */
static void work(ia_threadpool *pool, int thread) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&pool->claim, memory_order_acquire);
        uint32_t job = (uint32_t)(c >> 32), task = (uint32_t)c;
        job_slot *slot = &pool->slots[job & 1];
        ia_task_fn fn = atomic_load_explicit(&slot->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&slot->ctx, memory_order_relaxed);
        if (task >= atomic_load_explicit(&slot->n_tasks, memory_order_relaxed))
            return;
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        fn(ctx, task, thread);
        atomic_fetch_add_explicit(&slot->finished, 1, memory_order_release);
    }
}

static void *worker_main(void *p) {
    worker_arg arg = *(worker_arg *)p;
    free(p);
    ia_threadpool *pool = arg.pool;
    unsigned seen = 0; /* workers start before any job is published */
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_relaxed)) {
            if (++spins < SPIN_ITERATIONS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = gen;
        work(pool, arg.index);
    }
}

ia_threadpool *ia_threadpool_create(int n_threads) {
    if (n_threads < 1)
        n_threads = 1;
    ia_threadpool *pool = ia_calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (n_threads > 1) {
        pool->workers = ia_calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers)
            goto fail;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = ia_malloc(sizeof *arg);
        if (!arg)
            goto fail_threads;
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->workers[i - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            ia_error_set(IA_ENOMEM, "cannot start worker thread %d of %d", i, n_threads);
            pool->n_threads = i;
            goto fail_threads;
        }
    }
    return pool;
fail_threads:
    ia_threadpool_destroy(pool);
    return NULL;
fail:
    free(pool->workers);
    free(pool);
    return NULL;
}

void ia_threadpool_destroy(ia_threadpool *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->workers[i - 1], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool->workers);
    free(pool);
}

int ia_threadpool_size(const ia_threadpool *pool) { return pool ? pool->n_threads : 1; }

void ia_threadpool_run(ia_threadpool *pool, size_t n_tasks, ia_task_fn fn, void *ctx) {
    if (n_tasks == 0)
        return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1 || n_tasks > UINT32_MAX) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->run_lock);
    uint32_t job = ++pool->job;
    job_slot *slot = &pool->slots[job & 1];
    atomic_store_explicit(&slot->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&slot->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&slot->n_tasks, (uint32_t)n_tasks, memory_order_relaxed);
    atomic_store_explicit(&slot->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->claim, (uint64_t)job << 32, memory_order_release);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    work(pool, 0);
    for (int spins = 0;
         atomic_load_explicit(&slot->finished, memory_order_acquire) < (uint32_t)n_tasks;) {
        if (++spins < WAIT_SPINS_BEFORE_YIELD) {
            cpu_relax();
        } else {
            sched_yield(); /* a descheduled worker holds the last task: let it run */
            spins = 0;
        }
    }
    pthread_mutex_unlock(&pool->run_lock);
}

/* Counts distinct (package, core) pairs among the CPUs in our affinity mask,
 * then caps by a cgroup v2 CPU quota when one is set. */
int ia_cpu_physical_cores(void) {
    cpu_set_t set;
    int allowed = 0, cores = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        allowed = CPU_COUNT(&set);
    if (allowed <= 0)
        allowed = (int)sysconf(_SC_NPROCESSORS_ONLN);
    long seen[1024][2];
    int n_seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n_seen < 1024; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        char path[128];
        long ids[2] = {-1, -1};
        const char *files[2] = {"physical_package_id", "core_id"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, files[k]);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fscanf(f, "%ld", &ids[k]) != 1)
                    ids[k] = -1;
                fclose(f);
            }
        }
        if (ids[1] < 0) {
            ids[0] = -2;
            ids[1] = cpu; /* unknown topology: count the CPU itself */
        }
        bool dup = false;
        for (int i = 0; i < n_seen && !dup; i++)
            dup = seen[i][0] == ids[0] && seen[i][1] == ids[1];
        if (!dup) {
            seen[n_seen][0] = ids[0];
            seen[n_seen][1] = ids[1];
            n_seen++;
        }
    }
    cores = n_seen > 0 ? n_seen : allowed;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char quota[32];
        long period = 0;
        if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
            long q = atol(quota);
            int limit = (int)((q + period - 1) / period);
            if (limit >= 1 && limit < cores)
                cores = limit;
        }
        fclose(f);
    }
    return cores > 0 ? cores : 1;
}
