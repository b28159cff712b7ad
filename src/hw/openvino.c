/*
 * openvino.c: whether the OpenVINO runtime is installed, and which version.
 *
 * OpenVINO's C API (libopenvino_c) answers ov_get_openvino_version without
 * creating a core or loading any device plugin, so asking is cheap. The probe
 * looks for a system install: the unversioned name on the loader's path, the
 * archive layout under /opt/intel/openvino, and the versioned names that
 * distribution packages install. The copy bundled in the `openvino` Python
 * wheel is not a system runtime and is not searched; IA_HW_LIB_OPENVINO can
 * point at it (or at any libopenvino_c.so) explicitly.
 */
#define _GNU_SOURCE
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw_dlsym.h"
#include "hw_internal.h"

typedef struct ov_version { /* ov_version_t */
    const char *build_number;
    const char *description;
} ov_version;

typedef struct ov_api {
    int (*get_openvino_version)(ov_version *version); /* returns ov_status_e, OK = 0 */
    void (*version_free)(ov_version *version);
} ov_api;

static const hw_sym ov_syms[] = {
    {"ov_get_openvino_version", offsetof(ov_api, get_openvino_version), false},
    {"ov_version_free", offsetof(ov_api, version_free), false},
};

/* The newest versioned libopenvino_c.so.N a distribution package installed,
 * when the unversioned development symlink is absent. */
static void *open_versioned(void) {
    static const char *const patterns[] = {"/usr/lib/*/libopenvino_c.so.*",
                                           "/usr/lib/libopenvino_c.so.*",
                                           "/usr/local/lib/libopenvino_c.so.*"};
    void *lib = NULL;
    for (size_t i = 0; !lib && i < sizeof patterns / sizeof patterns[0]; i++) {
        glob_t g;
        if (glob(patterns[i], 0, NULL, &g) == 0) {
            for (size_t j = g.gl_pathc; !lib && j-- > 0;) /* sorted: newest last */
                lib = dlopen(g.gl_pathv[j], RTLD_NOW | RTLD_LOCAL);
        }
        globfree(&g);
    }
    return lib;
}

void hw_probe_openvino(const hw_ctx *c, ia_hw_info *info) {
    static const char *const names[] = {
        "libopenvino_c.so", "/opt/intel/openvino/runtime/lib/intel64/libopenvino_c.so",
        "/opt/intel/openvino/runtime/lib/aarch64/libopenvino_c.so", NULL};
    if (!c->libraries) {
        hw_add_probe(info, "openvino", false, 0, "%s",
                     c->live ? "skipped: vendor libraries disabled"
                             : "skipped: reading a recorded tree");
        return;
    }
    char why[200];
    ov_api api = {0};
    const char *override = getenv("IA_HW_LIB_OPENVINO");
    void *lib = hw_dlopen("IA_HW_LIB_OPENVINO", names, why, sizeof why);
    if (!lib && !(override && *override))
        lib = open_versioned();
    if (!lib) {
        hw_add_probe(info, "openvino", false, 0,
                     "OpenVINO runtime not installed as a system library: %s", why);
        return;
    }
    const char *missing = hw_dlsym_all(lib, ov_syms, sizeof ov_syms / sizeof ov_syms[0], &api);
    if (missing) {
        hw_add_probe(info, "openvino", false, 0, "OpenVINO library has no %s", missing);
        dlclose(lib);
        return;
    }
    /* Stays loaded: libopenvino brings TBB, whose threads and exit handlers
     * should not outlive their code. */
    ov_version v = {0};
    int rc = api.get_openvino_version(&v);
    if (rc != 0 || !v.build_number) {
        hw_add_probe(info, "openvino", false, 0, "ov_get_openvino_version failed: status %d", rc);
        return;
    }
    hw_copy(info->openvino_version, sizeof info->openvino_version, v.build_number);
    hw_add_probe(info, "openvino", true, 0, "OpenVINO %s (%s)", v.build_number,
                 v.description ? v.description : "runtime");
    api.version_free(&v);
}
