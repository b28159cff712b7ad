/*
 * cpu.c: the "cpu" and "cpufreq" probes.
 *
 * The CPU's identity (arch, vendor, model) and its counts come from
 * /proc/cpuinfo and /sys/devices/system/cpu under the probe's root; its
 * SIMD features come from the instructions themselves when the probe looks
 * at the running machine (cpuid with the OS's xgetbv state on x86, HWCAP on
 * arm64: a kernel may list a flag whose register state it does not save, and
 * a container's cpuinfo is the host's), and from the recorded cpuinfo flags
 * otherwise. Sizes of the caches are cpu0's, per instance. Nothing is
 * inferred that the files do not say: an unknown count stays 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "host_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HW_LIVE_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define HW_LIVE_ARM64 1
#endif

/* ---- live features ----------------------------------------------------------------- */

#ifdef HW_LIVE_X86
/* XCR0: which register state the OS saves on a context switch. Without the
 * bits a feature's registers would be corrupted by preemption, so the
 * feature counts as absent even when cpuid lists it. */
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t live_features(void) {
    unsigned a, b, c, d;
    uint64_t f = 0;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return 0;
    bool osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    bool avx_os = (xcr0 & 0x6) == 0x6;                /* SSE and AVX state */
    bool avx512_os = avx_os && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    bool amx_os = (xcr0 & 0x60000) == 0x60000;        /* XTILECFG, XTILEDATA */
#define SET(cond, feat)          \
    do {                         \
        if (cond)                \
            f |= 1ull << (feat); \
    } while (0)
    SET((c >> 20) & 1, IA_CPU_SSE4_2);
    SET((c >> 25) & 1, IA_CPU_AES);
    SET(avx_os && ((c >> 28) & 1), IA_CPU_AVX);
    SET(avx_os && ((c >> 12) & 1), IA_CPU_FMA);
    SET(avx_os && ((c >> 29) & 1), IA_CPU_F16C);
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        unsigned subleaves = a;
        SET(avx_os && ((b >> 5) & 1), IA_CPU_AVX2);
        SET((b >> 29) & 1, IA_CPU_SHA);
        SET(avx512_os && ((b >> 16) & 1), IA_CPU_AVX512F);
        SET(avx512_os && ((b >> 17) & 1), IA_CPU_AVX512DQ);
        SET(avx512_os && ((b >> 30) & 1), IA_CPU_AVX512BW);
        SET(avx512_os && ((b >> 31) & 1), IA_CPU_AVX512VL);
        SET(avx512_os && ((c >> 11) & 1), IA_CPU_AVX512_VNNI);
        SET(avx512_os && ((d >> 23) & 1), IA_CPU_AVX512_FP16);
        SET(amx_os && ((d >> 24) & 1), IA_CPU_AMX_TILE);
        SET(amx_os && ((d >> 25) & 1), IA_CPU_AMX_INT8);
        SET(amx_os && ((d >> 22) & 1), IA_CPU_AMX_BF16);
        if (subleaves >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
            SET(avx_os && ((a >> 4) & 1), IA_CPU_AVX_VNNI);
            SET(avx512_os && ((a >> 5) & 1), IA_CPU_AVX512_BF16);
        }
    }
#undef SET
    return f;
}
#define HW_LIVE_SOURCE "cpuid"

/* Vendor and brand string from cpuid, for a live machine whose /proc is
 * hidden (some sandboxes): the same words cpuinfo would have printed. */
