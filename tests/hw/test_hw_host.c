/*
 * Tests for the host probes of hw/ (cpu, cpufreq, memory, cgroup, numa,
 * thermal, soc, perf). Most run ia_hw_detect over the recorded trees in
 * tests/fixtures/hw/host-* (made by tools/make_hw_host_fixtures.py) and check
 * every field exactly, features both present and absent, and what each
 * probe says when its files are missing. The parser tests feed
 * host_parse.c the edge cases by hand (the fuzz target feeds it the rest).
 * The last tests look at this machine: its answers must agree with the
 * compiler's own cpuid view and with each other, and the perf probe must
 * measure, cache, and reuse its numbers.
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include "hw/host_internal.h"
#include "ia/hw.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)

static ia_hw_info *detect_fixture(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/fixtures/hw/%s", name);
    ia_hw_options o = ia_hw_options_default();
    o.root = test_source_path(rel);
    o.libraries = false;
    ia_hw_info *info = NULL;
    CHECK_OK(ia_hw_detect(&o, &info));
    if (!info) {
        fprintf(stderr, "ia_hw_detect gave nothing for %s\n", name);
        exit(1);
    }
    return info;
}

/* The probe must exist, have `found`, and its message contain `needle`. */
#define CHECK_PROBE(info, name, want_found, needle)                                          \
    do {                                                                                     \
        const ia_hw_probe *p_ = ia_hw_info_probe((info), (name));                            \
        CHECK_MSG(p_ != NULL, "no probe record named %s", (name));                           \
        if (p_) {                                                                            \
            CHECK_MSG(p_->found == (want_found), "probe %s found=%d: %s", (name), p_->found, \
                      p_->message);                                                          \
            CHECK_MSG(strstr(p_->message, (needle)) != NULL,                                 \
                      "probe %s says \"%s\", wanted \"%s\"", (name), p_->message, (needle)); \
        }                                                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                            \
    do {                                                                           \
        const char *a_ = (a), *b_ = (b);                                           \
        CHECK_MSG(strcmp(a_, b_) == 0, "%s is \"%s\", wanted \"%s\"", #a, a_, b_); \
    } while (0)

static void check_features(const ia_hw_cpu *cpu, const ia_cpu_feature *present, size_t n_present,
                           const ia_cpu_feature *absent, size_t n_absent) {
    for (size_t i = 0; i < n_present; i++)
        CHECK_MSG(ia_hw_cpu_has(cpu, present[i]), "feature %s missing",
                  ia_cpu_feature_name(present[i]));
    for (size_t i = 0; i < n_absent; i++)
        CHECK_MSG(!ia_hw_cpu_has(cpu, absent[i]), "feature %s claimed but absent",
                  ia_cpu_feature_name(absent[i]));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- recorded trees ------------------------------------------------------------------ */

TEST(x86_numa_server) {
    ia_hw_info *info = detect_fixture("host-x86-numa");
    const ia_hw_cpu *cpu = &info->cpu;
    CHECK_STR(cpu->arch, "x86_64");
    CHECK_STR(cpu->vendor, "GenuineIntel");
    CHECK_STR(cpu->model, "Intel(R) Xeon(R) Silver 4410Y");
    CHECK_EQ_INT(cpu->sockets, 2);
    CHECK_EQ_INT(cpu->physical_cores, 24);
    CHECK_EQ_INT(cpu->logical_cores, 48);
    /* Sapphire Rapids has every x86 feature the enum names. */
    for (int f = IA_CPU_SSE4_2; f <= IA_CPU_AES; f++)
        CHECK_MSG(ia_hw_cpu_has(cpu, (ia_cpu_feature)f), "feature %s missing",
                  ia_cpu_feature_name((ia_cpu_feature)f));
    const ia_cpu_feature absent[] = {IA_CPU_NEON,     IA_CPU_DOTPROD, IA_CPU_I8MM,
                                     IA_CPU_ARM_BF16, IA_CPU_SVE,     IA_CPU_SVE2};
    check_features(cpu, NULL, 0, absent, N(absent));
    CHECK_EQ_INT(cpu->cache_l1d, 48 * KIB);
    CHECK_EQ_INT(cpu->cache_l2, 2048 * KIB);
    CHECK_EQ_INT(cpu->cache_l3, 30720 * KIB);
    CHECK_STR(cpu->governor, "performance");
    CHECK_EQ_INT(cpu->freq_max_khz, 3900000);
    CHECK_STR(cpu->soc, "");
    CHECK_STR(cpu->soc_vendor, "");
    CHECK_PROBE(info, "cpu", true, "2 sockets, 24 cores, 48 logical (sysfs topology)");
    CHECK_PROBE(info, "cpu", true, "from cpuinfo flags");
    CHECK_PROBE(info, "cpufreq", true, "governor performance, max 3900 MHz");
    CHECK_PROBE(info, "soc", false, "not an Arm SoC (x86_64)");

    const ia_hw_memory *m = &info->memory;
    CHECK_EQ_INT(m->total, 263590236 * KIB);
    CHECK_EQ_INT(m->available, 251873412 * KIB);
    CHECK_EQ_INT(m->cgroup_version, 2);
    CHECK_EQ_INT(m->cgroup_limit, 0);
    CHECK_EQ_INT(m->cgroup_usage, 52428800); /* the session scope's, the deepest level */
    CHECK_EQ_INT(m->usable, m->available);
    CHECK_PROBE(info, "memory", true, "MemTotal 257412 MiB");
    CHECK_PROBE(info, "cgroup", true,
                "cgroup v2 /user.slice/user-1000.slice/session-4.scope: no memory limit");

    CHECK_EQ_INT(info->n_numa, 2);
    if (info->n_numa == 2) {
        CHECK_EQ_INT(info->numa[0].id, 0);
        CHECK_STR(info->numa[0].cpulist, "0-11,24-35");
        CHECK_EQ_INT(info->numa[0].memory_total, 131542364 * KIB);
        CHECK_EQ_INT(info->numa[1].id, 1);
        CHECK_STR(info->numa[1].cpulist, "12-23,36-47");
        CHECK_EQ_INT(info->numa[1].memory_total, 132047872 * KIB);
    }
    CHECK_PROBE(info, "numa", true, "2 nodes: node0 cpus 0-11,24-35 128459 MiB; node1");

    CHECK_EQ_INT(info->n_thermal, 3);
    if (info->n_thermal == 3) {
        CHECK_STR(info->thermal[0].zone, "thermal_zone0");
        CHECK_STR(info->thermal[0].type, "acpitz");
        CHECK_NEAR(info->thermal[0].celsius, 27.8, 1e-9);
        CHECK_STR(info->thermal[2].type, "x86_pkg_temp");
        CHECK_NEAR(info->thermal[2].celsius, 47.0, 1e-9);
    }
    CHECK_PROBE(info, "thermal", true, "3 zones: acpitz 27.8 C, x86_pkg_temp 45.0 C");

    /* The JSON form carries the same findings. */
    json_t *j = ia_hw_info_to_json(info);
    json_t *features = json_object_get(json_object_get(j, "cpu"), "features");
    bool amx = false, neon = false;
    for (size_t i = 0; i < json_array_size(features); i++) {
        const char *name = json_string_value(json_array_get(features, i));
        amx |= name && strcmp(name, "amx_tile") == 0;
        neon |= name && strcmp(name, "asimd") == 0;
    }
    CHECK(amx);
    CHECK(!neon);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "numa")), 2);
    json_decref(j);
    ia_hw_info_free(info);
}

