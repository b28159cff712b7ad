#!/usr/bin/env python3
"""Writes the recorded /proc and /sys trees under tests/fixtures/hw/host-*/.

tests/hw/test_hw_host.c runs ia_hw_detect with .root pointing at each tree.
The trees hold only the files the host probes read, with contents modelled
on what these machines really show (the cpuinfo layout, flag spellings,
sysfs cache and topology files, node meminfo, cgroup files); the numbers
are chosen so that the tests can state exact expectations. Trees recorded
from real machines with tools/record_hw_tree.sh can sit beside these.

    python3 tools/make_hw_host_fixtures.py   # rewrites the trees in place
"""
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "hw")


def put(tree, path, text):
    full = os.path.join(ROOT, tree, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def fresh(tree):
    shutil.rmtree(os.path.join(ROOT, tree), ignore_errors=True)
    os.makedirs(os.path.join(ROOT, tree))


def caches(tree, levels):
    """levels: (level, type, size) per index of cpu0."""
    for i, (level, kind, size) in enumerate(levels):
        base = f"/sys/devices/system/cpu/cpu0/cache/index{i}"
        put(tree, f"{base}/level", f"{level}\n")
        put(tree, f"{base}/type", f"{kind}\n")
        put(tree, f"{base}/size", f"{size}\n")


def topology(tree, cpus):
    """cpus: (cpu, package, core)."""
    for cpu, package, core in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        put(tree, f"{base}/physical_package_id", f"{package}\n")
        put(tree, f"{base}/core_id", f"{core}\n")


def x86_cpuinfo(entries, model, family, model_no, stepping, mhz, cache_kb, siblings, cores,
                flags, bugs, vmx=None):
    out = []
    for cpu, package, core, apic in entries:
        out.append(
            f"processor\t: {cpu}\nvendor_id\t: {'GenuineIntel' if 'Intel' in model else 'AuthenticAMD'}\n"
            f"cpu family\t: {family}\nmodel\t\t: {model_no}\nmodel name\t: {model}\n"
            f"stepping\t: {stepping}\nmicrocode\t: 0x2b0004b1\ncpu MHz\t\t: {mhz}\n"
            f"cache size\t: {cache_kb} KB\nphysical id\t: {package}\nsiblings\t: {siblings}\n"
            f"core id\t\t: {core}\ncpu cores\t: {cores}\napicid\t\t: {apic}\n"
            f"initial apicid\t: {apic}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 32\n"
            f"wp\t\t: yes\nflags\t\t: {flags}\n"
            + (f"vmx flags\t: {vmx}\n" if vmx else "")
            + f"bugs\t\t: {bugs}\nbogomips\t: 4000.00\nclflush size\t: 64\n"
            f"cache_alignment\t: 64\naddress sizes\t: 46 bits physical, 57 bits virtual\n"
            f"power management:\n\n")
    return "".join(out)


# ---- a 2-socket Sapphire Rapids server (2x Xeon Silver 4410Y, HT on) ----------------------

SPR_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi "
    "mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon "
    "pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq "
    "dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 "
    "x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch "
    "cpuid_fault epb cat_l3 cat_l2 cdp_l3 invpcid_single intel_ppin cdp_l2 ssbd mba ibrs ibpb "
    "stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 "
    "smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt "
    "clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc "
    "cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect avx_vnni avx512_bf16 wbnoinvd "
    "dtherm ida arat pln pts hfi vnmi avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes "
    "vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect "
    "cldemote movdiri movdir64b enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr ibt "
    "amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities")
SPR_VMX = ("vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb flexpriority "
           "apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple "
           "shadow_vmcs pml ept_mode_based_exec tsc_scaling usr_wait_pause notify_vm_exiting")


