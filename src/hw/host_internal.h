/*
 * host_internal.h: the pure text parsers behind the host probes of hw/.
 *
 * cpu.c, memory.c and system.c read /proc and /sys files through hw_ctx and
 * hand the text to these functions (host_parse.c), which touch nothing but
 * their arguments. Keeping them pure is what lets fuzz/fuzz_cpuinfo.c feed
 * them arbitrary bytes and lets the tests check them without a recorded
 * tree. Every function takes an explicit length (files may hold NUL bytes),
 * bounds what it copies, copies only printable ASCII, and on text it does
 * not understand returns "nothing found" rather than a guess.
 */
#ifndef IA_HW_HOST_INTERNAL_H
#define IA_HW_HOST_INTERNAL_H

#include "hw_internal.h"

/* /proc files are read whole up to this many bytes: a 1024-CPU server's
 * cpuinfo is about 2 MiB; beyond the bound the rest is ignored. */
#define HW_PROC_MAX_BYTES (8u << 20)

/* Distinct (implementer, part) pairs kept from an Arm cpuinfo; more are
 * counted in n_other_parts. */
#define HW_ARM_PARTS_MAX 8

typedef struct hw_arm_part {
    unsigned implementer; /* "CPU implementer" (0x41 Arm, 0x51 Qualcomm, ...) */
    unsigned part;        /* "CPU part" */
    int count;            /* processors reporting it */
    int first;            /* index of the first processor reporting it */
} hw_arm_part;

/* What /proc/cpuinfo says, field by field; zero/"" for what it does not. */
typedef struct hw_cpuinfo {
    bool x86;             /* has "vendor_id" or "flags" lines */
    bool arm;             /* has "CPU implementer" or "Features" lines */
    bool x86_64;          /* x86 flags list "lm" (long mode) */
    bool arm_64;          /* "CPU architecture: 8" or later, or asimd in Features */
    char vendor[64];      /* x86 "vendor_id" */
    char model[128];      /* x86 "model name"; Arm "model name" when present */
    char hardware[128];   /* Arm "Hardware" (vendor kernels name the SoC there) */
    uint64_t features;    /* (1ull << ia_cpu_feature) from "flags" or "Features" */
    int processors;       /* "processor : N" blocks */
    int sockets;          /* distinct "physical id" values; 0 when absent */
    int cores_per_socket; /* x86 "cpu cores"; 0 when absent */
    hw_arm_part parts[HW_ARM_PARTS_MAX];
    int n_parts;
    int n_other_parts; /* processors whose part did not fit in parts[] */
} hw_cpuinfo;

/* Parses cpuinfo text (len bytes, NUL not required). Never fails: fields it
 * cannot read stay zero. */
void hw_cpuinfo_parse(const char *text, size_t len, hw_cpuinfo *out);

/* A readable name for the Arm cores in ci: "Cortex-A76" for one kind,
 * "1x Cortex-X3 + 2x Cortex-A715 + 2x Cortex-A710 + 3x Cortex-A510" for
 * several (biggest first). Unknown parts read "Arm 0x41 part 0xd99".
 * Writes "" when ci lists no parts. */
void hw_arm_model_name(const hw_cpuinfo *ci, char *out, size_t size);

/* "ARM", "Qualcomm", "Apple", ... for a "CPU implementer" code; NULL when unknown. */
const char *hw_arm_implementer_name(unsigned implementer);

/* The core's name for (implementer, part), e.g. "Cortex-A55"; NULL when unknown. */
const char *hw_arm_part_name(unsigned implementer, unsigned part);

/* Finds the line "key: N kB" (or "Node 0 key: N kB", as node meminfo writes
 * it) and stores N in bytes. False when absent, malformed or overflowing. */
bool hw_meminfo_value(const char *text, size_t len, const char *key, uint64_t *bytes);

/* Parses a sysfs cache size ("32K", "1024K", "32M", "1G" or plain bytes,
 * trailing whitespace allowed). False when malformed or overflowing. */
bool hw_parse_size(const char *s, size_t len, uint64_t *bytes);

/* Parses a kernel CPU list ("0-15,32-47\n") and returns how many CPUs it
 * names, storing up to max of their ids in cpus (may be NULL). Returns -1
 * when malformed, when a range runs backwards, or past HW_CPULIST_MAX. */
#define HW_CPULIST_MAX 65536
int hw_cpulist_parse(const char *s, size_t len, int *cpus, int max);

/* The calling process's cgroup from /proc/self/cgroup text: version 2 reads
 * the "0::/path" line, version 1 the line whose controllers include
 * "memory". The path must be absolute, printable and free of ".."
 * components (it is appended to a root prefix). False when absent. */
bool hw_cgroup_own_path(const char *text, size_t len, int version, char *out, size_t size);

/* A cgroup v1 limit this large (9223372036854771712, LONG_MAX rounded down
 * to a page) or larger means "no limit". */
#define HW_CGROUP_V1_UNLIMITED (1ull << 62)

/* What a process may use: min(available, limit - usage), clamped at 0; a
 * limit of 0 means none; an unknown available (0) leaves limit - usage. */
uint64_t hw_memory_usable(uint64_t available, uint64_t limit, uint64_t usage);

/* Names an Arm SoC from /sys/devices/soc0/{family,machine,soc_id} and the
 * cpuinfo "Hardware" line (any may be NULL or ""): Qualcomm SM/SDM/SC ids
 * and numeric socinfo ids, MediaTek MT ids, Samsung Exynos, Google Tensor.
 * Known ids get their marketing name ("Qualcomm Snapdragon 8 Gen 2
 * (SM8550)"), unknown ones of a known vendor "Qualcomm SM8xyz"; text that
 * names no known vendor is copied as it is with vendor "". Returns false
 * (soc and vendor "") when all inputs are empty. */
bool hw_soc_identify(const char *family, const char *machine, const char *soc_id,
                     const char *hardware, char *soc, size_t soc_size, char *vendor,
                     size_t vendor_size);

/* Copies n bytes of src into dst as printable ASCII: tabs become spaces,
 * other control and non-ASCII bytes '?', leading and trailing blanks
 * dropped; always NUL-terminated. */
void hw_copy_clean(char *dst, size_t size, const char *src, size_t n);

/* How a probe message names the tree it read: the root, or "/" when live. */
static inline const char *hw_root_name(const hw_ctx *c) { return c->root[0] ? c->root : "/"; }

#endif /* IA_HW_HOST_INTERNAL_H */
