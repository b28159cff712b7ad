/*
 * rocm.c: AMD GPUs from the KFD topology in sysfs, and HIP when it is there.
 *
 * The amdgpu kernel driver publishes every compute agent under
 * /sys/class/kfd/kfd/topology/nodes/N: a `properties` file of "key value"
 * lines, and mem_banks/M/properties for its memory. That is enough to know a
 * GPU exists, its gfx target, compute units, VRAM and PCI address without any
 * ROCm library, and it works from a recorded tree, so sysfs alone decides the
 * devices. The DRM device behind drm_render_minor adds a marketing name and
 * VRAM in use when the kernel offers them. libamdhip64 is asked only for its
 * version and device count, which go into the probe's message.
 *
 * sysfs here may be a recorded tree from anywhere: every number is parsed
 * strictly and bounded, and a node that does not add up is skipped with its
 * reason rather than reported as a GPU.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw_dlsym.h"
#include "hw_internal.h"

#define KFD_NODES "/sys/class/kfd/kfd/topology/nodes"
#define MAX_NODES 256
#define MAX_BANKS 64
#define AMD_VENDOR_ID 4098 /* 0x1002 */

/* KFD heap types: 1 and 2 are the GPU's own framebuffer (public: reachable
 * through the PCI BAR; private: not), 0 is system memory seen by an APU. */
#define HEAP_FB_PUBLIC 1
#define HEAP_FB_PRIVATE 2

/* ---- "key value" properties files -------------------------------------------------- */

static const char *next_line(const char *line) {
    const char *nl = strchr(line, '\n');
    return nl ? nl + 1 : NULL;
}

/* The value of `key` in a properties text, as an unsigned decimal that must
 * fill the rest of its line. False when absent or malformed. */
static bool prop_u64(const char *text, const char *key, uint64_t *out) {
    size_t klen = strlen(key);
    const char *line = text;
    for (; line; line = next_line(line)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ' ')
            continue;
        const char *v = line + klen + 1;
        if (*v < '0' || *v > '9')
            return false;
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || (*end != '\n' && *end != '\0' && *end != ' ' && *end != '\r'))
            return false;
        *out = n;
        return true;
    }
    return false;
}

/* "gfx" + major in decimal + minor and stepping as one hex digit each, from
 * gfx_target_version = major*10000 + minor*100 + stepping (90010: gfx90a). */
static bool gfx_arch(uint64_t v, char *buf, size_t size) {
    uint64_t major = v / 10000, minor = (v / 100) % 100, step = v % 100;
    if (major < 6 || major > 99 || minor > 15 || step > 15)
        return false;
    snprintf(buf, size, "gfx%u%x%x", (unsigned)major, (unsigned)minor, (unsigned)step);
    return true;
}

/* ---- one node ------------------------------------------------------------------------ */

/* VRAM of node `id`: the sum of its framebuffer banks, bounded. */
static uint64_t node_vram(const hw_ctx *c, unsigned id) {
    uint64_t total = 0;
    for (unsigned b = 0; b < MAX_BANKS; b++) {
        char path[128];
        snprintf(path, sizeof path, KFD_NODES "/%u/mem_banks/%u/properties", id, b);
        char *text = hw_read_file(c, path, 16 * 1024);
        if (!text)
            break;
        uint64_t heap = 0, size = 0;
        if (prop_u64(text, "heap_type", &heap) && prop_u64(text, "size_in_bytes", &size) &&
            (heap == HEAP_FB_PUBLIC || heap == HEAP_FB_PRIVATE) && size <= (1ull << 50) &&
            total + size >= total)
            total += size;
        free(text);
    }
    return total;
}

/* Name and VRAM in use from the DRM device behind the render node, when the
 * kernel exposes them (product_name needs an Instinct or recent Radeon). */
static void drm_details(const hw_ctx *c, uint64_t minor, ia_hw_device *d) {
    char path[128], line[128];
    snprintf(path, sizeof path, "/sys/class/drm/renderD%llu/device/product_name",
             (unsigned long long)minor);
    if (hw_read_line(c, path, line, sizeof line) && line[0])
        hw_copy(d->name, sizeof d->name, line);
    uint64_t total = 0, used = 0;
    snprintf(path, sizeof path, "/sys/class/drm/renderD%llu/device/mem_info_vram_total",
             (unsigned long long)minor);
    bool have_total = hw_read_u64(c, path, &total);
    snprintf(path, sizeof path, "/sys/class/drm/renderD%llu/device/mem_info_vram_used",
             (unsigned long long)minor);
    if (have_total && hw_read_u64(c, path, &used) && used <= total) {
        if (!d->memory_total)
            d->memory_total = total;
        if (total == d->memory_total)
            d->memory_free = total - used;
    }
}

