/*
 * apple.c: the Mac's chip and its Metal GPU.
 *
 * On macOS, sysctl names the machine (hw.model), the chip
 * (machdep.cpu.brand_string: "Apple M2 Pro") and the memory (hw.memsize).
 * Metal is an Objective-C framework; rather than compile Objective-C, the
 * probe opens Metal.framework with dlopen, asks MTLCreateSystemDefaultDevice
 * for the default GPU, and reads its name, unified-memory flag and
 * recommended working set through objc_msgSend, as any C program may. On
 * Apple silicon the GPU shares the chip's memory, so its budget is Metal's
 * recommendedMaxWorkingSetSize rather than hw.memsize. Elsewhere the probe
 * only records that this is not macOS.
 */
#include "hw_internal.h"

#ifdef __APPLE__

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysctl.h>
#include <sys/types.h>

typedef void *objc_id;
typedef void *objc_sel;

static bool sysctl_str(const char *name, char *buf, size_t size) {
    size_t len = size;
    if (sysctlbyname(name, buf, &len, NULL, 0) != 0 || len == 0)
        return false;
    buf[len < size ? len : size - 1] = '\0';
    return true;
}

/* The default Metal device's details. False when Metal or its device is
 * absent (a VM without GPU passthrough). */
static bool metal_device(ia_hw_device *d, char *why, size_t why_size) {
    void *metal = dlopen("/System/Library/Frameworks/Metal.framework/Metal", RTLD_NOW | RTLD_LOCAL);
    void *objc = dlopen("/usr/lib/libobjc.A.dylib", RTLD_NOW | RTLD_LOCAL);
    if (!metal || !objc) {
        const char *err = dlerror();
        snprintf(why, why_size, "Metal not loaded: %s", err ? err : "unknown error");
        return false;
    }
    void *create_sym = dlsym(metal, "MTLCreateSystemDefaultDevice");
    void *send_sym = dlsym(objc, "objc_msgSend");
    void *sel_sym = dlsym(objc, "sel_registerName");
    void *release_sym = dlsym(objc, "objc_release");
    if (!create_sym || !send_sym || !sel_sym) {
        snprintf(why, why_size, "Metal or the Objective-C runtime lacks an entry point");
        return false;
    }
    objc_id (*create)(void);
    objc_sel (*sel)(const char *);
    memcpy(&create, &create_sym, sizeof create);
    memcpy(&sel, &sel_sym, sizeof sel);
    /* objc_msgSend is called through a pointer of each method's own type. */
    objc_id (*send_id)(objc_id, objc_sel);
    const char *(*send_cstr)(objc_id, objc_sel);
    uint64_t (*send_u64)(objc_id, objc_sel);
    signed char (*send_bool)(objc_id, objc_sel);
    memcpy(&send_id, &send_sym, sizeof send_id);
    memcpy(&send_cstr, &send_sym, sizeof send_cstr);
    memcpy(&send_u64, &send_sym, sizeof send_u64);
    memcpy(&send_bool, &send_sym, sizeof send_bool);

    objc_id dev = create();
    if (!dev) {
        snprintf(why, why_size, "MTLCreateSystemDefaultDevice returned no device");
        return false;
    }
    objc_id name = send_id(dev, sel("name"));
    const char *cname = name ? send_cstr(name, sel("UTF8String")) : NULL;
    if (cname && *cname)
        hw_copy(d->name, sizeof d->name, cname);
    d->memory_total = send_u64(dev, sel("recommendedMaxWorkingSetSize"));
    hw_copy(d->type, sizeof d->type,
            send_bool(dev, sel("hasUnifiedMemory")) ? "integrated-gpu" : "gpu");
    if (release_sym) {
        void (*release)(objc_id);
        memcpy(&release, &release_sym, sizeof release);
        release(dev);
    }
    return true;
}

void hw_probe_apple(const hw_ctx *c, ia_hw_info *info) {
    char model[64] = "", chip[128] = "", why[160] = "";
    uint64_t memsize = 0;
    size_t len = sizeof memsize;
    if (!c->live) {
        hw_add_probe(info, "apple", false, 0, "skipped: reading a recorded tree");
        return;
    }
    sysctl_str("hw.model", model, sizeof model);
    sysctl_str("machdep.cpu.brand_string", chip, sizeof chip);
    if (sysctlbyname("hw.memsize", &memsize, &len, NULL, 0) != 0)
        memsize = 0;

    ia_hw_device d;
    memset(&d, 0, sizeof d);
    d.kind = IA_DEVICE_METAL;
    hw_copy(d.name, sizeof d.name, chip); /* replaced by Metal's own name when it answers */
    hw_copy(d.vendor, sizeof d.vendor, "Apple");
    if (c->libraries && metal_device(&d, why, sizeof why)) {
        if (!d.memory_total)
            d.memory_total = memsize;
        bool added = hw_add_device(info, &d);
        hw_add_probe(info, "apple", added, added ? 1 : 0, "%s (%s): Metal device %s", model, chip,
                     d.name);
        return;
    }
    if (!c->libraries)
        hw_copy(why, sizeof why, "Metal skipped: vendor libraries disabled");
    hw_add_probe(info, "apple", false, 0, "%s (%s), %llu bytes; %s", model, chip,
                 (unsigned long long)memsize, why);
}

#else

void hw_probe_apple(const hw_ctx *c, ia_hw_info *info) {
    (void)c;
    hw_add_probe(info, "apple", false, 0, "not macOS");
}

#endif
