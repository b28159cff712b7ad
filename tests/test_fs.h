/*
 * Scratch directories for tests: temp_dir() makes a fresh one under /tmp
 * (malloc'd path, caller frees) and rm_rf() removes a tree. scratch_dir() is
 * one such directory per test process, made on first use and removed at
 * exit; scratch_path(name) is "<scratch_dir>/<name>". nftw needs
 * _GNU_SOURCE (or _XOPEN_SOURCE 500) defined before the first include.
 */
#ifndef IA_TEST_FS_H
#define IA_TEST_FS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ia/base.h"

/* n reproducible pseudo-random bytes for seed (an LCG's high bytes). */
static inline void test_fill(uint8_t *p, size_t n, unsigned seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rm_rf(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static inline char *temp_dir(void) {
    char tmpl[] = "/tmp/ia_test_XXXXXX";
    char *dir = mkdtemp(tmpl);
    return dir ? ia_strdup(dir) : NULL;
}

static char *scratch_dir_path;
static pid_t scratch_dir_owner;

static void scratch_dir_remove(void) {
    /* A forked child that exits through exit() must not remove the parent's directory. */
    if (scratch_dir_path && getpid() == scratch_dir_owner) {
        rm_rf(scratch_dir_path);
        free(scratch_dir_path);
        scratch_dir_path = NULL;
    }
}

/* This test process's scratch directory: made on first use, removed at exit. */
static inline const char *scratch_dir(void) {
    if (!scratch_dir_path) {
        scratch_dir_path = temp_dir();
        if (!scratch_dir_path) {
            perror("scratch_dir: mkdtemp");
            exit(1);
        }
        scratch_dir_owner = getpid();
        atexit(scratch_dir_remove);
    }
    return scratch_dir_path;
}

/* "<scratch_dir>/<name>", in one of 8 static buffers used in turn. */
static inline const char *scratch_path(const char *name) {
    static char buf[8][4096];
    static unsigned slot;
    char *out = buf[slot++ % 8];
    if ((size_t)snprintf(out, sizeof buf[0], "%s/%s", scratch_dir(), name) >= sizeof buf[0]) {
        fprintf(stderr, "scratch_path: name too long: %s\n", name);
        exit(1);
    }
    return out;
}

#endif /* IA_TEST_FS_H */
