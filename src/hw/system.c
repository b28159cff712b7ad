/*
 * system.c: the "numa", "thermal" and "soc" probes.
 *
 * NUMA nodes (/sys/devices/system/node/node*) tell the scheduler which CPUs
 * share which memory; thermal zones (/sys/class/thermal/thermal_zone*) show
 * whether a phone or a laptop is already hot before a benchmark runs; and
 * the SoC name (/sys/devices/soc0 and the cpuinfo "Hardware" line) is what
 * people call an Arm phone or board by, since its cores alone do not say
 * "Snapdragon 8 Gen 2". Each probe reads only what the tree under its root
 * holds and says which files it looked for when they are absent.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"

/* ---- numbered sysfs directories ------------------------------------------------------ */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The N of every entry "<prefix>N" in dir (sorted, at most max); -1 when the
 * directory cannot be opened. */
static int list_numbered(const hw_ctx *c, const char *dir, const char *prefix, int *ids, int max) {
    char full[4096];
    if (!hw_path(c, dir, full, sizeof full))
        return -1;
    DIR *d = opendir(full);
    if (!d)
        return -1;
    size_t plen = strlen(prefix);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        const char *s = e->d_name;
        if (strncmp(s, prefix, plen) != 0 || !s[plen])
            continue;
        long v = 0;
        bool digits = true;
        for (const char *p = s + plen; *p && digits; p++) {
            digits = *p >= '0' && *p <= '9' && v < 1000000;
            v = v * 10 + (*p - '0');
        }
        if (digits && v < 1000000)
            ids[n++] = (int)v;
    }
    closedir(d);
    qsort(ids, (size_t)n, sizeof *ids, cmp_int);
    return n;
}

/* Appends printf output to buf at *used, stopping quietly when full. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
    if (*used >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used += (size_t)n;
}

/* ---- NUMA ------------------------------------------------------------------------------ */

#define MAX_NODES 1024

void hw_probe_numa(const hw_ctx *c, ia_hw_info *info) {
    static const char dir[] = "/sys/devices/system/node";
    int ids[MAX_NODES];
    int n = list_numbered(c, dir, "node", ids, MAX_NODES);
    if (n <= 0) {
        hw_add_probe(info, "numa", false, 0, "no %s/node* under %s%s", dir, hw_root_name(c),
                     n < 0 ? " (kernel without NUMA support)" : "");
        return;
    }
    info->numa = ia_calloc((size_t)n, sizeof *info->numa);
    if (!info->numa) {
        hw_add_probe(info, "numa", false, 0, "out of memory listing %d nodes", n);
        return;
    }
    char msg[256];
    size_t used = 0;
    append(msg, sizeof msg, &used, "%d node%s:", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        ia_hw_numa_node *node = &info->numa[info->n_numa++];
        char path[128], line[64];
        node->id = ids[i];
        snprintf(path, sizeof path, "%s/node%d/cpulist", dir, ids[i]);
        if (hw_read_line(c, path, line, sizeof line))
            hw_copy_clean(node->cpulist, sizeof node->cpulist, line, strlen(line));
        snprintf(path, sizeof path, "%s/node%d/meminfo", dir, ids[i]);
        char *text = hw_read_file(c, path, 64 * 1024);
        if (text && !hw_meminfo_value(text, strlen(text), "MemTotal", &node->memory_total))
            node->memory_total = 0;
        free(text);
        append(msg, sizeof msg, &used, "%s node%d cpus %s %llu MiB", i ? ";" : "", node->id,
               node->cpulist[0] ? node->cpulist : "none",
               (unsigned long long)(node->memory_total >> 20));
    }
    hw_add_probe(info, "numa", true, 0, "%s", msg);
}

/* ---- thermal ---------------------------------------------------------------------------- */

#define MAX_ZONES 256

/* A zone's temperature in degrees: the file holds millidegrees. Readings
 * outside [-100, 250] C are a sensor that is off or broken, not a temperature. */
static bool read_temp(const hw_ctx *c, int zone, double *celsius) {
    char path[128], line[32];
    snprintf(path, sizeof path, "/sys/class/thermal/thermal_zone%d/temp", zone);
    if (!hw_read_line(c, path, line, sizeof line))
        return false;
    char *end;
    errno = 0;
    long v = strtol(line, &end, 10);
    if (errno || end == line || *end != '\0' || v < -100000 || v > 250000)
        return false;
    *celsius = (double)v / 1000.0;
    return true;
}

