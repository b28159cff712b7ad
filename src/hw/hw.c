/*
 * hw.c: runs the hardware probes and holds what they share: reading files
 * under a root prefix, appending devices and probe records, opening vendor
 * libraries, and the JSON form of the result (`ipfs-accelerate hw --json`).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw_internal.h"

static const char *const cpu_feature_names[IA_CPU_FEATURE_COUNT] = {
    [IA_CPU_SSE4_2] = "sse4_2",
    [IA_CPU_AVX] = "avx",
    [IA_CPU_AVX2] = "avx2",
    [IA_CPU_FMA] = "fma",
    [IA_CPU_F16C] = "f16c",
    [IA_CPU_AVX512F] = "avx512f",
    [IA_CPU_AVX512BW] = "avx512bw",
    [IA_CPU_AVX512VL] = "avx512vl",
    [IA_CPU_AVX512DQ] = "avx512dq",
    [IA_CPU_AVX512_VNNI] = "avx512_vnni",
    [IA_CPU_AVX512_BF16] = "avx512_bf16",
    [IA_CPU_AVX512_FP16] = "avx512_fp16",
    [IA_CPU_AVX_VNNI] = "avx_vnni",
    [IA_CPU_AMX_TILE] = "amx_tile",
    [IA_CPU_AMX_INT8] = "amx_int8",
    [IA_CPU_AMX_BF16] = "amx_bf16",
    [IA_CPU_SHA] = "sha_ni",
    [IA_CPU_AES] = "aes",
    [IA_CPU_NEON] = "asimd",
    [IA_CPU_DOTPROD] = "asimddp",
    [IA_CPU_I8MM] = "i8mm",
    [IA_CPU_ARM_BF16] = "bf16",
    [IA_CPU_SVE] = "sve",
    [IA_CPU_SVE2] = "sve2",
};

const char *ia_cpu_feature_name(ia_cpu_feature f) {
    return (unsigned)f < IA_CPU_FEATURE_COUNT ? cpu_feature_names[f] : "?";
}

static const char *const device_kind_names[IA_DEVICE_KIND_COUNT] = {
    [IA_DEVICE_CPU] = "cpu",       [IA_DEVICE_CUDA] = "cuda",     [IA_DEVICE_ROCM] = "rocm",
    [IA_DEVICE_OPENCL] = "opencl", [IA_DEVICE_VULKAN] = "vulkan", [IA_DEVICE_METAL] = "metal",
};

const char *ia_device_kind_name(ia_device_kind kind) {
    return (unsigned)kind < IA_DEVICE_KIND_COUNT ? device_kind_names[kind] : "?";
}

/* ---- helpers the probes share ------------------------------------------------- */

bool hw_path(const hw_ctx *c, const char *path, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s%s", c->root, path);
    return n >= 0 && (size_t)n < size;
}

