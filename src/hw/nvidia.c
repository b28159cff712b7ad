/*
 * nvidia.c: NVIDIA GPUs through the CUDA driver API (libcuda) and NVML.
 *
 * The two libraries answer different questions. libcuda is what the engine
 * will run on, so it decides which devices exist and in which order, their
 * compute capability, SM count and total memory. NVML answers without
 * creating a CUDA context: free memory and the driver's version string. The
 * two lists are joined by PCI address. When only one library works the other's
 * half is left blank, and when libcuda fails (a stub, a too-old driver) the
 * GPUs NVML sees are still reported so the user learns they exist.
 *
 * No CUDA or NVML header is included: the types, constants and prototypes
 * below are copied from the documented ABIs (cuda.h of CUDA 13.0, nvml.h).
 * CUresult, CUdevice and nvmlReturn_t are ints; nvmlDevice_t is a pointer.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw_dlsym.h"
#include "hw_internal.h"

/* At most this many GPUs per library: more than any machine has, and a bound
 * on what a broken library can make us allocate. */
#define MAX_GPUS 64

/* ---- the CUDA driver API ---------------------------------------------------------- */

enum {
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33,
    CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34,
    CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

typedef struct cuda_api {
    int (*init)(unsigned int flags);
    int (*driver_get_version)(int *version);
    int (*device_get_count)(int *count);
    int (*device_get)(int *device, int ordinal);
    int (*device_get_name)(char *name, int len, int device);
    int (*device_total_mem)(size_t *bytes, int device); /* cuDeviceTotalMem_v2 */
    int (*device_get_attribute)(int *value, int attribute, int device);
    int (*get_error_name)(int error, const char **name); /* optional */
} cuda_api;

static const hw_sym cuda_syms[] = {
    {"cuInit", offsetof(cuda_api, init), false},
    {"cuDriverGetVersion", offsetof(cuda_api, driver_get_version), false},
    {"cuDeviceGetCount", offsetof(cuda_api, device_get_count), false},
    {"cuDeviceGet", offsetof(cuda_api, device_get), false},
    {"cuDeviceGetName", offsetof(cuda_api, device_get_name), false},
    {"cuDeviceTotalMem_v2", offsetof(cuda_api, device_total_mem), false},
    {"cuDeviceGetAttribute", offsetof(cuda_api, device_get_attribute), false},
    {"cuGetErrorName", offsetof(cuda_api, get_error_name), true},
};

/* The errors a probe meets, for when cuGetErrorName is itself unavailable (a
 * stub library answers every call with CUDA_ERROR_STUB_LIBRARY). */
static const struct {
    int code;
    const char *name;
} cuda_errors[] = {
    {1, "CUDA_ERROR_INVALID_VALUE"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY"},
    {3, "CUDA_ERROR_NOT_INITIALIZED"},
    {4, "CUDA_ERROR_DEINITIALIZED"},
    {34, "CUDA_ERROR_STUB_LIBRARY"},
    {35, "CUDA_ERROR_INSUFFICIENT_DRIVER"},
    {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE"},
    {100, "CUDA_ERROR_NO_DEVICE"},
    {101, "CUDA_ERROR_INVALID_DEVICE"},
    {102, "CUDA_ERROR_DEVICE_NOT_LICENSED"},
    {304, "CUDA_ERROR_OPERATING_SYSTEM"},
    {800, "CUDA_ERROR_NOT_PERMITTED"},
    {801, "CUDA_ERROR_NOT_SUPPORTED"},
    {802, "CUDA_ERROR_SYSTEM_NOT_READY"},
    {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
    {804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"},
    {999, "CUDA_ERROR_UNKNOWN"},
};

static const char *cuda_error_name(const cuda_api *api, int code) {
    const char *name = NULL;
    if (api->get_error_name && api->get_error_name(code, &name) == 0 && name && *name)
        return name;
    for (size_t i = 0; i < sizeof cuda_errors / sizeof cuda_errors[0]; i++)
        if (cuda_errors[i].code == code)
            return cuda_errors[i].name;
    return "CUDA error";
}

/* ---- NVML ---------------------------------------------------------------------------- */

typedef struct nvml_pci_info { /* nvmlPciInfo_t, as filled by nvmlDeviceGetPciInfo_v3 */
    char bus_id_legacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pci_device_id;
    unsigned int pci_subsystem_id;
    char bus_id[32];
} nvml_pci_info;
_Static_assert(sizeof(nvml_pci_info) == 68, "nvmlPciInfo_t is 68 bytes");

typedef struct nvml_memory { /* nvmlMemory_t */
    unsigned long long total, free, used;
} nvml_memory;

typedef struct nvml_api {
    int (*init)(void); /* nvmlInit_v2 */
    int (*shutdown)(void);
    const char *(*error_string)(int result);
    int (*system_get_driver_version)(char *version, unsigned int length);
    int (*device_get_count)(unsigned int *count);                         /* _v2 */
    int (*device_get_handle_by_index)(unsigned int index, void **device); /* _v2 */
    int (*device_get_name)(void *device, char *name, unsigned int length);
    int (*device_get_memory_info)(void *device, nvml_memory *memory);
    int (*device_get_pci_info)(void *device, nvml_pci_info *pci);    /* _v3 */
    int (*device_get_cuda_cc)(void *device, int *major, int *minor); /* optional */
} nvml_api;

static const hw_sym nvml_syms[] = {
    {"nvmlInit_v2", offsetof(nvml_api, init), false},
    {"nvmlShutdown", offsetof(nvml_api, shutdown), false},
    {"nvmlErrorString", offsetof(nvml_api, error_string), false},
    {"nvmlSystemGetDriverVersion", offsetof(nvml_api, system_get_driver_version), false},
    {"nvmlDeviceGetCount_v2", offsetof(nvml_api, device_get_count), false},
    {"nvmlDeviceGetHandleByIndex_v2", offsetof(nvml_api, device_get_handle_by_index), false},
    {"nvmlDeviceGetName", offsetof(nvml_api, device_get_name), false},
    {"nvmlDeviceGetMemoryInfo", offsetof(nvml_api, device_get_memory_info), false},
    {"nvmlDeviceGetPciInfo_v3", offsetof(nvml_api, device_get_pci_info), false},
    {"nvmlDeviceGetCudaComputeCapability", offsetof(nvml_api, device_get_cuda_cc), true},
};

static const char *nvml_error(const nvml_api *api, int code) {
    const char *s = api->error_string ? api->error_string(code) : NULL;
    return s && *s ? s : "NVML error";
}

/* ---- the join ---------------------------------------------------------------------- */

/* One GPU as NVML describes it. */
typedef struct nvml_gpu {
    char name[128];
    char pci_bus[32];
    uint64_t total, free;
    int cc_major, cc_minor;
    bool matched;
} nvml_gpu;

/* What each library found; the probe records are written from these. */
typedef struct nvidia_scan {
    ia_hw_device cuda[MAX_GPUS];
    int n_cuda;
    bool cuda_ok; /* cuInit and cuDeviceGetCount succeeded */
    char cuda_msg[256];
    nvml_gpu nvml[MAX_GPUS];
    int n_nvml;
    bool nvml_ok;
    char nvml_msg[256];
    char driver[64]; /* NVML's driver version, or /proc/driver/nvidia/version's */
} nvidia_scan;

/* Writes a PCI address the way sysfs spells it ("0000:3b:00.0"), so addresses
 * from libcuda (numbers) and NVML ("00000000:3B:00.0") compare equal. */
static void format_pci(char *buf, size_t size, unsigned domain, unsigned bus, unsigned dev,
                       unsigned fn) {
    snprintf(buf, size, "%04x:%02x:%02x.%x", domain, bus & 0xffu, dev & 0x1fu, fn & 7u);
}

static void normalize_nvml_pci(const char *bus_id, char *buf, size_t size) {
    unsigned domain, bus, dev, fn;
    if (sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) == 4)
        format_pci(buf, size, domain, bus, dev, fn);
    else
        hw_copy(buf, size, "");
}

/* The kernel module's version from /proc/driver/nvidia/version, for when NVML
 * cannot say: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  ...". */
static void read_proc_driver(const hw_ctx *c, char *buf, size_t size) {
    char line[256];
    hw_copy(buf, size, "");
    if (!hw_read_line(c, "/proc/driver/nvidia/version", line, sizeof line))
        return;
    const char *p = strstr(line, "Kernel Module");
    if (!p)
        return;
    p += strlen("Kernel Module");
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, " \t");
    if (n > 0 && n < size) {
        memcpy(buf, p, n);
        buf[n] = '\0';
    }
}

/* ---- libcuda ------------------------------------------------------------------------ */

static void fill_cuda_device(const cuda_api *api, int ordinal, int version, ia_hw_device *d) {
    memset(d, 0, sizeof *d);
    d->kind = IA_DEVICE_CUDA;
    d->index = ordinal;
    hw_copy(d->vendor, sizeof d->vendor, "NVIDIA");
    hw_copy(d->type, sizeof d->type, "gpu");
    snprintf(d->api_version, sizeof d->api_version, "%d.%d", version / 1000, (version % 1000) / 10);

    int dev = 0;
    if (api->device_get(&dev, ordinal) != 0)
        return;
    char name[256] = "";
    if (api->device_get_name(name, (int)sizeof name - 1, dev) == 0) {
        name[sizeof name - 1] = '\0';
        hw_copy(d->name, sizeof d->name, name);
    }
    size_t bytes = 0;
    if (api->device_total_mem(&bytes, dev) == 0)
        d->memory_total = bytes;
    int v = 0;
    if (api->device_get_attribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev) == 0 && v > 0)
        d->compute_units = v;
    int major = 0, minor = 0;
    if (api->device_get_attribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev) == 0 &&
        api->device_get_attribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev) == 0 &&
        major > 0 && major < 100 && minor >= 0 && minor < 10) {
        d->cc_major = major;
        d->cc_minor = minor;
        snprintf(d->arch, sizeof d->arch, "sm_%d%d", major, minor);
    }
    int domain = 0, bus = 0, slot = 0;
    if (api->device_get_attribute(&domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, dev) == 0 &&
        api->device_get_attribute(&bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev) == 0 &&
        api->device_get_attribute(&slot, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, dev) == 0)
        format_pci(d->pci_bus, sizeof d->pci_bus, (unsigned)domain, (unsigned)bus, (unsigned)slot,
                   0);
}

