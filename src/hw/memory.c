/*
 * memory.c: the "memory" and "cgroup" probes.
 *
 * /proc/meminfo says what the machine has; the memory cgroup says what this
 * process may take of it, which in a container is often far less. Limits
 * are inherited, so the probe walks from the process's own cgroup (named in
 * /proc/self/cgroup) up to the root and keeps the tightest limit it meets;
 * with a cgroup namespace the own path may not exist in the mounted tree,
 * and the walk then simply finds the root's files. cgroup v2 is tried first
 * (memory.max, "max" = none), then v1 (memory.limit_in_bytes, where a value
 * near 2^63 = none). usable = min(MemAvailable, limit - usage).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"

typedef struct cg_layout {
    int version;
    const char *base; /* mount point of the memory hierarchy */
    const char *limit_file;
    const char *usage_file;
} cg_layout;

static const cg_layout cg_v2 = {2, "/sys/fs/cgroup", "memory.max", "memory.current"};
static const cg_layout cg_v1 = {1, "/sys/fs/cgroup/memory", "memory.limit_in_bytes",
                                "memory.usage_in_bytes"};

typedef struct cg_result {
    int levels;       /* cgroups on the path that had a limit file */
    uint64_t limit;   /* tightest limit; 0 none */
    uint64_t usage;   /* usage where that limit is set (else of the deepest level) */
    char own[1024];   /* the process's cgroup path, "/" when unknown */
    char where[1100]; /* the cgroup directory that set the limit */
} cg_result;

/* A limit file's value: true with *limit 0 for "no limit". */
static bool read_limit(const hw_ctx *c, const char *path, uint64_t *limit) {
    char line[64];
    if (!hw_read_line(c, path, line, sizeof line))
        return false;
    if (strcmp(line, "max") == 0) {
        *limit = 0;
        return true;
    }
    uint64_t v;
    if (!hw_read_u64(c, path, &v))
        return false;
    *limit = v >= HW_CGROUP_V1_UNLIMITED ? 0 : v;
    return true;
}

/* Walks from r->own up to the root of layout's hierarchy. */
static void cg_walk(const hw_ctx *c, const cg_layout *l, cg_result *r) {
    char dir[1024], path[1200];
    hw_copy(dir, sizeof dir, strcmp(r->own, "/") == 0 ? "" : r->own);
    bool deepest_usage = false;
    for (;;) {
        uint64_t limit, usage = 0;
        snprintf(path, sizeof path, "%s%s/%s", l->base, dir, l->limit_file);
        if (read_limit(c, path, &limit)) {
            r->levels++;
            snprintf(path, sizeof path, "%s%s/%s", l->base, dir, l->usage_file);
            bool have_usage = hw_read_u64(c, path, &usage);
            if (limit && (!r->limit || limit < r->limit)) {
                r->limit = limit;
                r->usage = have_usage ? usage : 0;
                snprintf(r->where, sizeof r->where, "%s%s", l->base, dir);
            } else if (!r->limit && !deepest_usage && have_usage) {
                r->usage = usage;
            }
            deepest_usage |= have_usage;
        }
        if (!dir[0])
            break;
        char *slash = strrchr(dir, '/');
        *slash = '\0'; /* dir starts with '/', so there is one */
    }
}

static int probe_cgroup(const hw_ctx *c, cg_result *r) {
    char *self = hw_read_file(c, "/proc/self/cgroup", 64 * 1024);
    const cg_layout *layouts[] = {&cg_v2, &cg_v1};
    int version = 0;
    for (int i = 0; i < 2 && !version; i++) {
        memset(r, 0, sizeof *r);
        if (!self ||
            !hw_cgroup_own_path(self, strlen(self), layouts[i]->version, r->own, sizeof r->own))
            hw_copy(r->own, sizeof r->own, "/");
        cg_walk(c, layouts[i], r);
        if (r->levels)
            version = layouts[i]->version;
    }
    free(self);
    if (!version) {
        memset(r, 0, sizeof *r);
        hw_copy(r->own, sizeof r->own, "/");
        /* A v2 hierarchy whose memory controller is on but that set no
         * limit files on our path (the root cgroup has none). */
        char *controllers = hw_read_file(c, "/sys/fs/cgroup/cgroup.controllers", 4096);
        if (controllers && strstr(controllers, "memory"))
            version = 2;
        free(controllers);
    }
    return version;
}

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

void hw_probe_memory(const hw_ctx *c, ia_hw_info *info) {
    ia_hw_memory *m = &info->memory;
    char *text = hw_read_file(c, "/proc/meminfo", 1 << 20);
    bool have_text = text != NULL;
    size_t len = text ? strlen(text) : 0;
    bool have_total = text && hw_meminfo_value(text, len, "MemTotal", &m->total);
    bool have_available = text && hw_meminfo_value(text, len, "MemAvailable", &m->available);
    /* Kernels before 3.14 have no MemAvailable: free memory is a lower bound. */
    bool have_free =
        !have_available && text && hw_meminfo_value(text, len, "MemFree", &m->available);
    free(text);

    cg_result r;
    m->cgroup_version = probe_cgroup(c, &r);
    m->cgroup_limit = r.limit;
    m->cgroup_usage = r.usage;
    m->usable = hw_memory_usable(m->available, m->cgroup_limit, m->cgroup_usage);

    if (!have_text)
        hw_add_probe(info, "memory", false, 0, "no /proc/meminfo under %s", hw_root_name(c));
    else if (!have_total)
        hw_add_probe(info, "memory", false, 0, "no MemTotal line in %s/proc/meminfo", c->root);
    else
        hw_add_probe(info, "memory", true, 0, "MemTotal %.0f MiB, %s %.0f MiB, usable %.0f MiB",
                     mib(m->total),
                     have_available ? "MemAvailable"
                     : have_free    ? "MemFree (no MemAvailable)"
                                    : "available unknown",
                     mib(m->available), mib(m->usable));

    if (!m->cgroup_version)
        hw_add_probe(info, "cgroup", false, 0,
                     "no /sys/fs/cgroup/memory.max or memory/memory.limit_in_bytes under %s",
                     hw_root_name(c));
    else if (m->cgroup_limit)
        hw_add_probe(info, "cgroup", true, 0,
                     "cgroup v%d %s: limit %.0f MiB set at %s, usage %.0f MiB", m->cgroup_version,
                     r.own, mib(m->cgroup_limit), r.where, mib(m->cgroup_usage));
    else
        hw_add_probe(info, "cgroup", true, 0, "cgroup v%d %s: no memory limit, usage %.0f MiB",
                     m->cgroup_version, r.own, mib(m->cgroup_usage));
}
