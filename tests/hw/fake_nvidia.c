/*
 * fake_nvidia.c: a stand-in for libcuda.so.1 and libnvidia-ml.so.1 that the
 * NVIDIA probe's tests load through IA_HW_LIB_CUDA / IA_HW_LIB_NVML.
 *
 * It exports the entry points the probe calls with the signatures of the
 * CUDA 13 and NVML headers, and describes two GPUs. NVML lists them in the
 * opposite order to CUDA and spells PCI addresses its own way ("00000000:3B:
 * 00.0"), so the probe's join by PCI address is what puts NVML's free memory
 * on the right CUDA device. IA_FAKE_CUDA_FAIL=1 makes cuInit fail with
 * CUDA_ERROR_NO_DEVICE, to exercise the NVML-only path. This checks the
 * probe's logic, not the real ABI: that is checked on a real GPU by
 * scripts/device/hw_check.sh.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct fake_gpu {
    const char *name;
    int bus, cc_major, cc_minor, sms;
    size_t total;
    unsigned long long nvml_total, nvml_free;
} fake_gpu;

static const fake_gpu gpus[2] = {
    {"IA Fake H100 80GB HBM3", 0x3b, 9, 0, 132, 85031714816ull, 85520809984ull, 84813938688ull},
    {"IA Fake A100-SXM4-40GB", 0x86, 8, 0, 108, 42297524224ull, 42949672960ull, 1073741824ull},
};

static int cuda_fails(void) {
    const char *e = getenv("IA_FAKE_CUDA_FAIL");
    return e && *e == '1';
}

/* ---- CUDA driver API ---- */

EXPORT int cuInit(unsigned int flags) { return flags ? 1 : cuda_fails() ? 100 : 0; }
EXPORT int cuDriverGetVersion(int *v) {
    *v = 13000;
    return 0;
}
EXPORT int cuDeviceGetCount(int *n) {
    *n = 2;
    return 0;
}
EXPORT int cuDeviceGet(int *dev, int ordinal) {
    if (ordinal < 0 || ordinal > 1)
        return 101;
    *dev = ordinal + 10; /* handles are not ordinals */
    return 0;
}
static const fake_gpu *gpu_of(int dev) {
    return dev == 10 ? &gpus[0] : dev == 11 ? &gpus[1] : NULL;
}
EXPORT int cuDeviceGetName(char *name, int len, int dev) {
    const fake_gpu *g = gpu_of(dev);
    if (!g || len <= 0)
        return 101;
    snprintf(name, (size_t)len, "%s", g->name);
    return 0;
}
EXPORT int cuDeviceTotalMem_v2(size_t *bytes, int dev) {
    const fake_gpu *g = gpu_of(dev);
    if (!g)
        return 101;
    *bytes = g->total;
    return 0;
}
EXPORT int cuDeviceGetAttribute(int *v, int attr, int dev) {
    const fake_gpu *g = gpu_of(dev);
    if (!g)
        return 101;
    switch (attr) {
    case 16:
        *v = g->sms;
        return 0;
    case 33:
        *v = g->bus;
        return 0;
    case 34:
        *v = 0;
        return 0;
    case 50:
        *v = 0;
        return 0;
    case 75:
        *v = g->cc_major;
        return 0;
    case 76:
        *v = g->cc_minor;
        return 0;
    default:
        return 1;
    }
}
EXPORT int cuGetErrorName(int err, const char **name) {
    *name = err == 100 ? "CUDA_ERROR_NO_DEVICE" : err == 101 ? "CUDA_ERROR_INVALID_DEVICE" : NULL;
    return *name ? 0 : 1;
}

/* ---- NVML ---- */

typedef struct nvml_pci {
    char bus_id_legacy[16];
    unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci;
typedef struct nvml_memory {
    unsigned long long total, free, used;
} nvml_memory;

/* NVML's order is the reverse of CUDA's. */
static const fake_gpu *nvml_gpu(void *h) {
    return h == (void *)&gpus[1] ? &gpus[1] : h == (void *)&gpus[0] ? &gpus[0] : NULL;
}
EXPORT int nvmlInit_v2(void) { return 0; }
EXPORT int nvmlShutdown(void) { return 0; }
EXPORT const char *nvmlErrorString(int r) { return r == 0 ? "Success" : "Invalid Argument"; }
EXPORT int nvmlSystemGetDriverVersion(char *v, unsigned int len) {
    snprintf(v, len, "580.65.06");
    return 0;
}
EXPORT int nvmlDeviceGetCount_v2(unsigned int *n) {
    *n = 2;
    return 0;
}
EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
    if (i > 1)
        return 2;
    *h = (void *)&gpus[1 - i];
    return 0;
}
EXPORT int nvmlDeviceGetName(void *h, char *name, unsigned int len) {
    const fake_gpu *g = nvml_gpu(h);
    if (!g)
        return 2;
    snprintf(name, len, "%s", g->name);
    return 0;
}
EXPORT int nvmlDeviceGetMemoryInfo(void *h, nvml_memory *m) {
    const fake_gpu *g = nvml_gpu(h);
    if (!g)
        return 2;
    m->total = g->nvml_total;
    m->free = g->nvml_free;
    m->used = g->nvml_total - g->nvml_free;
    return 0;
}
EXPORT int nvmlDeviceGetPciInfo_v3(void *h, nvml_pci *p) {
    const fake_gpu *g = nvml_gpu(h);
    if (!g)
        return 2;
    memset(p, 0, sizeof *p);
    snprintf(p->bus_id_legacy, sizeof p->bus_id_legacy, "0000:%02X:00.0", (unsigned)g->bus);
    p->bus = (unsigned)g->bus;
    snprintf(p->bus_id, sizeof p->bus_id, "00000000:%02X:00.0", (unsigned)g->bus);
    return 0;
}
EXPORT int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    const fake_gpu *g = nvml_gpu(h);
    if (!g)
        return 2;
    *major = g->cc_major;
    *minor = g->cc_minor;
    return 0;
}
