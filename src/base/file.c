/*
 * Files: read-only mappings (weights are used straight from the page cache),
 * whole-file reads with a size bound, and path helpers.
 */
#include "ia/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ia_status ia_file_map(const char *path, ia_mapped_file *out) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ia_error_set(IA_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ia_error_set(IA_EINVAL, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return IA_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return ia_error_set(IA_EIO, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size,
                            strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return IA_OK;
}

void ia_file_unmap(ia_mapped_file *mf) {
    if (mf->data)
        munmap((void *)mf->data, mf->size);
    mf->data = NULL;
    mf->size = 0;
}

void ia_file_drop_pages(const ia_mapped_file *mf) {
    if (mf->data)
        madvise((void *)mf->data, mf->size, MADV_DONTNEED);
}

ia_status ia_read_stream(FILE *f, const char *what, size_t max_bytes, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len)
        *out_len = 0;
    size_t cap = 4096, len = 0;
    char *buf = ia_malloc(cap);
    if (!buf)
        return IA_ENOMEM;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_bytes + 1) {
                free(buf);
                return ia_error_set(IA_ERANGE, "%s: larger than the %zu-byte limit", what,
                                    max_bytes);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return ia_error_set(IA_ENOMEM, "%s: out of memory reading it", what);
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return ia_error_set(IA_EIO, "%s: read failed", what);
    }
    if (len > max_bytes) {
        free(buf);
        return ia_error_set(IA_ERANGE, "%s: larger than the %zu-byte limit", what, max_bytes);
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
    return IA_OK;
}

ia_status ia_file_read_all(const char *path, size_t max_bytes, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len)
        *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    ia_status st = ia_read_stream(f, path, max_bytes, out, out_len);
    fclose(f);
    return st;
}

bool ia_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *ia_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    bool slash = a > 0 && dir[a - 1] != '/';
    char *p = ia_malloc(a + slash + b + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}