TEST(arm_phone) {
    ia_hw_info *info = detect_fixture("host-arm-phone");
    const ia_hw_cpu *cpu = &info->cpu;
    CHECK_STR(cpu->arch, "aarch64");
    CHECK_STR(cpu->vendor, "ARM");
    CHECK_STR(cpu->model, "1x Cortex-X3 + 2x Cortex-A715 + 2x Cortex-A710 + 3x Cortex-A510");
    CHECK_EQ_INT(cpu->logical_cores, 8);
    CHECK_EQ_INT(cpu->physical_cores, 8);
    CHECK_EQ_INT(cpu->sockets, 1);
    /* Snapdragon 8 Gen 2 ships with SVE switched off in firmware. */
    const ia_cpu_feature present[] = {IA_CPU_NEON, IA_CPU_DOTPROD, IA_CPU_I8MM, IA_CPU_ARM_BF16,
                                      IA_CPU_AES};
    /* Features lists sha2, but IA_CPU_SHA is x86's sha_ni. */
    const ia_cpu_feature absent[] = {IA_CPU_SVE, IA_CPU_SVE2,   IA_CPU_AVX2, IA_CPU_AVX512F,
                                     IA_CPU_FMA, IA_CPU_SSE4_2, IA_CPU_SHA};
    check_features(cpu, present, N(present), absent, N(absent));
    CHECK_EQ_INT(cpu->cache_l1d, 32 * KIB);
    CHECK_EQ_INT(cpu->cache_l2, 128 * KIB);
    CHECK_EQ_INT(cpu->cache_l3, 8 * MIB);
    CHECK_STR(cpu->governor, "schedutil");
    CHECK_EQ_INT(cpu->freq_max_khz, 2016000);
    CHECK_STR(cpu->soc, "Qualcomm Snapdragon 8 Gen 2 (SM8550)");
    CHECK_STR(cpu->soc_vendor, "Qualcomm");
    CHECK_PROBE(info, "soc", true,
                "Qualcomm Snapdragon 8 Gen 2 (SM8550) (soc0 family "
                "'Snapdragon' machine 'SM8550' soc_id '519'");
    CHECK_PROBE(info, "cpu", true, "from cpuinfo Features");
    CHECK_PROBE(info, "cpufreq", true, "governor schedutil, max 2016 MHz");

    CHECK_EQ_INT(info->memory.total, 7553460 * KIB);
    CHECK_EQ_INT(info->memory.available, 2983124 * KIB);
    CHECK_EQ_INT(info->memory.cgroup_version, 0);
    CHECK_EQ_INT(info->memory.usable, 2983124 * KIB);
    CHECK_PROBE(info, "cgroup", false,
                "no /sys/fs/cgroup/memory.max or "
                "memory/memory.limit_in_bytes under ");
    CHECK_EQ_INT(info->n_numa, 0);
    CHECK_PROBE(info, "numa", false, "no /sys/devices/system/node/node* under");

    /* The battery zone has no temp file and sdr0 reports -273 C: both skipped. */
    CHECK_EQ_INT(info->n_thermal, 3);
    if (info->n_thermal == 3) {
        CHECK_STR(info->thermal[1].type, "cpu-0-0-0");
        CHECK_NEAR(info->thermal[1].celsius, 38.2, 1e-9);
        CHECK_STR(info->thermal[2].zone, "thermal_zone2");
    }
    CHECK_PROBE(info, "thermal", true, "3 zones (2 unreadable): aoss-0 36.1 C");
    ia_hw_info_free(info);
}

