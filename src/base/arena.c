/*
 * Bump arena for per-request scratch. Blocks are chained; a reset frees all
 * but the largest block, so after a few requests of a steady workload the
 * arena is one block and allocation is a pointer bump.
 */
#include "ia/base.h"

#include <stdlib.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t size;
    size_t used;
    _Alignas(64) unsigned char data[];
} arena_block;

struct ia_arena {
    arena_block *head; /* current block; older ones follow */
    size_t initial;
    size_t used_total;
};

static arena_block *block_new(size_t size) {
    arena_block *b = ia_malloc_aligned(sizeof *b + size, 64);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

ia_arena *ia_arena_create(size_t initial_bytes) {
    ia_arena *a = ia_calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->initial = initial_bytes ? initial_bytes : 1 << 16;
    return a;
}

void ia_arena_destroy(ia_arena *a) {
    if (!a)
        return;
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        ia_free_aligned(b);
    }
    free(a);
}

void *ia_arena_alloc(ia_arena *a, size_t size, size_t align) {
    arena_block *b = a->head;
    if (b) {
        size_t start = (b->used + align - 1) & ~(align - 1);
        if (start <= b->size && size <= b->size - start) {
            b->used = start + size;
            a->used_total += size;
            return b->data + start;
        }
    }
    size_t want = b ? b->size * 2 : a->initial, need;
    if (!ia_size_add(size, align, &need)) {
        ia_error_set(IA_ENOMEM, "arena allocation of %zu bytes overflows", size);
        return NULL;
    }
    if (want < need)
        want = need;
    arena_block *nb = block_new(want);
    if (!nb)
        return NULL;
    nb->next = b;
    a->head = nb;
    size_t start = ((uintptr_t)nb->data + align - 1) / align * align - (uintptr_t)nb->data;
    nb->used = start + size;
    a->used_total += size;
    return nb->data + start;
}

void ia_arena_reset(ia_arena *a) {
    arena_block *keep = a->head;
    for (arena_block *b = a->head; b; b = b->next)
        if (b->size > keep->size)
            keep = b;
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (b != keep)
            ia_free_aligned(b);
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->used_total = 0;
}

size_t ia_arena_used(const ia_arena *a) { return a->used_total; }
