/*
 * vulkan.c: Vulkan physical devices through the Khronos loader.
 *
 * libvulkan.so.1 finds the installed drivers from their JSON manifests, so
 * one instance lists every GPU a Vulkan compute path could use, and Mesa's
 * lavapipe (a CPU device) when it is installed. Only vkGetInstanceProcAddr is
 * taken with dlsym; the rest come through it, as the loader's documentation
 * asks of programs that do not link it.
 *
 * The structures are laid out from the Vulkan specification (vulkan_core.h).
 * VkPhysicalDeviceProperties is 824 bytes on LP64, with the fields we read at
 * its head, ahead of VkPhysicalDeviceLimits; it is received into a larger
 * buffer so that no layout slip in the tail can make a driver write past it.
 * VkPhysicalDeviceMemoryProperties is declared in full (520 bytes) and gets
 * the same margin.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw_dlsym.h"
#include "hw_internal.h"

#define MAX_DEVICES 64

enum {
    VK_STRUCTURE_TYPE_APPLICATION_INFO = 0,
    VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1,
    VK_MEMORY_HEAP_DEVICE_LOCAL_BIT = 1,
};

#define VK_API_VERSION_1_1 ((1u << 22) | (1u << 12))
#define VK_VENDOR_NVIDIA 0x10DEu

typedef struct vk_application_info {
    int32_t s_type;
    const void *next;
    const char *application_name;
    uint32_t application_version;
    const char *engine_name;
    uint32_t engine_version;
    uint32_t api_version;
} vk_application_info;

typedef struct vk_instance_create_info {
    int32_t s_type;
    const void *next;
    uint32_t flags;
    const vk_application_info *application_info;
    uint32_t enabled_layer_count;
    const char *const *enabled_layer_names;
    uint32_t enabled_extension_count;
    const char *const *enabled_extension_names;
} vk_instance_create_info;

/* The head of VkPhysicalDeviceProperties, up to the limits. */
typedef struct vk_properties_head {
    uint32_t api_version;
    uint32_t driver_version;
    uint32_t vendor_id;
    uint32_t device_id;
    int32_t device_type;
    char device_name[256];
    uint8_t pipeline_cache_uuid[16];
} vk_properties_head;
_Static_assert(offsetof(vk_properties_head, device_name) == 20, "VkPhysicalDeviceProperties");

typedef struct vk_memory_properties {
    uint32_t memory_type_count;
    struct {
        uint32_t property_flags, heap_index;
    } memory_types[32];
    uint32_t memory_heap_count;
    struct {
        uint64_t size;
        uint32_t flags;
    } memory_heaps[16];
} vk_memory_properties;
_Static_assert(sizeof(vk_memory_properties) == 520, "VkPhysicalDeviceMemoryProperties");

typedef void (*vk_void_fn)(void);

typedef struct vk_api {
    vk_void_fn (*get_instance_proc_addr)(void *instance, const char *name);
    int32_t (*create_instance)(const vk_instance_create_info *info, const void *allocator,
                               void **instance);
    int32_t (*enumerate_physical_devices)(void *instance, uint32_t *count, void **devices);
    void (*get_physical_device_properties)(void *device, void *properties);
    void (*get_physical_device_memory_properties)(void *device, void *properties);
    void (*destroy_instance)(void *instance, const void *allocator);
} vk_api;

/* Looks `name` up through vkGetInstanceProcAddr into *slot (a function
 * pointer of the right type). False when the loader does not know it. */
static bool vk_proc(const vk_api *api, void *instance, const char *name, void *slot) {
    vk_void_fn fn = api->get_instance_proc_addr(instance, name);
    memcpy(slot, &fn, sizeof fn);
    return fn != NULL;
}

static const char *vk_result_name(int32_t r) {
    switch (r) {
    case 5:
        return "VK_INCOMPLETE";
    case -1:
        return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case -2:
        return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case -3:
        return "VK_ERROR_INITIALIZATION_FAILED";
    case -6:
        return "VK_ERROR_LAYER_NOT_PRESENT";
    case -7:
        return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case -9:
        return "VK_ERROR_INCOMPATIBLE_DRIVER";
    default:
        return "Vulkan error";
    }
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x10DE:
        return "NVIDIA";
    case 0x1002:
        return "AMD";
    case 0x8086:
        return "Intel";
    case 0x13B5:
        return "ARM";
    case 0x5143:
        return "Qualcomm";
    case 0x106B:
        return "Apple";
    case 0x1010:
        return "Imagination";
    case 0x10005:
        return "Mesa";
    default:
        return "";
    }
}

