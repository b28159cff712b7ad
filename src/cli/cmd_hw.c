/*
 * `ipfs-accelerate hw`: what this machine has, and why a probe found nothing.
 *
 *   hw [--json] [--perf [--fresh]] [--root DIR] [--no-libraries]
 *
 * --root reads a recorded /proc and /sys tree instead of the live ones (the
 * tests' fixtures, or a tree recorded on another machine with
 * tools/record_hw_tree.sh); vendor libraries are then not opened unless
 * --libraries is given.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/hw.h"

static const char hw_usage[] =
    "usage: ipfs-accelerate hw [--json] [--perf [--fresh]] [--root DIR] [--no-libraries]\n"
    "\n"
    "Prints the CPU, memory (with cgroup limits), NUMA nodes, accelerators (CUDA, ROCm,\n"
    "OpenCL, Vulkan, Metal), OpenVINO, thermal zones, and for every probe what it found\n"
    "or why it found nothing.\n"
    "\n"
    "  --json           one JSON object\n"
    "  --perf           also measure memory bandwidth and peak f32 GFLOP/s (cached)\n"
    "  --fresh          with --perf: measure again even if a cached result exists\n"
    "  --root DIR       read DIR/proc and DIR/sys instead of the live system\n"
    "  --no-libraries   do not open vendor libraries (libcuda, NVML, OpenCL, ...)\n"
    "  --libraries      open them even with --root\n";

static void print_bytes(uint64_t bytes) {
    if (bytes >= (1ull << 30))
        printf("%.1f GiB", (double)bytes / (1ull << 30));
    else if (bytes >= (1ull << 20))
        printf("%.0f MiB", (double)bytes / (1ull << 20));
    else
        printf("%.0f KiB", (double)bytes / 1024);
}

static void print_cpu(const ia_hw_cpu *cpu) {
    printf("CPU       %s (%s%s%s)", cpu->model[0] ? cpu->model : "unknown model",
           cpu->arch[0] ? cpu->arch : "?", cpu->vendor[0] ? ", " : "", cpu->vendor);
    if (cpu->sockets)
        printf(": %d socket%s", cpu->sockets, cpu->sockets == 1 ? "" : "s");
    printf("%s%d cores, %d threads\n", cpu->sockets ? ", " : ": ", cpu->physical_cores,
           cpu->logical_cores);
    printf("          features:");
    int any = 0;
    for (int f = 0; f < IA_CPU_FEATURE_COUNT; f++)
        if (ia_hw_cpu_has(cpu, (ia_cpu_feature)f)) {
            printf(" %s", ia_cpu_feature_name((ia_cpu_feature)f));
            any = 1;
        }
    printf("%s\n          cache:", any ? "" : " none known");
    const struct {
        const char *name;
        uint64_t bytes;
    } caches[] = {{"L1d", cpu->cache_l1d}, {"L2", cpu->cache_l2}, {"L3", cpu->cache_l3}};
    for (size_t i = 0; i < 3; i++) {
        printf(" %s ", caches[i].name);
        if (caches[i].bytes)
            print_bytes(caches[i].bytes);
        else
            printf("?");
    }
    printf("; governor %s", cpu->governor[0] ? cpu->governor : "none");
    if (cpu->freq_max_khz)
        printf(", max %.2f GHz", cpu->freq_max_khz / 1e6);
    printf("\n");
    if (cpu->soc[0])
        printf("SoC       %s\n", cpu->soc);
}

static void print_memory(const ia_hw_info *info) {
    const ia_hw_memory *m = &info->memory;
    printf("Memory    ");
    print_bytes(m->total);
    printf(" total, ");
    print_bytes(m->available);
    printf(" available; ");
    if (m->cgroup_version && m->cgroup_limit) {
        printf("cgroup v%d limit ", m->cgroup_version);
        print_bytes(m->cgroup_limit);
        printf(" (");
        print_bytes(m->cgroup_usage);
        printf(" used); ");
    } else if (m->cgroup_version) {
        printf("cgroup v%d: no limit; ", m->cgroup_version);
    }
    printf("usable ");
    print_bytes(m->usable);
    printf("\n");
    for (size_t i = 0; i < info->n_numa; i++) {
        printf(i ? "          " : "NUMA      ");
        printf("node%d: ", info->numa[i].id);
        print_bytes(info->numa[i].memory_total);
        printf(", cpus %s\n", info->numa[i].cpulist);
    }
}

static void print_devices(const ia_hw_info *info) {
    if (!info->n_devices)
        printf("Devices   none (see the probes below)\n");
    for (size_t i = 0; i < info->n_devices; i++) {
        const ia_hw_device *d = &info->devices[i];
        printf(i ? "          " : "Devices   ");
        printf("%s:%d %s (%s", ia_device_kind_name(d->kind), d->index, d->name,
               d->type[0] ? d->type : "?");
        if (d->vendor[0])
            printf(", %s", d->vendor);
        if (d->arch[0])
            printf(", %s", d->arch);
        printf(")");
        if (d->memory_total) {
            printf(" ");
            print_bytes(d->memory_total);
            if (d->memory_free) {
                printf(" (");
                print_bytes(d->memory_free);
                printf(" free)");
            }
        }
        if (d->compute_units)
            printf(", %d compute units", d->compute_units);
        if (d->driver[0])
            printf(", driver %s", d->driver);
        printf("\n");
    }
}

static void print_text(const ia_hw_info *info) {
    print_cpu(&info->cpu);
    print_memory(info);
    print_devices(info);
    printf("OpenVINO  %s\n", info->openvino_version[0] ? info->openvino_version : "not found");
    if (info->n_thermal) {
        printf("Thermal  ");
        for (size_t i = 0; i < info->n_thermal; i++)
            printf(" %s %.1f°C%s", info->thermal[i].type, info->thermal[i].celsius,
                   i + 1 < info->n_thermal ? "," : "");
        printf("\n");
    }
    if (info->perf.measured)
        printf("Perf      %.1f GB/s memory bandwidth, %.0f GFLOP/s f32 peak (%d threads%s)\n",
               info->perf.mem_bandwidth_gbs, info->perf.peak_gflops_f32, info->perf.threads,
               info->perf.cached ? ", cached" : "");
    printf("Probes\n");
    for (size_t i = 0; i < info->n_probes; i++) {
        const ia_hw_probe *p = &info->probes[i];
        printf("  %-9s %-6s %s\n", p->name, p->found ? "found" : "none", p->message);
    }
}

int cmd_hw(int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},         {"perf", no_argument, NULL, 'p'},
        {"fresh", no_argument, NULL, 'F'},        {"root", required_argument, NULL, 'r'},
        {"no-libraries", no_argument, NULL, 'L'}, {"libraries", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    ia_hw_options opts = ia_hw_options_default();
    bool json = false;
    int libraries = -1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'p':
            opts.perf = true;
            break;
        case 'F':
            opts.perf_fresh = true;
            break;
        case 'r':
            opts.root = optarg;
            break;
        case 'L':
            libraries = 0;
            break;
        case 'l':
            libraries = 1;
            break;
        case 'h':
            fputs(hw_usage, stdout);
            return 0;
        default:
            return cli_usage_error("hw", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("hw", "unexpected argument '%s'", argv[optind]);
    bool recorded = opts.root && *opts.root && strcmp(opts.root, "/") != 0;
    opts.libraries = libraries >= 0 ? libraries == 1 : !recorded;

    ia_hw_info *info;
    ia_status st = ia_hw_detect(&opts, &info);
    if (st != IA_OK)
        return cli_fail("hw", st);
    if (json) {
        json_t *j = ia_hw_info_to_json(info);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        print_text(info);
    }
    ia_hw_info_free(info);
    return fflush(stdout) == 0 ? 0 : 1;
}