void hw_probe_thermal(const hw_ctx *c, ia_hw_info *info) {
    int ids[MAX_ZONES];
    int n = list_numbered(c, "/sys/class/thermal", "thermal_zone", ids, MAX_ZONES);
    if (n <= 0) {
        hw_add_probe(info, "thermal", false, 0, "no /sys/class/thermal/thermal_zone* under %s",
                     hw_root_name(c));
        return;
    }
    info->thermal = ia_calloc((size_t)n, sizeof *info->thermal);
    if (!info->thermal) {
        hw_add_probe(info, "thermal", false, 0, "out of memory listing %d zones", n);
        return;
    }
    char msg[256];
    size_t used = 0;
    int unreadable = 0;
    for (int i = 0; i < n; i++) {
        double celsius;
        if (!read_temp(c, ids[i], &celsius)) {
            unreadable++;
            continue;
        }
        ia_hw_thermal *t = &info->thermal[info->n_thermal++];
        char path[128], line[64];
        snprintf(t->zone, sizeof t->zone, "thermal_zone%d", ids[i]);
        snprintf(path, sizeof path, "/sys/class/thermal/thermal_zone%d/type", ids[i]);
        if (hw_read_line(c, path, line, sizeof line))
            hw_copy_clean(t->type, sizeof t->type, line, strlen(line));
        t->celsius = celsius;
        append(msg, sizeof msg, &used, "%s%s %.1f C", info->n_thermal > 1 ? ", " : "",
               t->type[0] ? t->type : t->zone, celsius);
    }
    if (!info->n_thermal) {
        hw_add_probe(info, "thermal", false, 0,
                     "%d thermal zone%s under %s, none with a readable temperature", n,
                     n == 1 ? "" : "s", hw_root_name(c));
        return;
    }
    char head[48];
    snprintf(head, sizeof head, "%zu zone%s", info->n_thermal, info->n_thermal == 1 ? "" : "s");
    if (unreadable)
        hw_add_probe(info, "thermal", true, 0, "%s (%d unreadable): %s", head, unreadable, msg);
    else
        hw_add_probe(info, "thermal", true, 0, "%s: %s", head, msg);
}

/* ---- SoC ------------------------------------------------------------------------------ */

void hw_probe_soc(const hw_ctx *c, ia_hw_info *info) {
    ia_hw_cpu *cpu = &info->cpu;
    const char *arch = cpu->arch;
    if (strncmp(arch, "x86", 3) == 0 || (arch[0] == 'i' && strstr(arch, "86"))) {
        hw_add_probe(info, "soc", false, 0, "not an Arm SoC (%s)", arch);
        return;
    }
    char family[128] = "", machine[128] = "", soc_id[128] = "", line[128];
    if (hw_read_line(c, "/sys/devices/soc0/family", line, sizeof line))
        hw_copy_clean(family, sizeof family, line, strlen(line));
    if (hw_read_line(c, "/sys/devices/soc0/machine", line, sizeof line))
        hw_copy_clean(machine, sizeof machine, line, strlen(line));
    if (hw_read_line(c, "/sys/devices/soc0/soc_id", line, sizeof line))
        hw_copy_clean(soc_id, sizeof soc_id, line, strlen(line));
    char *text = hw_read_file(c, "/proc/cpuinfo", HW_PROC_MAX_BYTES);
    hw_cpuinfo ci;
    hw_cpuinfo_parse(text, text ? strlen(text) : 0, &ci);
    free(text);

    if (!hw_soc_identify(family, machine, soc_id, ci.hardware, cpu->soc, sizeof cpu->soc,
                         cpu->soc_vendor, sizeof cpu->soc_vendor)) {
        hw_add_probe(info, "soc", false, 0,
                     "no /sys/devices/soc0/{family,machine,soc_id} and no cpuinfo Hardware "
                     "line under %s",
                     hw_root_name(c));
        return;
    }
    hw_add_probe(info, "soc", true, 0,
                 "%s%s (soc0 family '%s' machine '%s' soc_id '%s'; cpuinfo Hardware '%s')",
                 cpu->soc, cpu->soc_vendor[0] ? "" : ", vendor unknown", family, machine, soc_id,
                 ci.hardware);
}