static const char *device_type(int32_t t) {
    switch (t) {
    case 1:
        return "integrated-gpu";
    case 2:
        return "gpu";
    case 3:
        return "gpu"; /* virtual GPU */
    case 4:
        return "cpu";
    default:
        return "other";
    }
}

static void fill_device(const vk_api *api, void *pd, int index, ia_hw_device *d) {
    union {
        vk_properties_head head;
        uint64_t raw[256]; /* 2 KiB, against the 824 the driver writes */
    } props;
    union {
        vk_memory_properties mem;
        uint64_t raw[128];
    } mem;
    memset(&props, 0, sizeof props);
    memset(&mem, 0, sizeof mem);
    api->get_physical_device_properties(pd, &props);
    api->get_physical_device_memory_properties(pd, &mem);
    const vk_properties_head *h = &props.head;

    memset(d, 0, sizeof *d);
    d->kind = IA_DEVICE_VULKAN;
    d->index = index;
    char name[sizeof h->device_name + 1];
    memcpy(name, h->device_name, sizeof h->device_name);
    name[sizeof h->device_name] = '\0';
    hw_copy(d->name, sizeof d->name, name);
    const char *vendor = vendor_name(h->vendor_id);
    if (*vendor)
        hw_copy(d->vendor, sizeof d->vendor, vendor);
    else
        snprintf(d->vendor, sizeof d->vendor, "0x%04x", h->vendor_id);
    hw_copy(d->type, sizeof d->type, device_type(h->device_type));
    uint32_t v = h->api_version;
    snprintf(d->api_version, sizeof d->api_version, "%u.%u.%u", (v >> 22) & 0x7Fu,
             (v >> 12) & 0x3FFu, v & 0xFFFu);
    v = h->driver_version;
    if (h->vendor_id == VK_VENDOR_NVIDIA) /* NVIDIA packs 10.8.8.6 bits */
        snprintf(d->driver, sizeof d->driver, "%u.%u.%u", (v >> 22) & 0x3FFu, (v >> 14) & 0xFFu,
                 (v >> 6) & 0xFFu);
    else
        snprintf(d->driver, sizeof d->driver, "%u.%u.%u", v >> 22, (v >> 12) & 0x3FFu, v & 0xFFFu);

    uint32_t heaps = mem.mem.memory_heap_count;
    if (heaps > 16)
        heaps = 16;
    for (uint32_t i = 0; i < heaps; i++)
        if ((mem.mem.memory_heaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            d->memory_total + mem.mem.memory_heaps[i].size >= d->memory_total)
            d->memory_total += mem.mem.memory_heaps[i].size;
}

/* ---- keeping the drivers resident ------------------------------------------------ */

/* The loader unloads the drivers (ICDs) it opened when the instance is
 * destroyed. Some keep allocations or threads that outlive that (Mesa's
 * lavapipe holds a pointer in its globals), which leak checkers then report
 * against an unmapped module and which can crash if a thread runs on. So the
 * shared objects that appear while the instance is created are pinned with
 * RTLD_NODELETE, as the probe of a long-lived process should leave them. */
typedef struct loaded_set {
    char names[64][256];
    size_t n;
} loaded_set;

static int collect_loaded(struct dl_phdr_info *dl, size_t size, void *ctx) {
    loaded_set *set = ctx;
    if (dl->dlpi_name && dl->dlpi_name[0] && set->n < 64)
        hw_copy(set->names[set->n++], sizeof set->names[0], dl->dlpi_name);
    return 0;
}

static bool in_set(const loaded_set *set, const char *name) {
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->names[i], name) == 0)
            return true;
    return false;
}

