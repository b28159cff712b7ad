/*
 * libFuzzer target for the host text parsers of hw/ (src/hw/host_parse.c):
 * the same bytes go to the /proc/cpuinfo parser, the meminfo and sysfs size
 * readers, the CPU-list parser, the /proc/self/cgroup reader and the SoC
 * namer. Beyond not crashing, every result must keep the promises the
 * probes rely on: strings terminated and printable, feature bits inside the
 * enum, counts inside their bounds, cgroup paths absolute without "..", and
 * usable memory never above what is available or allowed. A broken promise
 * aborts the run.
 */
#include "../src/hw/host_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t size) {
    size_t n = strnlen(s, size);
    if (n == size)
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            abort();
}

static void fuzz_cpuinfo(const char *text, size_t size) {
    hw_cpuinfo ci;
    hw_cpuinfo_parse(text, size, &ci);
    check_text(ci.vendor, sizeof ci.vendor);
    check_text(ci.model, sizeof ci.model);
    check_text(ci.hardware, sizeof ci.hardware);
    if (ci.features >> IA_CPU_FEATURE_COUNT)
        abort();
    if (ci.n_parts < 0 || ci.n_parts > HW_ARM_PARTS_MAX || ci.n_other_parts < 0 ||
        ci.processors < 0 || ci.sockets < 0 || ci.sockets > 4096 || ci.cores_per_socket < 0 ||
        ci.cores_per_socket > 65536)
        abort();
    for (int i = 0; i < ci.n_parts; i++)
        if (ci.parts[i].count < 1)
            abort();
    char model[128];
    hw_arm_model_name(&ci, model, sizeof model);
    check_text(model, sizeof model);
    char tiny[5];
    hw_arm_model_name(&ci, tiny, sizeof tiny);
    check_text(tiny, sizeof tiny);
}

static void fuzz_small_parsers(const char *text, size_t size) {
    uint64_t v;
    (void)hw_meminfo_value(text, size, "MemTotal", &v);
    (void)hw_meminfo_value(text, size, "MemAvailable", &v);
    (void)hw_parse_size(text, size < 64 ? size : 64, &v);

    int ids[16];
    int n = hw_cpulist_parse(text, size, ids, 16);
    if (n < -1 || n > HW_CPULIST_MAX)
        abort();
    for (int i = 0; i < n && i < 16; i++)
        if (ids[i] < 0 || ids[i] >= HW_CPULIST_MAX)
            abort();

    for (int version = 1; version <= 2; version++) {
        char path[256];
        if (!hw_cgroup_own_path(text, size, version, path, sizeof path))
            continue;
        check_text(path, sizeof path);
        if (path[0] != '/' || strstr(path, "/../") ||
            (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
            abort();
    }
}

/* The SoC namer takes four strings: the input split at its first three
 * newlines, as family, machine, soc_id and Hardware. */
static void fuzz_soc(const char *text, size_t size) {
    char *copy = malloc(size + 1);
    if (!copy)
        return;
    memcpy(copy, text, size);
    copy[size] = '\0';
    const char *parts[4] = {"", "", "", ""};
    char *p = copy;
    for (int i = 0; i < 4 && p; i++) {
        parts[i] = p;
        p = strchr(p, '\n');
        if (p && i < 3)
            *p++ = '\0';
        else
            p = NULL;
    }
    char soc[128], vendor[32];
    hw_soc_identify(parts[0], parts[1], parts[2], parts[3], soc, sizeof soc, vendor, sizeof vendor);
    check_text(soc, sizeof soc);
    check_text(vendor, sizeof vendor);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    fuzz_cpuinfo(text, size);
    fuzz_small_parsers(text, size);
    fuzz_soc(text, size);
    if (size >= 24) {
        uint64_t a, l, u;
        memcpy(&a, data, 8);
        memcpy(&l, data + 8, 8);
        memcpy(&u, data + 16, 8);
        uint64_t usable = hw_memory_usable(a, l, u);
        if ((a && usable > a) || (l && usable > l))
            abort();
    }
    return 0;
}