TEST(container_cgroup_v2) {
    ia_hw_info *info = detect_fixture("host-container");
    const ia_hw_cpu *cpu = &info->cpu;
    CHECK_STR(cpu->vendor, "AuthenticAMD");
    CHECK_STR(cpu->model, "AMD EPYC 7B13");
    /* No sysfs topology here: sockets and cores come from cpuinfo. */
    CHECK_EQ_INT(cpu->logical_cores, 4);
    CHECK_EQ_INT(cpu->physical_cores, 2);
    CHECK_EQ_INT(cpu->sockets, 1);
    CHECK_PROBE(info, "cpu", true, "1 socket, 2 cores, 4 logical (cpuinfo)");
    const ia_cpu_feature present[] = {IA_CPU_SSE4_2, IA_CPU_AVX, IA_CPU_AVX2, IA_CPU_FMA,
                                      IA_CPU_F16C,   IA_CPU_SHA, IA_CPU_AES};
    const ia_cpu_feature absent[] = {IA_CPU_AVX512F,  IA_CPU_AVX512BW, IA_CPU_AVX512_VNNI,
                                     IA_CPU_AVX_VNNI, IA_CPU_AMX_TILE, IA_CPU_NEON};
    check_features(cpu, present, N(present), absent, N(absent));
    CHECK_EQ_INT(cpu->cache_l3, 32 * MIB);
    CHECK_STR(cpu->governor, "");
    CHECK_EQ_INT(cpu->freq_max_khz, 0);
    CHECK_PROBE(info, "cpufreq", false, "no cpufreq driver");

    const ia_hw_memory *m = &info->memory;
    CHECK_EQ_INT(m->total, 16380412 * KIB);
    CHECK_EQ_INT(m->cgroup_version, 2);
    CHECK_EQ_INT(m->cgroup_limit, 2 * GIB);
    CHECK_EQ_INT(m->cgroup_usage, 512 * MIB);
    CHECK_EQ_INT(m->usable, 1536 * MIB); /* the limit, not the host's 13 GiB available */
    CHECK_PROBE(info, "cgroup", true,
                "cgroup v2 /: limit 2048 MiB set at /sys/fs/cgroup, "
                "usage 512 MiB");
    CHECK_PROBE(info, "memory", true, "usable 1536 MiB");
    CHECK_PROBE(info, "numa", false, "no /sys/devices/system/node/node*");
    CHECK_PROBE(info, "thermal", false, "no /sys/class/thermal/thermal_zone*");
    CHECK_EQ_INT(info->n_thermal, 0);
    ia_hw_info_free(info);
}

