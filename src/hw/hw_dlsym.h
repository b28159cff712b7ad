/*
 * hw_dlsym.h: filling a table of vendor entry points from a dlopen'ed library.
 *
 * The accelerator probes never include a vendor header: each declares the few
 * function-pointer types it calls, gathers them in a struct, and lists
 * (symbol name, offset in that struct) pairs here. ISO C has no conversion
 * from dlsym's void * to a function pointer, so the address is copied in
 * bytes, as POSIX requires a void * and a function pointer to share a form.
 */
#ifndef IA_HW_DLSYM_H
#define IA_HW_DLSYM_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct hw_sym {
    const char *name;
    size_t offset; /* offsetof the function pointer in the api struct */
    bool optional; /* absent in older releases; the caller checks for NULL */
} hw_sym;

/* Resolves every entry of syms into api. Returns the name of the first
 * required symbol that is missing, or NULL when all required ones resolved. */
static inline const char *hw_dlsym_all(void *lib, const hw_sym *syms, size_t n, void *api) {
    for (size_t i = 0; i < n; i++) {
        void *addr = dlsym(lib, syms[i].name);
        if (!addr && !syms[i].optional)
            return syms[i].name;
        memcpy((char *)api + syms[i].offset, &addr, sizeof addr);
    }
    return NULL;
}

#endif /* IA_HW_DLSYM_H */
