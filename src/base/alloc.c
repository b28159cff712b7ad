/*
 * Allocation wrappers that check size arithmetic and record an IA_ENOMEM
 * message, so callers can simply return IA_ENOMEM on NULL.
 */
#include "ia/base.h"

#include <stdlib.h>
#include <string.h>

void *ia_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        ia_error_set(IA_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *ia_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ia_error_set(IA_ENOMEM, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *ia_malloc_array(size_t n, size_t size) {
    size_t total;
    if (!ia_size_mul(n, size, &total)) {
        ia_error_set(IA_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    return ia_malloc(total);
}

void *ia_realloc_array(void *ptr, size_t n, size_t size) {
    size_t total;
    if (!ia_size_mul(n, size, &total)) {
        ia_error_set(IA_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = realloc(ptr, total ? total : 1);
    if (!p)
        ia_error_set(IA_ENOMEM, "out of memory allocating %zu bytes", total);
    return p;
}

bool ia_array_reserve(void *items, size_t *cap, size_t need, size_t elem, size_t first_cap) {
    void **p = items;
    if (need <= *cap)
        return true;
    size_t cap2 = *cap ? *cap : (first_cap ? first_cap : 1);
    while (cap2 < need)
        if (!ia_size_mul(cap2, 2, &cap2)) {
            ia_error_set(IA_ENOMEM, "array of %zu elements overflows", need);
            return false;
        }
    void *more = ia_realloc_array(*p, cap2, elem);
    if (!more)
        return false;
    *p = more;
    *cap = cap2;
    return true;
}

void *ia_malloc_aligned(size_t size, size_t alignment) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, size ? size : alignment) != 0) {
        ia_error_set(IA_ENOMEM, "out of memory allocating %zu bytes aligned to %zu", size,
                     alignment);
        return NULL;
    }
    return p;
}

void ia_free_aligned(void *ptr) { free(ptr); }

char *ia_strndup(const char *s, size_t n) {
    char *p = ia_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *ia_strdup(const char *s) { return ia_strndup(s, strlen(s)); }