static void live_identity(ia_hw_cpu *cpu) {
    unsigned r[4];
    if (!cpu->vendor[0] && __get_cpuid(0, &r[0], &r[1], &r[2], &r[3])) {
        char v[13];
        memcpy(v, &r[1], 4); /* EBX, EDX, ECX spell "GenuineIntel" */
        memcpy(v + 4, &r[3], 4);
        memcpy(v + 8, &r[2], 4);
        v[12] = '\0';
        hw_copy_clean(cpu->vendor, sizeof cpu->vendor, v, strlen(v));
    }
    if (!cpu->model[0] && (unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        char brand[49] = "";
        for (unsigned i = 0; i < 3; i++)
            if (__get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3]))
                memcpy(brand + 16 * i, r, 16);
        brand[48] = '\0';
        hw_copy_clean(cpu->model, sizeof cpu->model, brand, strlen(brand));
    }
}
#elif defined(HW_LIVE_ARM64)
static uint64_t live_features(void) {
    /* Bit positions from the arm64 uapi <asm/hwcap.h>, spelled out so that
     * old headers still build. */
    unsigned long h1 = getauxval(AT_HWCAP), h2 = getauxval(AT_HWCAP2);
    uint64_t f = 0;
    static const struct {
        bool second;
        int bit;
        ia_cpu_feature feature;
    } bits[] = {
        {false, 1, IA_CPU_NEON},     {false, 3, IA_CPU_AES}, {false, 20, IA_CPU_DOTPROD},
        {false, 22, IA_CPU_SVE},     {true, 1, IA_CPU_SVE2}, {true, 13, IA_CPU_I8MM},
        {true, 14, IA_CPU_ARM_BF16},
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (((bits[i].second ? h2 : h1) >> bits[i].bit) & 1)
            f |= 1ull << bits[i].feature;
    return f;
}
#define HW_LIVE_SOURCE "HWCAP"
#endif

/* ---- counts -------------------------------------------------------------------------- */

typedef struct topo_pair {
    long package, core;
} topo_pair;

static int cmp_pair(const void *a, const void *b) {
    const topo_pair *x = a, *y = b;
    if (x->package != y->package)
        return x->package < y->package ? -1 : 1;
    return x->core < y->core ? -1 : x->core > y->core;
}

/* A sysfs id file: a decimal, or -1 ("no package") as some Arm kernels write. */
static bool read_id(const hw_ctx *c, const char *path, long *out) {
    char line[32];
    if (!hw_read_line(c, path, line, sizeof line))
        return false;
    char *end;
    long v = strtol(line, &end, 10);
    if (end == line || *end != '\0' || v < -1 || v > (1L << 30))
        return false;
    *out = v;
    return true;
}

/* Sockets and physical cores from cpuN/topology of the online CPUs; false
 * when any of them lacks the files (then cpuinfo is asked instead). */
static bool sysfs_topology(const hw_ctx *c, const int *cpus, int n, int *sockets, int *cores) {
    topo_pair *pairs = ia_malloc_array((size_t)n, sizeof *pairs);
    bool ok = pairs != NULL && n > 0;
    for (int i = 0; ok && i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 cpus[i]);
        ok = read_id(c, path, &pairs[i].package);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpus[i]);
        ok = ok && read_id(c, path, &pairs[i].core);
    }
    if (ok) {
        qsort(pairs, (size_t)n, sizeof *pairs, cmp_pair);
        *sockets = *cores = 0;
        for (int i = 0; i < n; i++) {
            if (i == 0 || pairs[i].package != pairs[i - 1].package)
                ++*sockets;
            if (i == 0 || cmp_pair(&pairs[i], &pairs[i - 1]) != 0)
                ++*cores;
        }
    }
    free(pairs);
    return ok;
}

static void count_cpus(const hw_ctx *c, const hw_cpuinfo *ci, ia_hw_cpu *cpu, const char **source) {
    char *online = hw_read_file(c, "/sys/devices/system/cpu/online", 4096);
    int n = online ? hw_cpulist_parse(online, strlen(online), NULL, 0) : -1;
    int *ids = n > 0 ? ia_malloc_array((size_t)n, sizeof *ids) : NULL;
    if (ids)
        hw_cpulist_parse(online, strlen(online), ids, n);
    free(online);

    if (n > 0)
        cpu->logical_cores = n;
    else if (ci->processors > 0)
        cpu->logical_cores = ci->processors;
    else if (c->live)
        cpu->logical_cores = (int)sysconf(_SC_NPROCESSORS_ONLN);

    int sockets = 0, cores = 0;
    *source = "";
    if (ids && sysfs_topology(c, ids, n, &sockets, &cores)) {
        *source = "sysfs topology";
    } else if (ci->sockets > 0 && ci->cores_per_socket > 0) {
        sockets = ci->sockets;
        cores = ci->sockets * ci->cores_per_socket;
        *source = "cpuinfo";
    }
    free(ids);
    if (ci->arm || (!ci->x86 && strncmp(cpu->arch, "aarch64", 7) == 0)) {
        /* Arm cores have no SMT; older kernels number big.LITTLE clusters
         * as packages, so a mix of core kinds is one socket. */
        cores = cpu->logical_cores;
        if (ci->n_parts > 1)
            sockets = 1;
        if (!(*source)[0])
            *source = "one core per Arm CPU";
    }
    if (cpu->logical_cores > 0 && cores > cpu->logical_cores)
        cores = cpu->logical_cores; /* cpuinfo describes whole sockets; fewer may be online */
    cpu->sockets = sockets;
    cpu->physical_cores = cores;
}

/* ---- caches ---------------------------------------------------------------------- */

static void read_caches(const hw_ctx *c, ia_hw_cpu *cpu) {
    for (int i = 0; i < 32; i++) {
        char path[128], type[32], size_text[32];
        uint64_t level, bytes;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!hw_read_u64(c, path, &level))
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!hw_read_line(c, path, type, sizeof type) || strcmp(type, "Instruction") == 0)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!hw_read_line(c, path, size_text, sizeof size_text) ||
            !hw_parse_size(size_text, strlen(size_text), &bytes) || bytes > (1ull << 40))
            continue;
        if (level == 1)
            cpu->cache_l1d = bytes;
        else if (level == 2)
            cpu->cache_l2 = bytes;
        else if (level == 3)
            cpu->cache_l3 = bytes;
    }
}

/* ---- identity ---------------------------------------------------------------------- */

