/*
 * base: the bottom layer every other module stands on.
 *
 * Status codes and thread-local error messages, logging, a bump arena for
 * per-request scratch, the process-wide thread pool, read-only file mapping,
 * JSON loading (jansson) with errors that name the file and position, and
 * UTF-8 validation. Nothing here knows about models, tensors or IPFS.
 */
#ifndef IA_BASE_H
#define IA_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------ */

/* Every fallible function returns one of these; IA_OK is zero. The detail
 * (what, where, why) goes to a thread-local message set with ia_error_set. */
typedef enum ia_status {
    IA_OK = 0,
    IA_EINVAL,       /* bad argument or bad user input */
    IA_ENOMEM,       /* allocation failed or a size overflowed */
    IA_EIO,          /* file or device I/O failed */
    IA_EPARSE,       /* malformed file or document */
    IA_EUNSUPPORTED, /* well-formed but not something we handle (yet) */
    IA_ENOTFOUND,    /* a named file, tensor, key or token is missing */
    IA_ERANGE,       /* a value is outside what the format or model allows */
    IA_EINTERNAL,    /* a broken invariant: a bug */
} ia_status;

/* Records a message for the calling thread and returns `status`, so that
 * `return ia_error_set(IA_EPARSE, "...")` reads as one statement. */