def x86_numa():
    t = "host-x86-numa"
    fresh(t)
    # Linux numbers the first thread of every core first, socket by socket,
    # then the hyperthread siblings in the same order.
    entries = []
    for cpu in range(48):
        sibling, rest = divmod(cpu, 24)
        package, core = divmod(rest, 12)
        entries.append((cpu, package, core, package * 128 + core * 2 + sibling))
    put(t, "/proc/cpuinfo",
        x86_cpuinfo(entries, "Intel(R) Xeon(R) Silver 4410Y", 6, 143, 8, "2000.000", 30720, 24,
                    12, SPR_FLAGS, "spectre_v1 spectre_v2 spec_store_bypass swapgs eibrs_pbrsb",
                    SPR_VMX))
    put(t, "/sys/devices/system/cpu/online", "0-47\n")
    topology(t, [(cpu, package, core) for cpu, package, core, _ in entries])
    caches(t, [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
               (3, "Unified", "30720K")])
    put(t, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
    put(t, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3900000\n")
    put(t, "/proc/meminfo",
        "MemTotal:       263590236 kB\nMemFree:        240112884 kB\n"
        "MemAvailable:   251873412 kB\nBuffers:          412340 kB\n"
        "Cached:         11234512 kB\nSwapCached:            0 kB\n"
        "HugePages_Total:       0\nHugepagesize:       2048 kB\n")
    for node, cpus, total, free in ((0, "0-11,24-35", 131542364, 120113412),
                                    (1, "12-23,36-47", 132047872, 121003520)):
        put(t, f"/sys/devices/system/node/node{node}/cpulist", cpus + "\n")
        put(t, f"/sys/devices/system/node/node{node}/meminfo",
            f"Node {node} MemTotal:       {total} kB\nNode {node} MemFree:        {free} kB\n"
            f"Node {node} MemUsed:        {total - free} kB\n"
            f"Node {node} HugePages_Total:     0\n")
    put(t, "/sys/devices/system/node/online", "0-1\n")
    put(t, "/sys/devices/system/node/possible", "0-1\n")
    put(t, "/proc/self/cgroup", "0::/user.slice/user-1000.slice/session-4.scope\n")
    put(t, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    for path, current in (("user.slice", 1843200000), ("user.slice/user-1000.slice", 61440000),
                          ("user.slice/user-1000.slice/session-4.scope", 52428800)):
        put(t, f"/sys/fs/cgroup/{path}/memory.max", "max\n")
        put(t, f"/sys/fs/cgroup/{path}/memory.current", f"{current}\n")
    for zone, kind, temp in ((0, "acpitz", 27800), (1, "x86_pkg_temp", 45000),
                             (2, "x86_pkg_temp", 47000)):
        put(t, f"/sys/class/thermal/thermal_zone{zone}/type", kind + "\n")
        put(t, f"/sys/class/thermal/thermal_zone{zone}/temp", f"{temp}\n")


# ---- a Snapdragon 8 Gen 2 phone (SM8550: 3x A510, 2x A715, 2x A710, 1x X3) ----------------

SM8550_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma "
    "lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg "
    "dcpodp flagm2 frint i8mm bf16 bti")


def arm_phone():
    t = "host-arm-phone"
    fresh(t)
    parts = ["0xd46"] * 3 + ["0xd4d"] * 2 + ["0xd47"] * 2 + ["0xd4e"]
    out = []
    for cpu, part in enumerate(parts):
        out.append(f"processor\t: {cpu}\nBogoMIPS\t: 38.40\nFeatures\t: {SM8550_FEATURES}\n"
                   f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\n"
                   f"CPU part\t: {part}\nCPU revision\t: 0\n\n")
    out.append("Hardware\t: Qualcomm Technologies, Inc SM8550\n")
    put(t, "/proc/cpuinfo", "".join(out))
    put(t, "/sys/devices/system/cpu/online", "0-7\n")
    topology(t, [(cpu, 0, cpu) for cpu in range(8)])
    caches(t, [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "128K"),
               (3, "Unified", "8192K")])
    put(t, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil\n")
    put(t, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2016000\n")
    put(t, "/proc/meminfo",
        "MemTotal:        7553460 kB\nMemFree:          412308 kB\n"
        "MemAvailable:    2983124 kB\nBuffers:            4096 kB\nCached:          2711040 kB\n")
    put(t, "/sys/devices/soc0/family", "Snapdragon\n")
    put(t, "/sys/devices/soc0/machine", "SM8550\n")
    put(t, "/sys/devices/soc0/soc_id", "519\n")
    put(t, "/sys/devices/soc0/revision", "2.0\n")
    # Phones have dozens of zones; some cannot be read while their sensor is
    # off (battery here) and some report a placeholder (-273 C).
    for zone, kind, temp in ((0, "aoss-0", "36100"), (1, "cpu-0-0-0", "38200"),
                             (2, "gpuss-0", "35900"), (3, "battery", None), (4, "sdr0", "-273000")):
        put(t, f"/sys/class/thermal/thermal_zone{zone}/type", kind + "\n")
        if temp is not None:
            put(t, f"/sys/class/thermal/thermal_zone{zone}/temp", temp + "\n")


# ---- containers -----------------------------------------------------------------------------

ZEN3_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl "
    "nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 "
    "sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy "
    "cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext ssbd ibrs ibpb stibp vmmcall "
    "fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb "
    "sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr arat npt nrip_save umip pku ospke "
    "vaes vpclmulqdq rdpid fsrm")

CLX_FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology "
    "nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 "
    "sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor "
    "lahf_lm abm 3dnowprefetch invpcid_single pti fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms "
    "invpcid mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl "
    "xsaveopt xsavec xgetbv1 xsaves ida arat pku ospke avx512_vnni")


def container_v2():
    t = "host-container"
    fresh(t)
    # A 4-vCPU VM (2 cores x 2 threads) whose /sys has no topology, cpufreq,
    # NUMA or thermal files: counts must come from cpuinfo.
    entries = [(0, 0, 0, 0), (1, 0, 0, 1), (2, 0, 1, 2), (3, 0, 1, 3)]
    put(t, "/proc/cpuinfo",
        x86_cpuinfo(entries, "AMD EPYC 7B13", 25, 1, 0, "2449.998", 512, 4, 2, ZEN3_FLAGS,
                    "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass"))
    put(t, "/sys/devices/system/cpu/online", "0-3\n")
    caches(t, [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "512K"),
               (3, "Unified", "32768K")])
    put(t, "/proc/meminfo",
        "MemTotal:       16380412 kB\nMemFree:         9123456 kB\n"
        "MemAvailable:   14023480 kB\nBuffers:          204800 kB\nCached:          4567890 kB\n")
    # With a cgroup namespace the container's own cgroup is the root of
    # what it sees: /proc/self/cgroup says "/" and the limit sits at the top.
    put(t, "/proc/self/cgroup", "0::/\n")
    put(t, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    put(t, "/sys/fs/cgroup/memory.max", "2147483648\n")
    put(t, "/sys/fs/cgroup/memory.current", "536870912\n")


def container_v1():
    t = "host-container-v1"
    fresh(t)
    # A 2-vCPU cloud VM (one Cascade Lake core, two threads) running Docker
    # on a cgroup v1 host without a cgroup namespace: /proc/self/cgroup names
    # /docker/<id>, which does not exist inside, so the limit is found at the
    # mounted root of the memory hierarchy.
    entries = [(0, 0, 0, 0), (1, 0, 0, 1)]
    put(t, "/proc/cpuinfo",
        x86_cpuinfo(entries, "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", 6, 85, 7,
                    "2499.998", 36608, 2, 1, CLX_FLAGS,
                    "cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass swapgs"))
    put(t, "/sys/devices/system/cpu/online", "0-1\n")
    topology(t, [(0, 0, 0), (1, 0, 0)])
    caches(t, [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
               (3, "Unified", "36608K")])
    put(t, "/proc/meminfo",
        "MemTotal:        8011748 kB\nMemFree:         5234567 kB\n"
        "MemAvailable:    6123456 kB\nBuffers:          102400 kB\nCached:          1048576 kB\n")
    put(t, "/proc/self/cgroup",
        "12:memory:/docker/3f2a9c1e5b7d\n11:cpu,cpuacct:/docker/3f2a9c1e5b7d\n"
        "10:pids:/docker/3f2a9c1e5b7d\n1:name=systemd:/docker/3f2a9c1e5b7d\n"
        "0::/system.slice/containerd.service\n")
    put(t, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "4294967296\n")
    put(t, "/sys/fs/cgroup/memory/memory.usage_in_bytes", "3221225472\n")


def empty():
    t = "host-empty"
    fresh(t)
    put(t, "README",
        "A machine with nothing: no /proc, no /sys. Every host probe must say what it\n"
        "looked for (tests/hw/test_hw_host.c). This file only keeps the directory in git.\n")


if __name__ == "__main__":
    x86_numa()
    arm_phone()
    container_v2()
    container_v1()
    empty()