TEST(container_cgroup_v1) {
    ia_hw_info *info = detect_fixture("host-container-v1");
    const ia_hw_cpu *cpu = &info->cpu;
    CHECK_STR(cpu->model, "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
    CHECK_EQ_INT(cpu->logical_cores, 2);
    CHECK_EQ_INT(cpu->physical_cores, 1);
    CHECK_EQ_INT(cpu->sockets, 1);
    /* Cascade Lake: AVX-512 with VNNI, but no BF16, FP16, AVX-VNNI, AMX or SHA. */
    const ia_cpu_feature present[] = {IA_CPU_AVX2,       IA_CPU_FMA,      IA_CPU_AVX512F,
                                      IA_CPU_AVX512BW,   IA_CPU_AVX512VL, IA_CPU_AVX512DQ,
                                      IA_CPU_AVX512_VNNI};
    const ia_cpu_feature absent[] = {IA_CPU_AVX512_BF16, IA_CPU_AVX512_FP16, IA_CPU_AVX_VNNI,
                                     IA_CPU_AMX_TILE,    IA_CPU_AMX_INT8,    IA_CPU_AMX_BF16,
                                     IA_CPU_SHA};
    check_features(cpu, present, N(present), absent, N(absent));
    CHECK_EQ_INT(cpu->cache_l2, 1 * MIB);

    const ia_hw_memory *m = &info->memory;
    CHECK_EQ_INT(m->cgroup_version, 1);
    CHECK_EQ_INT(m->cgroup_limit, 4 * GIB);
    CHECK_EQ_INT(m->cgroup_usage, 3 * GIB);
    CHECK_EQ_INT(m->available, 6123456 * KIB);
    CHECK_EQ_INT(m->usable, 1 * GIB);
    CHECK_PROBE(info, "cgroup", true,
                "cgroup v1 /docker/3f2a9c1e5b7d: limit 4096 MiB set at /sys/fs/cgroup/memory,");
    ia_hw_info_free(info);
}

static void check_nothing_found(ia_hw_info *info) {
    const ia_hw_cpu *cpu = &info->cpu;
    CHECK_STR(cpu->arch, "");
    CHECK_STR(cpu->vendor, "");
    CHECK_STR(cpu->model, "");
    CHECK_EQ_INT(cpu->logical_cores, 0);
    CHECK_EQ_INT(cpu->physical_cores, 0);
    CHECK_EQ_INT(cpu->sockets, 0);
    CHECK_EQ_INT(cpu->features, 0);
    CHECK_EQ_INT(cpu->cache_l1d + cpu->cache_l2 + cpu->cache_l3, 0);
    CHECK_EQ_INT(info->memory.total, 0);
    CHECK_EQ_INT(info->memory.usable, 0);
    CHECK_EQ_INT(info->n_numa + info->n_thermal, 0);
    CHECK_PROBE(info, "cpu", false, "no /proc/cpuinfo or /sys/devices/system/cpu/online under");
    CHECK_PROBE(info, "cpufreq", false, "no /sys/devices/system/cpu/cpu0/cpufreq/");
    CHECK_PROBE(info, "memory", false, "no /proc/meminfo under");
    CHECK_PROBE(info, "cgroup", false, "no /sys/fs/cgroup/memory.max");
    CHECK_PROBE(info, "numa", false, "no /sys/devices/system/node/node* under");
    CHECK_PROBE(info, "thermal", false, "no /sys/class/thermal/thermal_zone* under");
    CHECK_PROBE(info, "soc", false, "no /sys/devices/soc0/{family,machine,soc_id}");
}

TEST(empty_machine_says_why) {
    ia_hw_info *info = detect_fixture("host-empty");
    check_nothing_found(info);
    /* The messages name the root that was searched. */
    const ia_hw_probe *p = ia_hw_info_probe(info, "memory");
    CHECK(p && strstr(p->message, "tests/fixtures/hw/host-empty"));
    ia_hw_info_free(info);

    /* A root that does not exist at all reads the same way. */
    ia_hw_options o = ia_hw_options_default();
    o.root = "/nonexistent/ia-hw-root";
    o.libraries = false;
    CHECK_OK(ia_hw_detect(&o, &info));
    check_nothing_found(info);
    ia_hw_info_free(info);
}

/* ---- parsers ------------------------------------------------------------------------ */

#define LEN(s) (s), strlen(s)

TEST(parse_sizes) {
    uint64_t v = 0;
    CHECK(hw_parse_size(LEN("32K"), &v) && v == 32 * KIB);
    CHECK(hw_parse_size(LEN("1024K\n"), &v) && v == 1 * MIB);
    CHECK(hw_parse_size(LEN("32M"), &v) && v == 32 * MIB);
    CHECK(hw_parse_size(LEN("2G"), &v) && v == 2 * GIB);
    CHECK(hw_parse_size(LEN("4096"), &v) && v == 4096);
    CHECK(!hw_parse_size(LEN(""), &v));
    CHECK(!hw_parse_size(LEN("K"), &v));
    CHECK(!hw_parse_size(LEN("12X"), &v));
    CHECK(!hw_parse_size(LEN("-1K"), &v));
    CHECK(!hw_parse_size(LEN("18014398509481984K"), &v)); /* 2^54 KiB overflows */
    CHECK(!hw_parse_size(LEN("99999999999999999999"), &v));
    CHECK(!hw_parse_size("32K", 0, &v));
}

TEST(parse_cpulists) {
    int ids[64];
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-15,32-47\n"), ids, 64), 32);
    CHECK_EQ_INT(ids[15], 15);
    CHECK_EQ_INT(ids[16], 32);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("5"), ids, 64), 1);
    CHECK_EQ_INT(ids[0], 5);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-3,8"), NULL, 0), 5);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-100"), ids, 4), 101); /* counts past max, stores 4 */
    CHECK_EQ_INT(hw_cpulist_parse(LEN("\n"), ids, 64), 0);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("3-1"), ids, 64), -1);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-"), ids, 64), -1);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0,,1"), ids, 64), -1);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("a"), ids, 64), -1);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-99999999999"), ids, 64), -1);
    CHECK_EQ_INT(hw_cpulist_parse(LEN("0-65535,0-65535"), NULL, 0), -1);
}