static void scan_cuda(nvidia_scan *s) {
    static const char *const names[] = {"libcuda.so.1", "libcuda.so", NULL};
    char why[200];
    cuda_api api = {0};
    void *lib = hw_dlopen("IA_HW_LIB_CUDA", names, why, sizeof why);
    if (!lib) {
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "libcuda not loaded: %s", why);
        return;
    }
    const char *missing =
        hw_dlsym_all(lib, cuda_syms, sizeof cuda_syms / sizeof cuda_syms[0], &api);
    if (missing) {
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "libcuda has no %s: not the CUDA driver library",
                 missing);
        dlclose(lib);
        return;
    }
    /* From here on libcuda stays loaded: after cuInit it owns threads and
     * exit handlers that must not see their code unmapped. */
    int rc = api.init(0);
    if (rc != 0) {
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "cuInit failed: %s (%d)",
                 cuda_error_name(&api, rc), rc);
        return;
    }
    int version = 0, count = 0;
    if (api.driver_get_version(&version) != 0)
        version = 0;
    rc = api.device_get_count(&count);
    if (rc != 0) {
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "cuDeviceGetCount failed: %s (%d)",
                 cuda_error_name(&api, rc), rc);
        return;
    }
    s->cuda_ok = true;
    if (count > MAX_GPUS)
        count = MAX_GPUS;
    for (int i = 0; i < count; i++)
        fill_cuda_device(&api, i, version, &s->cuda[s->n_cuda++]);
    if (count <= 0)
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "CUDA driver API %d.%d: no CUDA devices",
                 version / 1000, (version % 1000) / 10);
    else
        snprintf(s->cuda_msg, sizeof s->cuda_msg, "CUDA driver API %d.%d: %d device%s (%s, %s)",
                 version / 1000, (version % 1000) / 10, count, count == 1 ? "" : "s",
                 s->cuda[0].name[0] ? s->cuda[0].name : "unnamed", s->cuda[0].arch);
}