/* Reads node `id`. Returns 1 and fills d for a GPU, 0 for a CPU node, and -1
 * with the reason in why for a node that cannot be trusted. */
static int read_node(const hw_ctx *c, unsigned id, ia_hw_device *d, char *why, size_t why_size) {
    char path[128];
    snprintf(path, sizeof path, KFD_NODES "/%u/properties", id);
    char *text = hw_read_file(c, path, 64 * 1024);
    int ret = -1;
    if (!text) {
        snprintf(why, why_size, "node %u: no properties", id);
        return -1;
    }
    uint64_t simd = 0, gfx = 0, simd_per_cu = 4, cpu_cores = 0, v = 0;
    if (!prop_u64(text, "simd_count", &simd)) {
        snprintf(why, why_size, "node %u: no readable simd_count", id);
        goto out;
    }
    if (simd == 0) { /* a CPU agent */
        ret = 0;
        goto out;
    }
    if (simd > (1u << 20)) {
        snprintf(why, why_size, "node %u: simd_count %llu is not plausible", id,
                 (unsigned long long)simd);
        goto out;
    }
    memset(d, 0, sizeof *d);
    if (prop_u64(text, "gfx_target_version", &gfx)) {
        if (!gfx_arch(gfx, d->arch, sizeof d->arch)) {
            snprintf(why, why_size, "node %u: gfx_target_version %llu is not a gfx target", id,
                     (unsigned long long)gfx);
            goto out;
        }
    } else {
        /* Kernels before gfx_target_version name the target in nodes/N/name. */
        char name[64];
        snprintf(path, sizeof path, KFD_NODES "/%u/name", id);
        if (!hw_read_line(c, path, name, sizeof name) || strncmp(name, "gfx", 3) != 0) {
            snprintf(why, why_size, "node %u: no gfx_target_version", id);
            goto out;
        }
        hw_copy(d->arch, sizeof d->arch, name);
    }
    if (prop_u64(text, "vendor_id", &v) && v != AMD_VENDOR_ID) {
        snprintf(why, why_size, "node %u: vendor_id %llu is not AMD", id, (unsigned long long)v);
        goto out;
    }

    d->kind = IA_DEVICE_ROCM;
    hw_copy(d->vendor, sizeof d->vendor, "AMD");
    prop_u64(text, "cpu_cores_count", &cpu_cores);
    hw_copy(d->type, sizeof d->type, cpu_cores > 0 ? "integrated-gpu" : "gpu");
    if (prop_u64(text, "simd_per_cu", &v) && v > 0 && v <= 64)
        simd_per_cu = v;
    d->compute_units = (int)(simd / simd_per_cu);
    uint64_t dev_id = 0;
    prop_u64(text, "device_id", &dev_id);
    if (dev_id && dev_id <= 0xffff)
        snprintf(d->name, sizeof d->name, "AMD %s (0x%04llx)", d->arch, (unsigned long long)dev_id);
    else
        snprintf(d->name, sizeof d->name, "AMD %s", d->arch);
    uint64_t loc = 0, domain = 0;
    if (prop_u64(text, "location_id", &loc) && loc <= 0xffff) {
        if (!prop_u64(text, "domain", &domain) || domain > 0xffffffffu)
            domain = 0;
        snprintf(d->pci_bus, sizeof d->pci_bus, "%04x:%02x:%02x.%x", (unsigned)domain,
                 (unsigned)(loc >> 8) & 0xffu, (unsigned)(loc >> 3) & 0x1fu, (unsigned)loc & 7u);
    }
    d->memory_total = node_vram(c, id);
    uint64_t minor = 0;
    if (prop_u64(text, "drm_render_minor", &minor) && minor >= 128 && minor < 1024)
        drm_details(c, minor, d);
    ret = 1;
out:
    free(text);
    return ret;
}

/* ---- nodes, in id order ----------------------------------------------------------- */

static int cmp_unsigned(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

/* The numeric entries of the nodes directory, sorted; -1 when it is absent. */
static int list_nodes(const hw_ctx *c, unsigned *ids, int max) {
    char dir[4096];
    if (!hw_path(c, KFD_NODES, dir, sizeof dir))
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        errno = 0;
        unsigned long id = strtoul(e->d_name, &end, 10);
        if (errno || *end || id > 100000)
            continue;
        ids[n++] = (unsigned)id;
    }
    closedir(d);
    qsort(ids, (size_t)n, sizeof *ids, cmp_unsigned);
    return n;
}

/* ---- HIP ------------------------------------------------------------------------------ */