TEST(parse_meminfo) {
    const char *t = "MemTotal:       100 kB\nMemAvailable:    7 kB\nHugePages_Total:   3\n"
                    "Node 1 MemTotal:  5 kB\nBroken 12 kB\nHuge: 18014398509481984 kB\n";
    uint64_t v = 0;
    CHECK(hw_meminfo_value(LEN(t), "MemTotal", &v) && v == 100 * KIB);
    CHECK(hw_meminfo_value(LEN(t), "MemAvailable", &v) && v == 7 * KIB);
    CHECK(hw_meminfo_value(LEN(t), "HugePages_Total", &v) && v == 3);
    CHECK(!hw_meminfo_value(LEN(t), "Total", &v));
    CHECK(!hw_meminfo_value(LEN(t), "Broken", &v));
    CHECK(!hw_meminfo_value(LEN(t), "Huge", &v)); /* overflows when made bytes */
    CHECK(!hw_meminfo_value(LEN(t), "MemFree", &v));
    const char *node = "Node 3 MemTotal:       4096 kB\nNode 3 MemFree: 1 kB\n";
    CHECK(hw_meminfo_value(LEN(node), "MemTotal", &v) && v == 4 * MIB);
    /* A NUL in the middle does not hide what follows it. */
    const char nul[] = "X: 1 kB\n\0\nMemTotal: 2 kB\n";
    CHECK(hw_meminfo_value(nul, sizeof nul - 1, "MemTotal", &v) && v == 2 * KIB);
}

TEST(parse_cgroup_paths) {
    char path[64];
    const char *v2 = "0::/user.slice/session-4.scope\n";
    CHECK(hw_cgroup_own_path(LEN(v2), 2, path, sizeof path));
    CHECK_STR(path, "/user.slice/session-4.scope");
    CHECK(!hw_cgroup_own_path(LEN(v2), 1, path, sizeof path));
    const char *v1 = "5:cpu,cpuacct:/a\n4:blkio,memory:/docker/x:y\n0::/\n";
    CHECK(hw_cgroup_own_path(LEN(v1), 1, path, sizeof path));
    CHECK_STR(path, "/docker/x:y");
    CHECK(hw_cgroup_own_path(LEN(v1), 2, path, sizeof path));
    CHECK_STR(path, "/");
    CHECK(!hw_cgroup_own_path(LEN("0::/../../etc\n"), 2, path, sizeof path));
    CHECK(!hw_cgroup_own_path(LEN("0::/a/..\n"), 2, path, sizeof path));
    CHECK(hw_cgroup_own_path(LEN("0::/a/..b\n"), 2, path, sizeof path));
    CHECK(!hw_cgroup_own_path(LEN("0::relative\n"), 2, path, sizeof path));
    CHECK(!hw_cgroup_own_path(LEN("4:memory\n"), 1, path, sizeof path));
    char tiny[4];
    CHECK(!hw_cgroup_own_path(LEN(v2), 2, tiny, sizeof tiny));
}

TEST(usable_memory) {
    CHECK_EQ_INT(hw_memory_usable(10, 0, 5), 10);
    CHECK_EQ_INT(hw_memory_usable(10, 8, 5), 3);
    CHECK_EQ_INT(hw_memory_usable(2, 8, 1), 2);
    CHECK_EQ_INT(hw_memory_usable(10, 4, 5), 0); /* over the limit already */
    CHECK_EQ_INT(hw_memory_usable(0, 8, 5), 3);
}

static void check_soc(const char *family, const char *machine, const char *soc_id,
                      const char *hardware, const char *want_soc, const char *want_vendor) {
    char soc[128], vendor[32];
    bool ok =
        hw_soc_identify(family, machine, soc_id, hardware, soc, sizeof soc, vendor, sizeof vendor);
    CHECK_MSG(ok, "nothing identified for machine '%s' hardware '%s'", machine ? machine : "",
              hardware ? hardware : "");
    CHECK_STR(soc, want_soc);
    CHECK_STR(vendor, want_vendor);
}

