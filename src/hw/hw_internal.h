/*
 * hw_internal.h: what the probes of hw/ share.
 *
 * ia_hw_detect (hw.c) runs the probes in order; each probe reads files
 * through hw_ctx (so a recorded tree can stand in for /proc and /sys), fills
 * its part of ia_hw_info, appends devices with hw_add_device and always
 * records one ia_hw_probe with hw_add_probe saying what it found or why it
 * found nothing. Probes never fail: a missing file or library is a finding.
 */
#ifndef IA_HW_INTERNAL_H
#define IA_HW_INTERNAL_H

#include "ia/hw.h"

typedef struct hw_ctx {
    const char *root; /* "" for the live system, else a directory without trailing '/' */
    bool live;        /* reading the running machine (root is "") */
    bool libraries;   /* may dlopen vendor libraries */
} hw_ctx;

/* Reads ROOT+path (path starts with '/') whole, NUL-terminated, at most
 * max_bytes. Returns NULL (errno set) when absent or unreadable; caller frees. */
char *hw_read_file(const hw_ctx *c, const char *path, size_t max_bytes);

/* First line of ROOT+path, trailing whitespace trimmed, into buf. */
bool hw_read_line(const hw_ctx *c, const char *path, char *buf, size_t size);

/* ROOT+path holding one unsigned decimal number (trailing whitespace ok). */
bool hw_read_u64(const hw_ctx *c, const char *path, uint64_t *out);

/* Writes ROOT+path into buf; false when it does not fit. */
bool hw_path(const hw_ctx *c, const char *path, char *buf, size_t size);

/* Copies src into dst (always NUL-terminated, truncating). */
void hw_copy(char *dst, size_t size, const char *src);

/* Appends a device (copied). Returns false only when out of memory. */
bool hw_add_device(ia_hw_info *info, const ia_hw_device *dev);

/* Appends the record of one probe; message is printf-style. */
void hw_add_probe(ia_hw_info *info, const char *name, bool found, int n_devices, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

/* dlopen with the first name that opens: an override from the environment
 * variable `env` (IA_HW_LIB_CUDA, ...) when set, else each of `names` in
 * turn. On failure returns NULL and writes dlerror()'s words into why. */
void *hw_dlopen(const char *env, const char *const *names, char *why, size_t why_size);

/* The probes, in the order hw.c runs them. */
void hw_probe_cpu(const hw_ctx *c, ia_hw_info *info);      /* cpu.c: cpu, cpufreq */
void hw_probe_memory(const hw_ctx *c, ia_hw_info *info);   /* memory.c: memory, cgroup */
void hw_probe_numa(const hw_ctx *c, ia_hw_info *info);     /* system.c */
void hw_probe_thermal(const hw_ctx *c, ia_hw_info *info);  /* system.c */
void hw_probe_soc(const hw_ctx *c, ia_hw_info *info);      /* system.c: Arm SoCs */
void hw_probe_nvidia(const hw_ctx *c, ia_hw_info *info);   /* nvidia.c: libcuda + NVML */
void hw_probe_rocm(const hw_ctx *c, ia_hw_info *info);     /* rocm.c: KFD sysfs + HIP */
void hw_probe_opencl(const hw_ctx *c, ia_hw_info *info);   /* opencl.c */
void hw_probe_vulkan(const hw_ctx *c, ia_hw_info *info);   /* vulkan.c */
void hw_probe_openvino(const hw_ctx *c, ia_hw_info *info); /* openvino.c */
void hw_probe_apple(const hw_ctx *c, ia_hw_info *info);    /* apple.c: macOS only */

/* perf.c: the bandwidth / FMA micro-probe, cached in cache_dir keyed by CPU
 * model and thread count. */
void hw_probe_perf(const ia_hw_options *opts, ia_hw_info *info);

#endif /* IA_HW_INTERNAL_H */
