/*
 * device.c: choosing where a model runs.
 *
 * Every device the detection found (the CPU always, accelerators when their
 * probes found some) becomes a candidate. A candidate is usable when the
 * engine implements its kind in this build (runtime/ says which kinds) and
 * the model's planned bytes fit in the memory the device has left, minus a
 * headroom. Usable devices are ranked: accelerators by kind preference (CUDA,
 * ROCm, Metal, Vulkan, OpenCL), then by free memory, the CPU last. "auto"
 * takes the first usable device; a named device is taken only if usable, and
 * otherwise the error carries the reason rather than silently running
 * elsewhere. Each reason is written so a user can act on it.
 */
#include <stdlib.h>
#include <string.h>

#include "hw_internal.h"

/* Lower is preferred. The CPU is last: it can always run what the engine
 * implements, and it is the fallback when nothing else fits. */
static const int kind_preference[IA_DEVICE_KIND_COUNT] = {
    [IA_DEVICE_CUDA] = 0,   [IA_DEVICE_ROCM] = 1,   [IA_DEVICE_METAL] = 2,
    [IA_DEVICE_VULKAN] = 3, [IA_DEVICE_OPENCL] = 4, [IA_DEVICE_CPU] = 5,
};

ia_status ia_device_parse(const char *text, ia_device_kind *kind, int *index) {
    if (!text || !*text || strcmp(text, "auto") == 0) {
        *kind = IA_DEVICE_KIND_COUNT;
        *index = -1;
        return IA_OK;
    }
    size_t name_len = strcspn(text, ":");
    for (int k = 0; k < IA_DEVICE_KIND_COUNT; k++) {
        const char *name = ia_device_kind_name((ia_device_kind)k);
        if (strlen(name) != name_len || strncmp(text, name, name_len) != 0)
            continue;
        *kind = (ia_device_kind)k;
        *index = -1;
        if (text[name_len] == '\0')
            return IA_OK;
        const char *digits = text + name_len + 1;
        char *end;
        long v = strtol(digits, &end, 10);
        if (*digits < '0' || *digits > '9' || *end != '\0' || v > 1024)
            break;
        *index = (int)v;
        return IA_OK;
    }
    return ia_error_set(IA_EINVAL,
                        "device '%s': expected auto, cpu, cuda, cuda:N, rocm:N, opencl:N, "
                        "vulkan:N or metal:N",
                        text);
}

static bool kind_listed(const char *list, ia_device_kind kind) {
    const char *name = ia_device_kind_name(kind);
    size_t n = strlen(name);
    for (const char *p = list ? list : ""; *p;) {
        size_t len = strcspn(p, ", ");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len;
        p += strspn(p, ", ");
    }
    return false;
}

static void format_bytes(char *buf, size_t size, uint64_t bytes) {
    if (bytes >= (1ull << 30))
        snprintf(buf, size, "%.1f GiB", (double)bytes / (1ull << 30));
    else
        snprintf(buf, size, "%.0f MiB", (double)bytes / (1ull << 20));
}

/* Judges one device: fills usable, memory_available and reason. */
static void judge(const ia_device_request *req, double headroom, ia_device_candidate *c,
                  uint64_t memory, bool memory_known) {
    char need[32], have[32];
    format_bytes(need, sizeof need, req->bytes_needed);
    if (!kind_listed(req->implemented, c->kind)) {
        snprintf(c->reason, sizeof c->reason,
                 "the engine has no %s backend for this model in this build",
                 ia_device_kind_name(c->kind));
        return;
    }
    if (!memory_known) {
        snprintf(c->reason, sizeof c->reason, "its free memory is unknown; needs %s", need);
        return;
    }
    uint64_t usable = (uint64_t)((double)memory * (1.0 - headroom));
    c->memory_available = usable;
    format_bytes(have, sizeof have, usable);
    if (req->bytes_needed > usable) {
        snprintf(c->reason, sizeof c->reason, "needs %s, %s free after %.0f%% headroom", need, have,
                 headroom * 100);
        return;
    }
    c->usable = true;
    snprintf(c->reason, sizeof c->reason, "fits: needs %s of %s free", need, have);
}