/* ---- NVML --------------------------------------------------------------------------- */

static void scan_nvml(nvidia_scan *s) {
    static const char *const names[] = {"libnvidia-ml.so.1", "libnvidia-ml.so", NULL};
    char why[200];
    nvml_api api = {0};
    void *lib = hw_dlopen("IA_HW_LIB_NVML", names, why, sizeof why);
    if (!lib) {
        snprintf(s->nvml_msg, sizeof s->nvml_msg, "NVML not loaded: %s", why);
        return;
    }
    const char *missing =
        hw_dlsym_all(lib, nvml_syms, sizeof nvml_syms / sizeof nvml_syms[0], &api);
    if (missing) {
        snprintf(s->nvml_msg, sizeof s->nvml_msg, "NVML library has no %s", missing);
        goto out;
    }
    int rc = api.init();
    if (rc != 0) {
        snprintf(s->nvml_msg, sizeof s->nvml_msg, "nvmlInit_v2 failed: %s (%d)",
                 nvml_error(&api, rc), rc);
        goto out;
    }
    char driver[96] = "";
    if (api.system_get_driver_version(driver, sizeof driver - 1) == 0) {
        driver[sizeof driver - 1] = '\0';
        hw_copy(s->driver, sizeof s->driver, driver);
    }
    unsigned int count = 0;
    rc = api.device_get_count(&count);
    if (rc != 0) {
        snprintf(s->nvml_msg, sizeof s->nvml_msg, "nvmlDeviceGetCount_v2 failed: %s (%d)",
                 nvml_error(&api, rc), rc);
        goto shutdown;
    }
    s->nvml_ok = true;
    if (count > MAX_GPUS)
        count = MAX_GPUS;
    for (unsigned int i = 0; i < count; i++) {
        void *dev = NULL;
        if (api.device_get_handle_by_index(i, &dev) != 0)
            continue;
        nvml_gpu *g = &s->nvml[s->n_nvml++];
        memset(g, 0, sizeof *g);
        char name[128] = "";
        if (api.device_get_name(dev, name, sizeof name - 1) == 0) {
            name[sizeof name - 1] = '\0';
            hw_copy(g->name, sizeof g->name, name);
        }
        nvml_memory mem = {0};
        if (api.device_get_memory_info(dev, &mem) == 0) {
            g->total = mem.total;
            g->free = mem.free;
        }
        nvml_pci_info pci;
        memset(&pci, 0, sizeof pci);
        if (api.device_get_pci_info(dev, &pci) == 0) {
            pci.bus_id[sizeof pci.bus_id - 1] = '\0';
            normalize_nvml_pci(pci.bus_id, g->pci_bus, sizeof g->pci_bus);
        }
        int major = 0, minor = 0;
        if (api.device_get_cuda_cc && api.device_get_cuda_cc(dev, &major, &minor) == 0 &&
            major > 0 && major < 100 && minor >= 0 && minor < 10) {
            g->cc_major = major;
            g->cc_minor = minor;
        }
    }
    snprintf(s->nvml_msg, sizeof s->nvml_msg, "NVML: driver %s, %u GPU%s",
             s->driver[0] ? s->driver : "of unknown version", count, count == 1 ? "" : "s");
shutdown:
    api.shutdown();
out:
    dlclose(lib);
}

