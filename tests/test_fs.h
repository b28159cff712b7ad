/*
 * Scratch directories for tests: temp_dir() makes a fresh one under /tmp
 * (malloc'd path, caller frees) and rm_rf() removes a tree. nftw needs
 * _GNU_SOURCE (or _XOPEN_SOURCE 500) defined before the first include.
 */
#ifndef IA_TEST_FS_H
#define IA_TEST_FS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "ia/base.h"

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

#endif /* IA_TEST_FS_H */
