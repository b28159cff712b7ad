/*
 * opencl.c: OpenCL platforms and devices through the ICD loader.
 *
 * libOpenCL.so.1 is the Khronos ICD loader: it reads /etc/OpenCL/vendors and
 * loads every installed driver (PoCL, NVIDIA, ROCm, Intel), so one pass over
 * clGetPlatformIDs and clGetDeviceIDs(CL_DEVICE_TYPE_ALL) lists them all. A
 * CPU-only machine with PoCL installed shows its CPU here, which is how the
 * OpenCL path can be tested without a GPU.
 *
 * The types and enum values are those of the OpenCL 1.2 headers (cl.h), which
 * later versions keep: handles are pointers, cl_int and cl_uint are 32-bit,
 * cl_ulong and cl_device_type are 64-bit.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw_dlsym.h"
#include "hw_internal.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

enum {
    CL_PLATFORM_VERSION = 0x0901,
    CL_PLATFORM_NAME = 0x0902,
    CL_PLATFORM_VENDOR = 0x0903,
    CL_DEVICE_TYPE = 0x1000,
    CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002,
    CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F,
    CL_DEVICE_NAME = 0x102B,
    CL_DEVICE_VENDOR = 0x102C,
    CL_DRIVER_VERSION = 0x102D,
    CL_DEVICE_VERSION = 0x102F,
    CL_DEVICE_HOST_UNIFIED_MEMORY = 0x1035,
};

#define CL_DEVICE_TYPE_CPU (1ull << 1)
#define CL_DEVICE_TYPE_GPU (1ull << 2)
#define CL_DEVICE_TYPE_ACCELERATOR (1ull << 3)
#define CL_DEVICE_TYPE_ALL 0xFFFFFFFFull

typedef struct cl_api {
    int32_t (*get_platform_ids)(uint32_t n, void **platforms, uint32_t *n_out);
    int32_t (*get_platform_info)(void *platform, uint32_t param, size_t size, void *value,
                                 size_t *size_out);
    int32_t (*get_device_ids)(void *platform, uint64_t type, uint32_t n, void **devices,
                              uint32_t *n_out);
    int32_t (*get_device_info)(void *device, uint32_t param, size_t size, void *value,
                               size_t *size_out);
} cl_api;

static const hw_sym cl_syms[] = {
    {"clGetPlatformIDs", offsetof(cl_api, get_platform_ids), false},
    {"clGetPlatformInfo", offsetof(cl_api, get_platform_info), false},
    {"clGetDeviceIDs", offsetof(cl_api, get_device_ids), false},
    {"clGetDeviceInfo", offsetof(cl_api, get_device_info), false},
};

static const char *cl_error_name(int32_t code) {
    switch (code) {
    case -1:
        return "CL_DEVICE_NOT_FOUND";
    case -2:
        return "CL_DEVICE_NOT_AVAILABLE";
    case -5:
        return "CL_OUT_OF_RESOURCES";
    case -6:
        return "CL_OUT_OF_HOST_MEMORY";
    case -30:
        return "CL_INVALID_VALUE";
    case -32:
        return "CL_INVALID_PLATFORM";
    case -33:
        return "CL_INVALID_DEVICE";
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "OpenCL error";
    }
}

/* A string property, always NUL-terminated; "" when the query fails. */
static void platform_str(const cl_api *api, void *p, uint32_t param, char *buf, size_t size) {
    buf[0] = '\0';
    if (api->get_platform_info(p, param, size - 1, buf, NULL) != 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

static void device_str(const cl_api *api, void *dev, uint32_t param, char *buf, size_t size) {
    buf[0] = '\0';
    if (api->get_device_info(dev, param, size - 1, buf, NULL) != 0)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

static const char *device_type(uint64_t type, bool unified) {
    if (type & CL_DEVICE_TYPE_GPU)
        return unified ? "integrated-gpu" : "gpu";
    if (type & CL_DEVICE_TYPE_CPU)
        return "cpu";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    return "other";
}

static void fill_device(const cl_api *api, void *dev, int index, ia_hw_device *d) {
    char text[1024]; /* PoCL's version strings run past 100 characters */
    memset(d, 0, sizeof *d);
    d->kind = IA_DEVICE_OPENCL;
    d->index = index;
    device_str(api, dev, CL_DEVICE_NAME, text, sizeof text);
    hw_copy(d->name, sizeof d->name, text);
    device_str(api, dev, CL_DEVICE_VENDOR, text, sizeof text);
    hw_copy(d->vendor, sizeof d->vendor, text);
    device_str(api, dev, CL_DRIVER_VERSION, text, sizeof text);
    hw_copy(d->driver, sizeof d->driver, text);
    /* "OpenCL 3.0 PoCL 3.1 ...": the API version is the second word. */
    device_str(api, dev, CL_DEVICE_VERSION, text, sizeof text);
    unsigned major = 0, minor = 0;
    if (sscanf(text, "OpenCL %u.%u", &major, &minor) == 2)
        snprintf(d->api_version, sizeof d->api_version, "%u.%u", major, minor);

    uint64_t type = 0, mem = 0;
    uint32_t units = 0, unified = 0;
    if (api->get_device_info(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL) != 0)
        type = 0;
    if (api->get_device_info(dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL) !=
        0)
        unified = 0;
    hw_copy(d->type, sizeof d->type, device_type(type, unified != 0));
    if (api->get_device_info(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL) == 0)
        d->memory_total = mem;
    if (api->get_device_info(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL) == 0 &&
        units < (1u << 24))
        d->compute_units = (int)units;
}

void hw_probe_opencl(const hw_ctx *c, ia_hw_info *info) {
    static const char *const names[] = {"libOpenCL.so.1", "libOpenCL.so", NULL};
    if (!c->libraries) {
        hw_add_probe(info, "opencl", false, 0, "%s",
                     c->live ? "skipped: vendor libraries disabled"
                             : "skipped: reading a recorded tree");
        return;
    }
    char why[200];
    cl_api api = {0};
    void *lib = hw_dlopen("IA_HW_LIB_OPENCL", names, why, sizeof why);
    if (!lib) {
        hw_add_probe(info, "opencl", false, 0, "OpenCL loader not loaded: %s", why);
        return;
    }
    const char *missing = hw_dlsym_all(lib, cl_syms, sizeof cl_syms / sizeof cl_syms[0], &api);
    if (missing) {
        hw_add_probe(info, "opencl", false, 0, "OpenCL library has no %s", missing);
        dlclose(lib);
        return;
    }
    /* The loader stays loaded from here: the drivers it loaded may have
     * started worker threads (PoCL does) that run code inside it. */
    void *platforms[MAX_PLATFORMS];
    uint32_t n_platforms = 0;
    int32_t rc = api.get_platform_ids(MAX_PLATFORMS, platforms, &n_platforms);
    if (rc == -1001 || (rc == 0 && n_platforms == 0)) {
        hw_add_probe(info, "opencl", false, 0,
                     "no OpenCL platforms: no driver installed under /etc/OpenCL/vendors");
        return;
    }
    if (rc != 0) {
        hw_add_probe(info, "opencl", false, 0, "clGetPlatformIDs failed: %s (%d)",
                     cl_error_name(rc), rc);
        return;
    }
    if (n_platforms > MAX_PLATFORMS)
        n_platforms = MAX_PLATFORMS;

    char summary[1024] = "";
    int n_added = 0;
    for (uint32_t p = 0; p < n_platforms; p++) {
        char pname[512], pvendor[512], pversion[512];
        platform_str(&api, platforms[p], CL_PLATFORM_NAME, pname, sizeof pname);
        platform_str(&api, platforms[p], CL_PLATFORM_VENDOR, pvendor, sizeof pvendor);
        platform_str(&api, platforms[p], CL_PLATFORM_VERSION, pversion, sizeof pversion);
        void *devices[MAX_DEVICES];
        uint32_t n_dev = 0;
        rc = api.get_device_ids(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devices, &n_dev);
        if (rc != 0)
            n_dev = 0;
        if (n_dev > MAX_DEVICES)
            n_dev = MAX_DEVICES;
        for (uint32_t i = 0; i < n_dev; i++) {
            ia_hw_device d;
            fill_device(&api, devices[i], n_added, &d);
            if (!hw_add_device(info, &d))
                break;
            n_added++;
        }
        size_t len = strlen(summary);
        snprintf(summary + len, sizeof summary - len, "%s%.64s (%.48s, %.64s): %u device%s",
                 p ? "; " : "", pname[0] ? pname : "unnamed platform", pvendor, pversion, n_dev,
                 n_dev == 1 ? "" : "s");
    }
    hw_add_probe(info, "opencl", n_added > 0, n_added, "%s", summary);
}