/* ---- the probe ------------------------------------------------------------------------ */

static nvml_gpu *find_nvml(nvidia_scan *s, const char *pci_bus) {
    for (int i = 0; pci_bus[0] && i < s->n_nvml; i++)
        if (strcmp(s->nvml[i].pci_bus, pci_bus) == 0)
            return &s->nvml[i];
    return NULL;
}

/* A device from NVML alone: libcuda could not say, but the GPU is there. */
static void device_from_nvml(const nvml_gpu *g, int index, const char *driver, ia_hw_device *d) {
    memset(d, 0, sizeof *d);
    d->kind = IA_DEVICE_CUDA;
    d->index = index;
    hw_copy(d->name, sizeof d->name, g->name);
    hw_copy(d->vendor, sizeof d->vendor, "NVIDIA");
    hw_copy(d->type, sizeof d->type, "gpu");
    hw_copy(d->driver, sizeof d->driver, driver);
    hw_copy(d->pci_bus, sizeof d->pci_bus, g->pci_bus);
    d->memory_total = g->total;
    d->memory_free = g->free;
    if (g->cc_major) {
        d->cc_major = g->cc_major;
        d->cc_minor = g->cc_minor;
        snprintf(d->arch, sizeof d->arch, "sm_%d%d", g->cc_major, g->cc_minor);
    }
}