static void set_arch(const hw_ctx *c, const hw_cpuinfo *ci, ia_hw_cpu *cpu) {
    struct utsname u;
    if (c->live && uname(&u) == 0)
        hw_copy(cpu->arch, sizeof cpu->arch, u.machine);
    else if (ci->x86)
        hw_copy(cpu->arch, sizeof cpu->arch, ci->x86_64 ? "x86_64" : "i686");
    else if (ci->arm)
        hw_copy(cpu->arch, sizeof cpu->arch, ci->arm_64 ? "aarch64" : "arm");
}

static void set_identity(const hw_cpuinfo *ci, ia_hw_cpu *cpu) {
    if (ci->x86) {
        hw_copy(cpu->vendor, sizeof cpu->vendor, ci->vendor);
        hw_copy(cpu->model, sizeof cpu->model, ci->model);
        return;
    }
    if (ci->n_parts > 0) {
        const char *vendor = hw_arm_implementer_name(ci->parts[0].implementer);
        hw_copy(cpu->vendor, sizeof cpu->vendor, vendor ? vendor : "");
        hw_arm_model_name(ci, cpu->model, sizeof cpu->model);
    } else {
        hw_copy(cpu->model, sizeof cpu->model, ci->model);
    }
}

static const char *set_features(const hw_ctx *c, const hw_cpuinfo *ci, ia_hw_cpu *cpu) {
#if defined(HW_LIVE_X86) || defined(HW_LIVE_ARM64)
    if (c->live) {
        cpu->features = live_features();
        return HW_LIVE_SOURCE;
    }
#endif
    /* Features of the other family would be a parse accident: drop them. */
    uint64_t x86_mask = ((1ull << (IA_CPU_AES + 1)) - 1) & ~((1ull << IA_CPU_SSE4_2) - 1);
    uint64_t mask = ci->x86 ? x86_mask : ~x86_mask | (1ull << IA_CPU_AES);
    cpu->features = ci->features & mask;
    return ci->x86 ? "cpuinfo flags" : ci->arm ? "cpuinfo Features" : "nothing";
}

static void probe_cpufreq(const hw_ctx *c, ia_hw_cpu *cpu, ia_hw_info *info) {
    char line[64];
    uint64_t khz;
    if (hw_read_line(c, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", line, sizeof line))
        hw_copy_clean(cpu->governor, sizeof cpu->governor, line, strlen(line));
    /* Above 100 GHz the number is not a clock. */
    if (hw_read_u64(c, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", &khz) && khz > 0 &&
        khz <= 100000000)
        cpu->freq_max_khz = (uint32_t)khz;
    if (!cpu->governor[0] && !cpu->freq_max_khz) {
        hw_add_probe(info, "cpufreq", false, 0,
                     "no /sys/devices/system/cpu/cpu0/cpufreq/{scaling_governor,"
                     "cpuinfo_max_freq} under %s: no cpufreq driver (usual in containers "
                     "and VMs)",
                     hw_root_name(c));
        return;
    }
    hw_add_probe(info, "cpufreq", true, 0, "cpu0: governor %s, max %u MHz",
                 cpu->governor[0] ? cpu->governor : "unknown", cpu->freq_max_khz / 1000);
}

void hw_probe_cpu(const hw_ctx *c, ia_hw_info *info) {
    ia_hw_cpu *cpu = &info->cpu;
    char *text = hw_read_file(c, "/proc/cpuinfo", HW_PROC_MAX_BYTES);
    hw_cpuinfo ci;
    hw_cpuinfo_parse(text, text ? strlen(text) : 0, &ci);

    set_arch(c, &ci, cpu);
    set_identity(&ci, cpu);
#ifdef HW_LIVE_X86
    if (c->live)
        live_identity(cpu);
#endif
    const char *topology;
    count_cpus(c, &ci, cpu, &topology);
    const char *features = set_features(c, &ci, cpu);
    read_caches(c, cpu);

    if (!text && cpu->logical_cores <= 0) {
        hw_add_probe(info, "cpu", false, 0,
                     "no /proc/cpuinfo or /sys/devices/system/cpu/online under %s",
                     hw_root_name(c));
    } else {
        int n_features = __builtin_popcountll(cpu->features);
        hw_add_probe(info, "cpu", true, 0,
                     "%s %s%s%s: %d socket%s, %d cores, %d logical (%s); %d features from %s; "
                     "L1d %llu KiB, L2 %llu KiB, L3 %llu KiB%s",
                     cpu->arch[0] ? cpu->arch : "unknown arch",
                     cpu->vendor[0] ? cpu->vendor : "unknown vendor", cpu->model[0] ? " " : "",
                     cpu->model, cpu->sockets, cpu->sockets == 1 ? "" : "s", cpu->physical_cores,
                     cpu->logical_cores, topology[0] ? topology : "topology unknown", n_features,
                     features, (unsigned long long)(cpu->cache_l1d >> 10),
                     (unsigned long long)(cpu->cache_l2 >> 10),
                     (unsigned long long)(cpu->cache_l3 >> 10), text ? "" : "; no /proc/cpuinfo");
    }
    free(text);
    probe_cpufreq(c, cpu, info);
}