ia_status ia_error_set(ia_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message (adds where to a lower-level why). */
void ia_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The calling thread's last message; "" when none. Valid until the next
 * ia_error_* call on this thread. */
const char *ia_error_message(void);
void ia_error_clear(void);

/* A short stable name for a status ("parse error", ...). */
const char *ia_status_str(ia_status status);

/* ---- logging ------------------------------------------------------------ */

typedef enum ia_log_level {
    IA_LOG_ERROR = 0,
    IA_LOG_WARN,
    IA_LOG_INFO,
    IA_LOG_DEBUG,
} ia_log_level;

/* Writes one line to stderr when `level` is at or below the current level.
 * The level starts from the IA_LOG environment variable (error, warn, info,
 * debug), default warn. */
void ia_log(ia_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ia_log_set_level(ia_log_level level);
ia_log_level ia_log_get_level(void);
/* Parses "error", "warn", "info" or "debug". */
ia_status ia_log_level_parse(const char *name, ia_log_level *out);

/* ---- checked sizes and allocation ---------------------------------------- */

/* *out = a * b (or a + b); false on overflow. */
static inline bool ia_size_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool ia_size_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* malloc/calloc/realloc that set an IA_ENOMEM message on failure (they still
 * return NULL: the caller returns IA_ENOMEM). ia_malloc_array checks n*size. */
void *ia_malloc(size_t size);
void *ia_calloc(size_t n, size_t size);
void *ia_malloc_array(size_t n, size_t size);
void *ia_realloc_array(void *ptr, size_t n, size_t size);
/* Grows the array *items (of *cap elements of elem bytes) to hold at least
 * need, doubling from first_cap; false (IA_ENOMEM set) when it cannot, the
 * array left as it was. */
bool ia_array_reserve(void *items, size_t *cap, size_t need, size_t elem, size_t first_cap);
/* Aligned allocation (alignment a power of two >= sizeof(void*)); free with ia_free_aligned. */
void *ia_malloc_aligned(size_t size, size_t alignment);
void ia_free_aligned(void *ptr);
char *ia_strdup(const char *s);
char *ia_strndup(const char *s, size_t n);

/* ---- arena --------------------------------------------------------------- */

/* A bump allocator for per-request scratch: allocations live until the next
 * reset. It grows by chaining blocks; reset keeps the largest block so that a
 * steady workload stops allocating. Not thread-safe. */
typedef struct ia_arena ia_arena;

ia_arena *ia_arena_create(size_t initial_bytes);
void ia_arena_destroy(ia_arena *arena);
/* Returns `size` bytes aligned to `align` (a power of two), or NULL with an
 * IA_ENOMEM message. */
void *ia_arena_alloc(ia_arena *arena, size_t size, size_t align);
void ia_arena_reset(ia_arena *arena);
/* Bytes handed out since the last reset. */
size_t ia_arena_used(const ia_arena *arena);

/* ---- thread pool ----------------------------------------------------------- */

/* One process-wide pool of worker threads; the calling thread takes part in
 * every job, so a pool of n threads starts n-1 workers. Jobs are parallel-for
 * loops over task indices [0, n_tasks); tasks are claimed dynamically.
 * Workers spin briefly between jobs (kernels run in quick succession) and
 * then sleep. One job runs at a time: ia_threadpool_run serialises callers. */
typedef struct ia_threadpool ia_threadpool;

/* fn(ctx, task, thread): thread is in [0, ia_threadpool_size()). */
typedef void (*ia_task_fn)(void *ctx, size_t task, int thread);

ia_threadpool *ia_threadpool_create(int n_threads);
void ia_threadpool_destroy(ia_threadpool *pool);
int ia_threadpool_size(const ia_threadpool *pool);
/* Runs fn for every task and returns when all are done. A NULL pool or a
 * single task runs inline on the caller. */
void ia_threadpool_run(ia_threadpool *pool, size_t n_tasks, ia_task_fn fn, void *ctx);

/* Physical cores this process may use (affinity mask and cgroup quota taken
 * into account); at least 1. */
int ia_cpu_physical_cores(void);

/* ---- files ------------------------------------------------------------------- */

/* A read-only mapping of a whole file. Empty files map to data == NULL, size 0. */
typedef struct ia_mapped_file {
    const uint8_t *data;
    size_t size;
} ia_mapped_file;

ia_status ia_file_map(const char *path, ia_mapped_file *out);
void ia_file_unmap(ia_mapped_file *mf);
/* Drops the mapping's resident pages from this process (they come back from
 * the page cache on the next touch). For data already copied elsewhere, such
 * as weights after packing, so that the process holds one copy. */
void ia_file_drop_pages(const ia_mapped_file *mf);
/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees);
 * fails with IA_ERANGE past max_bytes. */
ia_status ia_file_read_all(const char *path, size_t max_bytes, char **out, size_t *out_len);
/* The same for an open stream (stdin, a pipe); `what` names it in errors. */
ia_status ia_read_stream(FILE *f, const char *what, size_t max_bytes, char **out, size_t *out_len);
bool ia_file_exists(const char *path);

/* Texts of a file holding one text per line ("-" for stdin): split on '\n'
 * only, a trailing '\r' dropped, no text after a final newline, an empty
 * line an empty text. Every line must be valid UTF-8: the error names the
 * file, line and byte. lines[i] is NUL-terminated inside buffer. */
typedef struct ia_text_lines {
    char **lines;
    size_t *lens;
    size_t n;
    char *buffer; /* owns the text */
} ia_text_lines;
ia_status ia_text_lines_read(const char *path, size_t max_bytes, ia_text_lines *out);
void ia_text_lines_free(ia_text_lines *tl);
/* Joins a directory and a relative name into a malloc'd path (caller frees). */
char *ia_path_join(const char *dir, const char *name);

/* ---- JSON (jansson) ----------------------------------------------------------- */

/* Opaque to callers that don't include <jansson.h>. */
struct json_t;

/* Parses a JSON document of at most max_bytes from memory or from a file;
 * errors name `what` (usually the path) with line and column. The caller owns
 * the result (json_decref). */
ia_status ia_json_parse(const char *text, size_t len, const char *what, struct json_t **out);
ia_status ia_json_load_file(const char *path, size_t max_bytes, struct json_t **out);

/* ---- UTF-8 ---------------------------------------------------------------------- */

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or values
 * past U+10FFFF); otherwise *bad_offset is the first bad byte's offset. */
bool ia_utf8_valid(const char *s, size_t len, size_t *bad_offset);

/* ---- time ---------------------------------------------------------------------- */

/* Monotonic clock in seconds. */
double ia_time_now(void);

/* ---- random numbers ---------------------------------------------------------- */

/* xoshiro256** seeded through splitmix64 (src/base/rng.c): the same sequence
 * for a seed everywhere; not for secrets. A plain value, no cleanup. */
typedef struct ia_rng {
    uint64_t s[4];
} ia_rng;
void ia_rng_seed(ia_rng *r, uint64_t seed);
uint64_t ia_rng_next(ia_rng *r);
/* Uniform in [0, 1): 53 random bits (double), 24 (float). */
double ia_rng_uniform(ia_rng *r);
float ia_rng_uniform_f32(ia_rng *r);

#ifdef __cplusplus
}
#endif

#endif /* IA_BASE_H */