TEST(soc_names) {
    check_soc(NULL, NULL, NULL, "Qualcomm Technologies, Inc SM8550",
              "Qualcomm Snapdragon 8 Gen 2 (SM8550)", "Qualcomm");
    check_soc("Snapdragon", "", "519", NULL, "Qualcomm Snapdragon 8 Gen 2 (SM8550)", "Qualcomm");
    check_soc("Snapdragon", "SM8650", "557", NULL, "Qualcomm Snapdragon 8 Gen 3 (SM8650)",
              "Qualcomm");
    check_soc(NULL, NULL, NULL, "Qualcomm Technologies, Inc SDM845",
              "Qualcomm Snapdragon 845 (SDM845)", "Qualcomm");
    check_soc(NULL, "qcom,sc8280xp", NULL, NULL, "Qualcomm Snapdragon 8cx Gen 3 (SC8280XP)",
              "Qualcomm");
    check_soc(NULL, NULL, NULL, "Qualcomm Technologies, Inc SM8999", "Qualcomm SM8999", "Qualcomm");
    check_soc("Snapdragon", "", "999", NULL, "Qualcomm Snapdragon (soc_id 999)", "Qualcomm");
    check_soc(NULL, NULL, NULL, "MT6983", "MediaTek Dimensity 9000 (MT6983)", "MediaTek");
    check_soc(NULL, NULL, NULL, "MT6999V/CZA", "MediaTek MT6999V", "MediaTek");
    check_soc("Samsung Exynos", "", "EXYNOS2100", NULL, "Samsung Exynos 2100", "Samsung");
    check_soc(NULL, NULL, NULL, "s5e9925", "Samsung Exynos 2200", "Samsung");
    check_soc(NULL, "GS201", NULL, NULL, "Google Tensor G2 (GS201)", "Google");
    /* Unknown vendors are reported as they are, without a vendor. */
    check_soc(NULL, NULL, NULL, "BCM2835", "BCM2835", "");
    /* "SC" and "MT" inside words, or without digits, are not ids. */
    check_soc(NULL, "ESCAPE7000", NULL, NULL, "ESCAPE7000", "");
    char soc[64] = "x", vendor[32] = "x";
    CHECK(!hw_soc_identify("", NULL, "", "", soc, sizeof soc, vendor, sizeof vendor));
    CHECK_STR(soc, "");
    CHECK_STR(vendor, "");
}

TEST(cpuinfo_parsing_edges) {
    hw_cpuinfo ci;
    /* Features hold only if every processor lists them; "vmx flags" is not "flags". */
    const char *two = "processor\t: 0\nflags\t\t: avx2 fma lm sha_ni\nvmx flags : avx512f\n\n"
                      "processor\t: 1\nflags\t\t: avx2 lm sha_ni\n";
    hw_cpuinfo_parse(LEN(two), &ci);
    CHECK(ci.x86 && ci.x86_64 && !ci.arm);
    CHECK_EQ_INT(ci.processors, 2);
    CHECK_EQ_INT(ci.features, (1ull << IA_CPU_AVX2) | (1ull << IA_CPU_SHA));

    /* Garbage: no colons, NULs, a huge line, absurd ids. */
    size_t n = 200000;
    char *junk = malloc(n);
    for (size_t i = 0; i < n; i++)
        junk[i] = (char)("ab:\n\0\xff\t7"[i % 9]);
    memcpy(junk, "physical id : 999999999999\ncpu cores : -4\nprocessor : x\n", 56);
    hw_cpuinfo_parse(junk, n, &ci);
    CHECK_EQ_INT(ci.sockets, 0);
    CHECK_EQ_INT(ci.cores_per_socket, 0);
    CHECK_EQ_INT(ci.processors, 0);
    CHECK_EQ_INT(ci.features, 0);
    free(junk);

    /* A model name with control bytes comes out printable. */
    const char odd[] = "vendor_id : Genu\x01ine\xc3\xa9\nmodel name\t:\t  Fancy\tCPU  \n";
    hw_cpuinfo_parse(odd, sizeof odd - 1, &ci);
    CHECK_STR(ci.vendor, "Genu?ine??");
    CHECK_STR(ci.model, "Fancy CPU");

    /* Arm: a part without an implementer is not a core we can name. */
    const char *arm = "processor : 0\nCPU part : 0xd0b\nprocessor : 1\nCPU implementer : 0x41\n"
                      "CPU part : 0xd0b\nprocessor : 2\nCPU implementer : 0x41\nCPU part : 0xd0b\n";
    hw_cpuinfo_parse(LEN(arm), &ci);
    CHECK(ci.arm);
    CHECK_EQ_INT(ci.n_parts, 1);
    char model[512];
    hw_arm_model_name(&ci, model, sizeof model);
    CHECK_STR(model, "Cortex-A76");
    const char *unknown = "processor : 0\nCPU implementer : 0x41\nCPU part : 0xfff\n"
                          "processor : 1\nCPU implementer : 0x99\nCPU part : 0x1\n";
    hw_cpuinfo_parse(LEN(unknown), &ci);
    hw_arm_model_name(&ci, model, sizeof model);
    CHECK_STR(model, "1x ARM part 0xfff + 1x Arm 0x99 part 0x1");
    /* More distinct parts than the table holds are counted, not dropped. */
    char many[2048] = "";
    for (int i = 0; i < 10; i++) {
        char block[96];
        snprintf(block, sizeof block, "processor : %d\nCPU implementer : 0x41\nCPU part : 0x%x\n",
                 i, 0xd03 + i);
        strcat(many, block);
    }
    hw_cpuinfo_parse(LEN(many), &ci);
    CHECK_EQ_INT(ci.n_parts, HW_ARM_PARTS_MAX);
    CHECK_EQ_INT(ci.n_other_parts, 10 - HW_ARM_PARTS_MAX);
    hw_arm_model_name(&ci, model, sizeof model);
    CHECK(strstr(model, "+ 2x other") != NULL);
    char small[8];
    hw_arm_model_name(&ci, small, sizeof small); /* truncates, stays terminated */
    CHECK(strlen(small) < sizeof small);
}