typedef struct hip_api {
    int (*get_device_count)(int *count);
    int (*driver_get_version)(int *version);
    const char *(*get_error_name)(int error); /* optional */
} hip_api;

static const hw_sym hip_syms[] = {
    {"hipGetDeviceCount", offsetof(hip_api, get_device_count), false},
    {"hipDriverGetVersion", offsetof(hip_api, driver_get_version), false},
    {"hipGetErrorName", offsetof(hip_api, get_error_name), true},
};

/* One sentence about HIP for the probe's message; api_version gets HIP's
 * version ("6.3") when it answers. */
static void probe_hip(const hw_ctx *c, char *msg, size_t size, char *api_version, size_t av_size) {
    static const char *const names[] = {"libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5",
                                        "/opt/rocm/lib/libamdhip64.so", NULL};
    if (!c->libraries) {
        snprintf(msg, size, "HIP %s",
                 c->live ? "skipped: vendor libraries disabled"
                         : "skipped: reading a recorded tree");
        return;
    }
    char why[160];
    hip_api api = {0};
    void *lib = hw_dlopen("IA_HW_LIB_HIP", names, why, sizeof why);
    if (!lib) {
        snprintf(msg, size, "HIP not loaded: %s", why);
        return;
    }
    const char *missing = hw_dlsym_all(lib, hip_syms, sizeof hip_syms / sizeof hip_syms[0], &api);
    if (missing) {
        snprintf(msg, size, "HIP library has no %s", missing);
        dlclose(lib);
        return;
    }
    /* Stays loaded: the HIP runtime starts threads on first use. */
    int version = 0, count = 0;
    int rc = api.get_device_count(&count);
    if (rc != 0) {
        const char *name = api.get_error_name ? api.get_error_name(rc) : NULL;
        snprintf(msg, size, "hipGetDeviceCount failed: %s (%d)", name ? name : "HIP error", rc);
        return;
    }
    if (api.driver_get_version(&version) == 0 && version > 0) {
        /* HIP_VERSION = major * 10^7 + minor * 10^5 + patch */
        snprintf(api_version, av_size, "%d.%d", version / 10000000, (version / 100000) % 100);
        snprintf(msg, size, "HIP %s: %d device%s", api_version, count, count == 1 ? "" : "s");
    } else {
        snprintf(msg, size, "HIP: %d device%s", count, count == 1 ? "" : "s");
    }
}

/* ---- the probe ------------------------------------------------------------------------ */

void hw_probe_rocm(const hw_ctx *c, ia_hw_info *info) {
    unsigned ids[MAX_NODES];
    char hip_msg[200] = "", api_version[32] = "", driver[64] = "", archs[64] = "",
         skipped[160] = "";
    int n_nodes = list_nodes(c, ids, MAX_NODES), n_gpus = 0, n_bad = 0;

    probe_hip(c, hip_msg, sizeof hip_msg, api_version, sizeof api_version);
    /* DKMS builds of amdgpu carry their own version; in-tree ones do not. */
    hw_read_line(c, "/sys/module/amdgpu/version", driver, sizeof driver);

    for (int i = 0; i < n_nodes; i++) {
        ia_hw_device d;
        char why[128];
        int r = read_node(c, ids[i], &d, why, sizeof why);
        if (r < 0) {
            if (n_bad++ == 0)
                hw_copy(skipped, sizeof skipped, why);
            continue;
        }
        if (r == 0)
            continue;
        d.index = n_gpus;
        hw_copy(d.driver, sizeof d.driver, driver);
        hw_copy(d.api_version, sizeof d.api_version, api_version);
        if (!hw_add_device(info, &d))
            break;
        if (n_gpus < 4) {
            size_t len = strlen(archs);
            snprintf(archs + len, sizeof archs - len, "%s%s", n_gpus ? ", " : "", d.arch);
        }
        n_gpus++;
    }

    char bad[200] = "";
    if (n_bad)
        snprintf(bad, sizeof bad, "; %d node%s skipped (%s)", n_bad, n_bad == 1 ? "" : "s",
                 skipped);
    if (n_nodes < 0)
        hw_add_probe(info, "rocm", false, 0, "no KFD topology (amdgpu not loaded); %s", hip_msg);
    else if (n_gpus == 0)
        hw_add_probe(info, "rocm", false, 0, "KFD topology has no GPU nodes%s; %s", bad, hip_msg);
    else
        hw_add_probe(info, "rocm", true, n_gpus, "KFD topology: %d GPU%s (%s)%s; %s", n_gpus,
                     n_gpus == 1 ? "" : "s", archs, bad, hip_msg);
}