static void pin_new_objects(const loaded_set *before) {
    loaded_set *after = calloc(1, sizeof *after);
    if (!after)
        return;
    dl_iterate_phdr(collect_loaded, after);
    for (size_t i = 0; i < after->n; i++)
        if (!in_set(before, after->names[i]))
            dlopen(after->names[i], RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    free(after);
}

void hw_probe_vulkan(const hw_ctx *c, ia_hw_info *info) {
    static const char *const names[] = {"libvulkan.so.1", "libvulkan.so", NULL};
    if (!c->libraries) {
        hw_add_probe(info, "vulkan", false, 0, "%s",
                     c->live ? "skipped: vendor libraries disabled"
                             : "skipped: reading a recorded tree");
        return;
    }
    char why[200];
    vk_api api = {0};
    void *lib = hw_dlopen("IA_HW_LIB_VULKAN", names, why, sizeof why);
    if (!lib) {
        hw_add_probe(info, "vulkan", false, 0, "Vulkan loader not loaded: %s", why);
        return;
    }
    static const hw_sym syms[] = {
        {"vkGetInstanceProcAddr", offsetof(vk_api, get_instance_proc_addr), false}};
    if (hw_dlsym_all(lib, syms, 1, &api) ||
        !vk_proc(&api, NULL, "vkCreateInstance", &api.create_instance)) {
        hw_add_probe(info, "vulkan", false, 0, "Vulkan library has no %s",
                     api.get_instance_proc_addr ? "vkCreateInstance" : "vkGetInstanceProcAddr");
        dlclose(lib);
        return;
    }
    /* The loader stays loaded from here: drivers may leave threads behind. */
    vk_application_info app = {.s_type = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                               .application_name = "ipfs-accelerate",
                               .engine_name = "ipfs-accelerate",
                               .api_version = VK_API_VERSION_1_1};
    vk_instance_create_info ci = {.s_type = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                  .application_info = &app};
    void *instance = NULL;
    loaded_set before = {.n = 0};
    dl_iterate_phdr(collect_loaded, &before);
    int32_t rc = api.create_instance(&ci, NULL, &instance);
    pin_new_objects(&before); /* drivers load here and while devices are listed */
    if (rc != 0 || !instance) {
        hw_add_probe(info, "vulkan", false, 0, "vkCreateInstance failed: %s (%d)%s",
                     vk_result_name(rc), rc,
                     rc == -9 ? ": no Vulkan driver (ICD) is installed" : "");
        return;
    }
    if (!vk_proc(&api, instance, "vkDestroyInstance", &api.destroy_instance) ||
        !vk_proc(&api, instance, "vkEnumeratePhysicalDevices", &api.enumerate_physical_devices) ||
        !vk_proc(&api, instance, "vkGetPhysicalDeviceProperties",
                 &api.get_physical_device_properties) ||
        !vk_proc(&api, instance, "vkGetPhysicalDeviceMemoryProperties",
                 &api.get_physical_device_memory_properties)) {
        hw_add_probe(info, "vulkan", false, 0, "Vulkan loader lacks a core 1.0 instance function");
        if (api.destroy_instance)
            api.destroy_instance(instance, NULL);
        return;
    }
    void *devices[MAX_DEVICES];
    uint32_t count = MAX_DEVICES;
    rc = api.enumerate_physical_devices(instance, &count, devices);
    if (rc != 0 && rc != 5) { /* VK_INCOMPLETE: more than MAX_DEVICES; keep those */
        hw_add_probe(info, "vulkan", false, 0, "vkEnumeratePhysicalDevices failed: %s (%d)",
                     vk_result_name(rc), rc);
        api.destroy_instance(instance, NULL);
        return;
    }
    if (count > MAX_DEVICES)
        count = MAX_DEVICES;
    int n_added = 0;
    char first[256] = "";
    for (uint32_t i = 0; i < count; i++) {
        ia_hw_device d;
        fill_device(&api, devices[i], n_added, &d);
        if (!hw_add_device(info, &d))
            break;
        if (n_added++ == 0)
            snprintf(first, sizeof first, "%s, %s, Vulkan %s", d.name, d.type, d.api_version);
    }
    pin_new_objects(&before);
    api.destroy_instance(instance, NULL);
    if (n_added == 0)
        hw_add_probe(info, "vulkan", false, 0, "Vulkan: no physical devices");
    else
        hw_add_probe(info, "vulkan", true, n_added, "Vulkan: %d device%s (%s%s)", n_added,
                     n_added == 1 ? "" : "s", first, n_added > 1 ? ", ..." : "");
}