/* ---- this machine ---------------------------------------------------------------------- */

TEST(live_machine_is_consistent) {
    ia_hw_options o = ia_hw_options_default();
    o.libraries = false;
    ia_hw_info *info = NULL;
    CHECK_OK(ia_hw_detect(&o, &info));
    if (!info)
        return;
    const ia_hw_cpu *cpu = &info->cpu;
    struct utsname u;
    CHECK(uname(&u) == 0);
    CHECK_STR(cpu->arch, u.machine);
    CHECK(cpu->physical_cores >= 1);
    CHECK(cpu->logical_cores >= cpu->physical_cores);
    CHECK(cpu->sockets >= 0 && cpu->sockets <= cpu->physical_cores);
    CHECK_EQ_INT(cpu->logical_cores, sysconf(_SC_NPROCESSORS_ONLN));
    CHECK_PROBE(info, "cpu", true, "features from");
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    CHECK(cpu->sockets >= 1); /* x86 cpuinfo and sysfs always number packages */
    CHECK(cpu->vendor[0] && cpu->model[0]);
    CHECK_EQ_INT(ia_hw_cpu_has(cpu, IA_CPU_AVX2), __builtin_cpu_supports("avx2") != 0);
    CHECK_EQ_INT(ia_hw_cpu_has(cpu, IA_CPU_FMA), __builtin_cpu_supports("fma") != 0);
    CHECK_EQ_INT(ia_hw_cpu_has(cpu, IA_CPU_AVX512F), __builtin_cpu_supports("avx512f") != 0);
    CHECK_EQ_INT(ia_hw_cpu_has(cpu, IA_CPU_SSE4_2), __builtin_cpu_supports("sse4.2") != 0);
    CHECK(!ia_hw_cpu_has(cpu, IA_CPU_NEON));
    CHECK_PROBE(info, "cpu", true, "features from cpuid");
    CHECK_PROBE(info, "soc", false, "not an Arm SoC");
#endif
    CHECK(info->memory.total > 0);
    CHECK(info->memory.available > 0 && info->memory.available <= info->memory.total);
    CHECK(info->memory.usable <= info->memory.available);
    CHECK_PROBE(info, "memory", true, "MemTotal");
    CHECK(ia_hw_info_probe(info, "cgroup") != NULL);
    CHECK(ia_hw_info_probe(info, "cpufreq") != NULL);
    CHECK(ia_hw_info_probe(info, "numa") != NULL);
    CHECK(ia_hw_info_probe(info, "thermal") != NULL);
    CHECK(!info->perf.measured); /* not asked for */
    fprintf(stderr, "  live: %s | %s | %s\n", ia_hw_info_probe(info, "cpu")->message,
            ia_hw_info_probe(info, "memory")->message, ia_hw_info_probe(info, "cgroup")->message);
    ia_hw_info_free(info);
}

/* tools/record_hw_tree.sh copies what the probes read; detection over the
 * recording must then agree with detection of the machine itself. */
TEST(recorded_tree_matches_live) {
    char cmd[8400];
    const char *root = scratch_path("recorded-tree");
    snprintf(cmd, sizeof cmd, "sh '%s' '%s' >/dev/null",
             test_source_path("tools/record_hw_tree.sh"), root);
    CHECK_EQ_INT(system(cmd), 0);

    ia_hw_options o = ia_hw_options_default();
    o.libraries = false;
    ia_hw_info *live = NULL, *rec = NULL;
    CHECK_OK(ia_hw_detect(&o, &live));
    o.root = root;
    CHECK_OK(ia_hw_detect(&o, &rec));
    if (live && rec) {
        CHECK_STR(rec->cpu.arch, live->cpu.arch);
        CHECK_STR(rec->cpu.vendor, live->cpu.vendor);
        CHECK_STR(rec->cpu.model, live->cpu.model);
        CHECK_EQ_INT(rec->cpu.logical_cores, live->cpu.logical_cores);
        CHECK_EQ_INT(rec->cpu.physical_cores, live->cpu.physical_cores);
        CHECK_EQ_INT(rec->cpu.sockets, live->cpu.sockets);
        CHECK_EQ_INT(rec->cpu.cache_l1d, live->cpu.cache_l1d);
        CHECK_EQ_INT(rec->cpu.cache_l2, live->cpu.cache_l2);
        CHECK_EQ_INT(rec->cpu.cache_l3, live->cpu.cache_l3);
        CHECK_STR(rec->cpu.governor, live->cpu.governor);
        CHECK_STR(rec->cpu.soc, live->cpu.soc);
        /* cpuinfo flags (recorded) and cpuid (live) must agree on the basics. */
        const ia_cpu_feature basics[] = {IA_CPU_AVX2, IA_CPU_FMA, IA_CPU_AVX512F, IA_CPU_NEON};
        for (size_t i = 0; i < N(basics); i++)
            CHECK_MSG(ia_hw_cpu_has(&rec->cpu, basics[i]) == ia_hw_cpu_has(&live->cpu, basics[i]),
                      "%s differs between cpuinfo and the live probe",
                      ia_cpu_feature_name(basics[i]));
        CHECK_EQ_INT(rec->memory.total, live->memory.total);
        CHECK_EQ_INT(rec->memory.cgroup_version, live->memory.cgroup_version);
        CHECK_EQ_INT(rec->memory.cgroup_limit, live->memory.cgroup_limit);
        CHECK_EQ_INT(rec->n_numa, live->n_numa);
        CHECK_EQ_INT(rec->n_thermal, live->n_thermal);
        for (size_t i = 0; i < live->n_probes; i++) {
            const ia_hw_probe *lp = &live->probes[i], *rp = ia_hw_info_probe(rec, lp->name);
            if (strcmp(lp->name, "cpu") && strcmp(lp->name, "memory") &&
                strcmp(lp->name, "cgroup") && strcmp(lp->name, "numa") &&
                strcmp(lp->name, "cpufreq") && strcmp(lp->name, "soc"))
                continue;
            CHECK_MSG(rp && rp->found == lp->found, "probe %s: live found=%d, recorded %s",
                      lp->name, lp->found, rp ? rp->message : "absent");
        }
    }
    ia_hw_info_free(live);
    ia_hw_info_free(rec);
    rm_rf(root);
}