char *hw_read_file(const hw_ctx *c, const char *path, size_t max_bytes) {
    char full[4096];
    if (!hw_path(c, path, full, sizeof full)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    /* sysfs and procfs files report size 0: read until EOF or the bound. */
    size_t cap = 4096 < max_bytes ? 4096 : max_bytes, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (len == cap) {
            if (cap >= max_bytes)
                break;
            size_t ncap = cap * 2 < max_bytes ? cap * 2 : max_bytes;
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            free(buf);
            buf = NULL;
            errno = saved;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (buf)
        buf[len] = '\0';
    return buf;
}

bool hw_read_line(const hw_ctx *c, const char *path, char *buf, size_t size) {
    char *text = hw_read_file(c, path, 64 * 1024);
    if (!text)
        return false;
    size_t n = strcspn(text, "\n");
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    text[n] = '\0';
    hw_copy(buf, size, text);
    free(text);
    return true;
}

bool hw_read_u64(const hw_ctx *c, const char *path, uint64_t *out) {
    char line[64];
    if (!hw_read_line(c, path, line, sizeof line) || !isdigit((unsigned char)line[0]))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(line, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

void hw_copy(char *dst, size_t size, const char *src) {
    if (size == 0)
        return;
    size_t n = src ? strlen(src) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

bool hw_add_device(ia_hw_info *info, const ia_hw_device *dev) {
    ia_hw_device *grown = ia_realloc_array(info->devices, info->n_devices + 1, sizeof *grown);
    if (!grown)
        return false;
    info->devices = grown;
    info->devices[info->n_devices++] = *dev;
    return true;
}

void hw_add_probe(ia_hw_info *info, const char *name, bool found, int n_devices, const char *fmt,
                  ...) {
    ia_hw_probe *grown = ia_realloc_array(info->probes, info->n_probes + 1, sizeof *grown);
    if (!grown)
        return;
    info->probes = grown;
    ia_hw_probe *p = &info->probes[info->n_probes++];
    memset(p, 0, sizeof *p);
    hw_copy(p->name, sizeof p->name, name);
    p->found = found;
    p->n_devices = n_devices;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
}

void *hw_dlopen(const char *env, const char *const *names, char *why, size_t why_size) {
    const char *override = env ? getenv(env) : NULL;
    hw_copy(why, why_size, "");
    if (override && *override) {
        void *h = dlopen(override, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *err = dlerror();
            snprintf(why, why_size, "%s (from %s)", err ? err : override, env);
        }
        return h;
    }
    for (size_t i = 0; names[i]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
        const char *err = dlerror();
        if (i == 0) /* the first name's failure says the most */
            hw_copy(why, why_size, err ? err : names[i]);
    }
    return NULL;
}

/* ---- detection ---------------------------------------------------------------- */

ia_hw_options ia_hw_options_default(void) {
    return (ia_hw_options){.root = NULL, .libraries = true, .perf = false};
}

ia_status ia_hw_detect(const ia_hw_options *opts, ia_hw_info **out) {
    ia_hw_options o = opts ? *opts : ia_hw_options_default();
    *out = NULL;
    ia_hw_info *info = ia_calloc(1, sizeof *info);
    if (!info)
        return ia_error_set(IA_ENOMEM, "hardware detection: out of memory");

    char root[4096] = "";
    if (o.root && *o.root && strcmp(o.root, "/") != 0) {
        hw_copy(root, sizeof root, o.root);
        size_t n = strlen(root);
        while (n > 1 && root[n - 1] == '/')
            root[--n] = '\0';
    }
    hw_ctx c = {.root = root, .live = root[0] == '\0', .libraries = o.libraries};

    hw_probe_cpu(&c, info);
    hw_probe_memory(&c, info);
    hw_probe_numa(&c, info);
    hw_probe_thermal(&c, info);
    hw_probe_soc(&c, info);
    hw_probe_nvidia(&c, info);
    hw_probe_rocm(&c, info);
    hw_probe_opencl(&c, info);
    hw_probe_vulkan(&c, info);
    hw_probe_openvino(&c, info);
    hw_probe_apple(&c, info);
    if (o.perf && c.live)
        hw_probe_perf(&o, info);

    *out = info;
    return IA_OK;
}

void ia_hw_info_free(ia_hw_info *info) {
    if (!info)
        return;
    free(info->numa);
    free(info->devices);
    free(info->probes);
    free(info->thermal);
    free(info);
}

const ia_hw_probe *ia_hw_info_probe(const ia_hw_info *info, const char *name) {
    for (size_t i = 0; i < info->n_probes; i++)
        if (strcmp(info->probes[i].name, name) == 0)
            return &info->probes[i];
    return NULL;
}

/* ---- JSON ----------------------------------------------------------------------- */

static void set_str(json_t *o, const char *key, const char *value) {
    json_object_set_new(o, key, value && *value ? json_string(value) : json_null());
}

static void set_u64(json_t *o, const char *key, uint64_t value) {
    json_object_set_new(o, key, value ? json_integer((json_int_t)value) : json_null());
}

static json_t *cpu_json(const ia_hw_cpu *cpu) {
    json_t *o = json_object(), *features = json_array();
    set_str(o, "arch", cpu->arch);
    set_str(o, "vendor", cpu->vendor);
    set_str(o, "model", cpu->model);
    set_u64(o, "sockets", (uint64_t)cpu->sockets);
    set_u64(o, "physical_cores", (uint64_t)cpu->physical_cores);
    set_u64(o, "logical_cores", (uint64_t)cpu->logical_cores);
    for (int f = 0; f < IA_CPU_FEATURE_COUNT; f++)
        if (ia_hw_cpu_has(cpu, (ia_cpu_feature)f))
            json_array_append_new(features, json_string(ia_cpu_feature_name((ia_cpu_feature)f)));
    json_object_set_new(o, "features", features);
    json_t *cache = json_object();
    set_u64(cache, "l1d", cpu->cache_l1d);
    set_u64(cache, "l2", cpu->cache_l2);
    set_u64(cache, "l3", cpu->cache_l3);
    json_object_set_new(o, "cache_bytes", cache);
    set_str(o, "governor", cpu->governor);
    set_u64(o, "freq_max_khz", cpu->freq_max_khz);
    set_str(o, "soc", cpu->soc);
    set_str(o, "soc_vendor", cpu->soc_vendor);
    return o;
}

static json_t *memory_json(const ia_hw_memory *m) {
    json_t *o = json_object();
    set_u64(o, "total", m->total);
    set_u64(o, "available", m->available);
    json_object_set_new(o, "cgroup_version", json_integer(m->cgroup_version));
    set_u64(o, "cgroup_limit", m->cgroup_limit);
    set_u64(o, "cgroup_usage", m->cgroup_usage);
    set_u64(o, "usable", m->usable);
    return o;
}

static json_t *device_json(const ia_hw_device *d) {
    json_t *o = json_object();
    char id[48];
    snprintf(id, sizeof id, "%s:%d", ia_device_kind_name(d->kind), d->index);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "kind", json_string(ia_device_kind_name(d->kind)));
    json_object_set_new(o, "index", json_integer(d->index));
    set_str(o, "name", d->name);
    set_str(o, "vendor", d->vendor);
    set_str(o, "type", d->type);
    set_str(o, "arch", d->arch);
    set_str(o, "driver", d->driver);
    set_str(o, "api_version", d->api_version);
    set_u64(o, "memory_total", d->memory_total);
    set_u64(o, "memory_free", d->memory_free);
    set_u64(o, "compute_units", (uint64_t)d->compute_units);
    if (d->cc_major) {
        char cc[16];
        snprintf(cc, sizeof cc, "%d.%d", d->cc_major, d->cc_minor);
        json_object_set_new(o, "compute_capability", json_string(cc));
    }
    set_str(o, "pci_bus", d->pci_bus);
    return o;
}

json_t *ia_hw_info_to_json(const ia_hw_info *info) {
    json_t *o = json_object();
    json_object_set_new(o, "cpu", cpu_json(&info->cpu));
    json_object_set_new(o, "memory", memory_json(&info->memory));

    json_t *numa = json_array();
    for (size_t i = 0; i < info->n_numa; i++) {
        json_t *n = json_object();
        json_object_set_new(n, "id", json_integer(info->numa[i].id));
        set_u64(n, "memory_total", info->numa[i].memory_total);
        set_str(n, "cpulist", info->numa[i].cpulist);
        json_array_append_new(numa, n);
    }
    json_object_set_new(o, "numa", numa);

    json_t *devices = json_array();
    for (size_t i = 0; i < info->n_devices; i++)
        json_array_append_new(devices, device_json(&info->devices[i]));
    json_object_set_new(o, "devices", devices);

    json_t *thermal = json_array();
    for (size_t i = 0; i < info->n_thermal; i++) {
        json_t *t = json_object();
        set_str(t, "zone", info->thermal[i].zone);
        set_str(t, "type", info->thermal[i].type);
        json_object_set_new(t, "celsius", json_real(info->thermal[i].celsius));
        json_array_append_new(thermal, t);
    }
    json_object_set_new(o, "thermal", thermal);
    set_str(o, "openvino_version", info->openvino_version);

    if (info->perf.measured) {
        json_t *p = json_object();
        json_object_set_new(p, "threads", json_integer(info->perf.threads));
        json_object_set_new(p, "mem_bandwidth_gbs", json_real(info->perf.mem_bandwidth_gbs));
        json_object_set_new(p, "peak_gflops_f32", json_real(info->perf.peak_gflops_f32));
        json_object_set_new(p, "cached", json_boolean(info->perf.cached));
        json_object_set_new(o, "perf", p);
    }

    json_t *probes = json_array();
    for (size_t i = 0; i < info->n_probes; i++) {
        const ia_hw_probe *p = &info->probes[i];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(p->name));
        json_object_set_new(j, "found", json_boolean(p->found));
        json_object_set_new(j, "devices", json_integer(p->n_devices));
        json_object_set_new(j, "message", json_string(p->message));
        json_array_append_new(probes, j);
    }
    json_object_set_new(o, "probes", probes);
    return o;
}