static int compare_candidates(const void *pa, const void *pb) {
    const ia_device_candidate *a = pa, *b = pb;
    if (a->usable != b->usable)
        return a->usable ? -1 : 1;
    if (kind_preference[a->kind] != kind_preference[b->kind])
        return kind_preference[a->kind] - kind_preference[b->kind];
    if (a->memory_available != b->memory_available)
        return a->memory_available > b->memory_available ? -1 : 1;
    return a->index - b->index;
}

ia_status ia_device_choose(const ia_hw_info *hw, const ia_device_request *req,
                           ia_device_candidate *list, size_t cap, size_t *n, size_t *chosen) {
    ia_device_kind want_kind;
    int want_index;
    *n = 0;
    *chosen = 0;
    ia_status st = ia_device_parse(req->want, &want_kind, &want_index);
    if (st != IA_OK)
        return st;
    double headroom = req->headroom > 0 && req->headroom < 1 ? req->headroom : 0.10;

    size_t total = 1 + hw->n_devices;
    ia_device_candidate *all = ia_calloc(total, sizeof *all);
    if (!all)
        return ia_error_set(IA_ENOMEM, "device choice: out of memory");
    ia_device_candidate *cpu = &all[0];
    cpu->kind = IA_DEVICE_CPU;
    hw_copy(cpu->id, sizeof cpu->id, "cpu");
    hw_copy(cpu->name, sizeof cpu->name, hw->cpu.model[0] ? hw->cpu.model : "CPU");
    uint64_t cpu_memory = hw->memory.usable ? hw->memory.usable : hw->memory.available;
    judge(req, headroom, cpu, cpu_memory, cpu_memory != 0);
    for (size_t i = 0; i < hw->n_devices; i++) {
        const ia_hw_device *d = &hw->devices[i];
        ia_device_candidate *c = &all[1 + i];
        c->kind = d->kind;
        c->index = d->index;
        snprintf(c->id, sizeof c->id, "%s:%d", ia_device_kind_name(d->kind), d->index);
        hw_copy(c->name, sizeof c->name, d->name);
        uint64_t memory = d->memory_free ? d->memory_free : d->memory_total;
        judge(req, headroom, c, memory, memory != 0);
    }
    qsort(all, total, sizeof *all, compare_candidates);
    int rank = 0;
    for (size_t i = 0; i < total; i++)
        all[i].rank = all[i].usable ? rank++ : -1;

    /* The pick: the first usable for auto; else the first that matches the
     * name (usable ones sort first, so "cuda" takes the best CUDA device). */
    size_t pick = total;
    for (size_t i = 0; i < total && pick == total; i++) {
        bool match =
            want_kind == IA_DEVICE_KIND_COUNT
                ? all[i].usable
                : all[i].kind == want_kind &&
                      (want_index < 0 || all[i].index == want_index || want_kind == IA_DEVICE_CPU);
        if (match)
            pick = i;
    }
    if (pick == total && want_kind != IA_DEVICE_KIND_COUNT)
        st = ia_error_set(IA_ENOTFOUND,
                          "device '%s': no such device on this machine (see 'ipfs-accelerate hw')",
                          req->want);
    else if (pick == total) {
        char why[768];
        size_t len = 0;
        why[0] = '\0';
        for (size_t i = 0; i < total && len < sizeof why; i++) {
            int w = snprintf(why + len, sizeof why - len, "%s%s: %s", i ? "; " : "", all[i].id,
                             all[i].reason);
            len += w > 0 ? (size_t)w : 0;
        }
        st = ia_error_set(IA_EUNSUPPORTED, "no device can run this model: %s", why);
    } else if (!all[pick].usable)
        st = ia_error_set(IA_EUNSUPPORTED, "device '%s' cannot run this model: %s", all[pick].id,
                          all[pick].reason);

    size_t copy = total < cap ? total : cap;
    memcpy(list, all, copy * sizeof *all);
    *n = copy;
    *chosen = pick < copy ? pick : 0;
    free(all);
    return st;
}