static ia_hw_info *run_perf(const char *cache_dir, bool fresh, double *seconds) {
    ia_hw_options o = ia_hw_options_default();
    o.libraries = false;
    o.perf = true;
    o.perf_fresh = fresh;
    o.cache_dir = cache_dir;
    ia_hw_info *info = NULL;
    double t0 = ia_time_now();
    CHECK_OK(ia_hw_detect(&o, &info));
    *seconds = ia_time_now() - t0;
    if (!info)
        exit(1);
    return info;
}

TEST(perf_measures_and_caches) {
    char cache_dir[4096], file[4200];
    /* made by the probe */
    snprintf(cache_dir, sizeof cache_dir, "%s", scratch_path("perf/nested/cache"));
    snprintf(file, sizeof file, "%s/hw-perf.json", cache_dir);

    double t;
    ia_hw_info *a = run_perf(cache_dir, false, &t);
    CHECK(a->perf.measured);
    CHECK(!a->perf.cached);
    CHECK(a->perf.threads >= 1 && a->perf.threads <= a->cpu.logical_cores);
    CHECK(a->perf.mem_bandwidth_gbs > 0.1 && a->perf.mem_bandwidth_gbs < 10000);
    CHECK(a->perf.peak_gflops_f32 > 0.1 && a->perf.peak_gflops_f32 < 1e6);
    CHECK_PROBE(a, "perf", true, "saved to");
    CHECK(ia_file_exists(file));
    fprintf(stderr, "  perf: %.2f s: %s\n", t, ia_hw_info_probe(a, "perf")->message);
    CHECK(t < 5.0); /* about 0.3 s in a release build; sanitizers are slower */

    ia_hw_info *b = run_perf(cache_dir, false, &t);
    CHECK(b->perf.measured && b->perf.cached);
    CHECK_EQ_INT(b->perf.threads, a->perf.threads);
    CHECK_NEAR(b->perf.mem_bandwidth_gbs, a->perf.mem_bandwidth_gbs, 1e-9);
    CHECK_NEAR(b->perf.peak_gflops_f32, a->perf.peak_gflops_f32, 1e-9);
    CHECK_PROBE(b, "perf", true, "cached in");
    CHECK(t < 1.0);
    json_t *j = ia_hw_info_to_json(b);
    CHECK(json_is_true(json_object_get(json_object_get(j, "perf"), "cached")));
    json_decref(j);

    ia_hw_info *c = run_perf(cache_dir, true, &t);
    CHECK(c->perf.measured && !c->perf.cached);

    /* A damaged cache file is measured over, not believed. */
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"results\": {\"x\": [1, 2", f);
        fclose(f);
    }
    ia_hw_info *d = run_perf(cache_dir, false, &t);
    CHECK(d->perf.measured && !d->perf.cached);
    json_t *root = NULL;
    CHECK_OK(ia_json_load_file(file, 1 << 20, &root));
    CHECK(json_object_size(json_object_get(root, "results")) == 1);
    json_decref(root);

    /* A recorded root never measures: the numbers would not be that machine's. */
    ia_hw_options o = ia_hw_options_default();
    o.root = test_source_path("tests/fixtures/hw/host-x86-numa");
    o.libraries = false;
    o.perf = true;
    o.cache_dir = cache_dir;
    ia_hw_info *e = NULL;
    CHECK_OK(ia_hw_detect(&o, &e));
    CHECK(e && !e->perf.measured && !ia_hw_info_probe(e, "perf"));

    ia_hw_info_free(a);
    ia_hw_info_free(b);
    ia_hw_info_free(c);
    ia_hw_info_free(d);
    ia_hw_info_free(e);
}