void hw_probe_nvidia(const hw_ctx *c, ia_hw_info *info) {
    if (!c->libraries) {
        const char *why =
            c->live ? "skipped: vendor libraries disabled" : "skipped: reading a recorded tree";
        hw_add_probe(info, "nvidia", false, 0, "%s", why);
        hw_add_probe(info, "nvml", false, 0, "%s", why);
        return;
    }
    nvidia_scan *s = calloc(1, sizeof *s);
    if (!s) {
        hw_add_probe(info, "nvidia", false, 0, "out of memory");
        hw_add_probe(info, "nvml", false, 0, "out of memory");
        return;
    }
    scan_cuda(s);
    scan_nvml(s);
    if (!s->driver[0])
        read_proc_driver(c, s->driver, sizeof s->driver);

    int from_cuda = 0, from_nvml = 0;
    for (int i = 0; i < s->n_cuda; i++) {
        ia_hw_device *d = &s->cuda[i];
        const nvml_gpu *g = find_nvml(s, d->pci_bus);
        if (g) {
            s->nvml[g - s->nvml].matched = true;
            d->memory_free = g->free;
            if (!d->memory_total)
                d->memory_total = g->total;
        }
        hw_copy(d->driver, sizeof d->driver, s->driver);
        if (hw_add_device(info, d))
            from_cuda++;
    }
    /* Only when libcuda could not enumerate: when it could, a GPU it left out
     * (CUDA_VISIBLE_DEVICES, a MIG layout) is not one this process can use. */
    if (!s->cuda_ok) {
        for (int i = 0; i < s->n_nvml; i++) {
            ia_hw_device d;
            device_from_nvml(&s->nvml[i], from_nvml, s->driver, &d);
            if (hw_add_device(info, &d))
                from_nvml++;
        }
    }

    hw_add_probe(info, "nvidia", from_cuda > 0, from_cuda, "%s", s->cuda_msg);
    if (s->nvml_ok && s->n_nvml > 0) {
        int matched = 0;
        for (int i = 0; i < s->n_nvml; i++)
            matched += s->nvml[i].matched;
        if (from_nvml)
            hw_add_probe(info, "nvml", true, from_nvml, "%s; reported without libcuda",
                         s->nvml_msg);
        else
            hw_add_probe(info, "nvml", true, 0, "%s; %d matched to CUDA devices by PCI address",
                         s->nvml_msg, matched);
    } else {
        hw_add_probe(info, "nvml", false, 0, "%s", s->nvml_msg);
    }
    free(s);
}
