/*
 * host_parse.c: text parsers for /proc/cpuinfo, meminfo, sysfs sizes and
 * CPU lists, /proc/self/cgroup, and the names of Arm cores and SoCs.
 *
 * These are pure functions over (pointer, length) slices: they never read a
 * file, never allocate, and never index past the length they were given, so
 * that one fuzz target (fuzz/fuzz_cpuinfo.c) covers everything the host
 * probes believe about their input. The name tables hold what shipping
 * hardware reports; an id that is not in them is reported by its number
 * rather than guessed.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "host_internal.h"

/* ---- slices ---------------------------------------------------------------------- */

typedef struct slice {
    const char *p;
    size_t n;
} slice;

static bool is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static slice trim(slice s) {
    while (s.n && is_blank(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && is_blank(s.p[s.n - 1]))
        s.n--;
    return s;
}

static bool slice_eq(slice s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* The next '\n'-terminated line of [*cur, end); false at the end. */
static bool next_line(const char **cur, const char *end, slice *line) {
    if (*cur >= end)
        return false;
    const char *nl = memchr(*cur, '\n', (size_t)(end - *cur));
    const char *stop = nl ? nl : end;
    line->p = *cur;
    line->n = (size_t)(stop - *cur);
    *cur = nl ? nl + 1 : end;
    return true;
}

/* Splits "key : value" at the first colon; false when there is none. */
static bool split_key_value(slice line, slice *key, slice *value) {
    const char *colon = memchr(line.p, ':', line.n);
    if (!colon)
        return false;
    *key = trim((slice){line.p, (size_t)(colon - line.p)});
    *value = trim((slice){colon + 1, line.n - (size_t)(colon - line.p) - 1});
    return true;
}

/* Unsigned decimal filling the whole slice, at most `max`. */
static bool parse_dec(slice s, uint64_t max, uint64_t *out) {
    if (s.n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!isdigit((unsigned char)s.p[i]))
            return false;
        if (v > (max - (uint64_t)(s.p[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return true;
}

/* "0x41" (or bare hex digits) filling the whole slice, at most 0xffffffff. */
static bool parse_hex(slice s, unsigned *out) {
    if (s.n >= 2 && s.p[0] == '0' && (s.p[1] == 'x' || s.p[1] == 'X')) {
        s.p += 2;
        s.n -= 2;
    }
    if (s.n == 0 || s.n > 8)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < s.n; i++) {
        int ch = (unsigned char)s.p[i];
        if (!isxdigit(ch))
            return false;
        v = v * 16 + (unsigned)(isdigit(ch) ? ch - '0' : (tolower(ch) - 'a' + 10));
    }
    *out = v;
    return true;
}

void hw_copy_clean(char *dst, size_t size, const char *src, size_t n) {
    if (size == 0)
        return;
    slice s = trim((slice){src, src ? n : 0});
    size_t o = 0;
    for (size_t i = 0; i < s.n && o + 1 < size; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        dst[o++] = ch == '\t' ? ' ' : (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[o] = '\0';
}

/* ---- cpuinfo ----------------------------------------------------------------------- */

typedef struct feature_word {
    const char *name;
    ia_cpu_feature feature;
} feature_word;

/* Arm spells its features its own way; "aes" is spelled the same on both
 * and means the same thing (AES instructions), so it shares x86's bit, and
 * 32-bit kernels say "neon" for what arm64 calls "asimd". Arm's sha1/sha2
 * are not mapped: IA_CPU_SHA is x86's sha_ni by name. */
static const feature_word arm_words[] = {
    {"asimd", IA_CPU_NEON}, {"neon", IA_CPU_NEON},     {"asimddp", IA_CPU_DOTPROD},
    {"i8mm", IA_CPU_I8MM},  {"bf16", IA_CPU_ARM_BF16}, {"sve", IA_CPU_SVE},
    {"sve2", IA_CPU_SVE2},  {"aes", IA_CPU_AES},
};

static uint64_t x86_word(slice w) {
    for (int f = IA_CPU_SSE4_2; f <= IA_CPU_AES; f++)
        if (slice_eq(w, ia_cpu_feature_name((ia_cpu_feature)f)))
            return 1ull << f;
    return 0;
}

static uint64_t arm_word(slice w) {
    for (size_t i = 0; i < sizeof arm_words / sizeof arm_words[0]; i++)
        if (slice_eq(w, arm_words[i].name))
            return 1ull << arm_words[i].feature;
    return 0;
}

/* The features named in a flags/Features value; *saw_lm reports x86 "lm". */
static uint64_t parse_feature_list(slice v, bool arm, bool *saw_lm) {
    uint64_t bits = 0;
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && is_blank(v.p[i]))
            i++;
        size_t start = i;
        while (i < v.n && !is_blank(v.p[i]))
            i++;
        slice w = {v.p + start, i - start};
        if (w.n == 0)
            continue;
        bits |= arm ? arm_word(w) : x86_word(w);
        if (saw_lm && slice_eq(w, "lm"))
            *saw_lm = true;
    }
    return bits;
}

static void add_arm_part(hw_cpuinfo *ci, unsigned implementer, unsigned part, int processor) {
    for (int i = 0; i < ci->n_parts; i++) {
        if (ci->parts[i].implementer == implementer && ci->parts[i].part == part) {
            ci->parts[i].count++;
            return;
        }
    }
    if (ci->n_parts == HW_ARM_PARTS_MAX) {
        ci->n_other_parts++;
        return;
    }
    ci->parts[ci->n_parts++] =
        (hw_arm_part){.implementer = implementer, .part = part, .count = 1, .first = processor};
}

/* Parser state that does not belong in the result. */
typedef struct cpuinfo_state {
    bool have_features;    /* a flags/Features line was seen (features is their AND) */
    bool have_implementer; /* the current block named its implementer */
    unsigned implementer;
    uint8_t socket_ids[512]; /* bitmap of "physical id" values below 4096 */
} cpuinfo_state;

/* Features are ANDed across processors: a core that lacks one means code
 * using it may fault there, so the set must hold for every core. */
static void merge_features(hw_cpuinfo *ci, cpuinfo_state *st, uint64_t bits) {
    ci->features = st->have_features ? (ci->features & bits) : bits;
    st->have_features = true;
}

static void cpuinfo_line(hw_cpuinfo *ci, cpuinfo_state *st, slice key, slice v) {
    uint64_t num;
    if (slice_eq(key, "processor")) {
        if (parse_dec(v, 1u << 24, &num) && ci->processors < (1 << 24))
            ci->processors++;
        st->have_implementer = false;
    } else if (slice_eq(key, "Processor")) {
        /* Old arm64 kernels: "Processor : AArch64 Processor rev 4 (aarch64)". */
        for (size_t i = 0; i + 7 <= v.n; i++)
            if (memcmp(v.p + i, "AArch64", 7) == 0)
                ci->arm = ci->arm_64 = true;
    } else if (slice_eq(key, "vendor_id")) {
        ci->x86 = true;
        if (!ci->vendor[0])
            hw_copy_clean(ci->vendor, sizeof ci->vendor, v.p, v.n);
    } else if (slice_eq(key, "model name")) {
        if (!ci->model[0])
            hw_copy_clean(ci->model, sizeof ci->model, v.p, v.n);
    } else if (slice_eq(key, "Hardware")) {
        if (!ci->hardware[0])
            hw_copy_clean(ci->hardware, sizeof ci->hardware, v.p, v.n);
    } else if (slice_eq(key, "flags")) {
        ci->x86 = true;
        merge_features(ci, st, parse_feature_list(v, false, &ci->x86_64));
    } else if (slice_eq(key, "Features")) {
        ci->arm = true;
        uint64_t bits = parse_feature_list(v, true, NULL);
        if (bits & (1ull << IA_CPU_NEON))
            ci->arm_64 = true;
        merge_features(ci, st, bits);
    } else if (slice_eq(key, "physical id")) {
        if (parse_dec(v, 4095, &num))
            st->socket_ids[num / 8] |= (uint8_t)(1u << (num % 8));
    } else if (slice_eq(key, "cpu cores")) {
        if (!ci->cores_per_socket && parse_dec(v, 1u << 16, &num) && num > 0)
            ci->cores_per_socket = (int)num;
    } else if (slice_eq(key, "CPU implementer")) {
        ci->arm = true;
        st->have_implementer = parse_hex(v, &st->implementer);
    } else if (slice_eq(key, "CPU architecture")) {
        ci->arm = true;
        if ((parse_dec(v, 1000, &num) && num >= 8) || slice_eq(v, "AArch64"))
            ci->arm_64 = true;
    } else if (slice_eq(key, "CPU part")) {
        unsigned part;
        if (st->have_implementer && parse_hex(v, &part))
            add_arm_part(ci, st->implementer, part, ci->processors > 0 ? ci->processors - 1 : 0);
    }
}

void hw_cpuinfo_parse(const char *text, size_t len, hw_cpuinfo *out) {
    memset(out, 0, sizeof *out);
    if (!text)
        return;
    cpuinfo_state st = {0};
    const char *cur = text, *end = text + len;
    slice line, key, value;
    while (next_line(&cur, end, &line))
        if (split_key_value(line, &key, &value))
            cpuinfo_line(out, &st, key, value);
    for (size_t i = 0; i < sizeof st.socket_ids; i++)
        out->sockets += __builtin_popcount(st.socket_ids[i]);
}

/* ---- Arm core names -------------------------------------------------------------- */

typedef struct arm_part_name {
    unsigned implementer, part;
    const char *name;
    int tier; /* 1 little, 2 big, 3 prime: orders a big.LITTLE listing */
} arm_part_name;

static const arm_part_name arm_parts[] = {
    {0x41, 0xd02, "Cortex-A34", 1},
    {0x41, 0xd03, "Cortex-A53", 1},
    {0x41, 0xd04, "Cortex-A35", 1},
    {0x41, 0xd05, "Cortex-A55", 1},
    {0x41, 0xd06, "Cortex-A65", 1},
    {0x41, 0xd07, "Cortex-A57", 2},
    {0x41, 0xd08, "Cortex-A72", 2},
    {0x41, 0xd09, "Cortex-A73", 2},
    {0x41, 0xd0a, "Cortex-A75", 2},
    {0x41, 0xd0b, "Cortex-A76", 2},
    {0x41, 0xd0c, "Neoverse-N1", 2},
    {0x41, 0xd0d, "Cortex-A77", 2},
    {0x41, 0xd0e, "Cortex-A76AE", 2},
    {0x41, 0xd40, "Neoverse-V1", 2},
    {0x41, 0xd41, "Cortex-A78", 2},
    {0x41, 0xd42, "Cortex-A78AE", 2},
    {0x41, 0xd43, "Cortex-A65AE", 1},
    {0x41, 0xd44, "Cortex-X1", 3},
    {0x41, 0xd46, "Cortex-A510", 1},
    {0x41, 0xd47, "Cortex-A710", 2},
    {0x41, 0xd48, "Cortex-X2", 3},
    {0x41, 0xd49, "Neoverse-N2", 2},
    {0x41, 0xd4a, "Neoverse-E1", 1},
    {0x41, 0xd4b, "Cortex-A78C", 2},
    {0x41, 0xd4c, "Cortex-X1C", 3},
    {0x41, 0xd4d, "Cortex-A715", 2},
    {0x41, 0xd4e, "Cortex-X3", 3},
    {0x41, 0xd4f, "Neoverse-V2", 2},
    {0x41, 0xd80, "Cortex-A520", 1},
    {0x41, 0xd81, "Cortex-A720", 2},
    {0x41, 0xd82, "Cortex-X4", 3},
    {0x41, 0xd84, "Neoverse-V3", 2},
    {0x41, 0xd85, "Cortex-X925", 3},
    {0x41, 0xd87, "Cortex-A725", 2},
    {0x41, 0xd8e, "Neoverse-N3", 2},
    {0x46, 0x001, "A64FX", 2},
    {0x48, 0xd01, "TaiShan v110", 2},
    {0x4e, 0x004, "Carmel", 2},
    {0x51, 0x001, "Oryon", 3},
    {0x51, 0x201, "Kryo", 2},
    {0x51, 0x205, "Kryo", 2},
    {0x51, 0x211, "Kryo", 2},
    {0x51, 0x800, "Kryo 2xx Gold", 2},
    {0x51, 0x801, "Kryo 2xx Silver", 1},
    {0x51, 0x802, "Kryo 385 Gold", 2},
    {0x51, 0x803, "Kryo 385 Silver", 1},
    {0x51, 0x804, "Kryo 485 Gold", 2},
    {0x51, 0x805, "Kryo 485 Silver", 1},
    {0x51, 0xc00, "Falkor", 2},
    {0x51, 0xc01, "Saphira", 2},
    {0x53, 0x001, "Exynos M1", 3},
    {0x53, 0x002, "Exynos M3", 3},
    {0x53, 0x003, "Exynos M4", 3},
    {0x53, 0x004, "Exynos M5", 3},
    {0x61, 0x022, "Apple M1 Icestorm", 1},
    {0x61, 0x023, "Apple M1 Firestorm", 3},
    {0x61, 0x024, "Apple M1 Pro Icestorm", 1},
    {0x61, 0x025, "Apple M1 Pro Firestorm", 3},
    {0x61, 0x028, "Apple M1 Max Icestorm", 1},
    {0x61, 0x029, "Apple M1 Max Firestorm", 3},
    {0x61, 0x032, "Apple M2 Blizzard", 1},
    {0x61, 0x033, "Apple M2 Avalanche", 3},
    {0xc0, 0xac3, "Ampere-1", 2},
    {0xc0, 0xac4, "Ampere-1A", 2},
};

static const arm_part_name *find_part(unsigned implementer, unsigned part) {
    for (size_t i = 0; i < sizeof arm_parts / sizeof arm_parts[0]; i++)
        if (arm_parts[i].implementer == implementer && arm_parts[i].part == part)
            return &arm_parts[i];
    return NULL;
}

const char *hw_arm_part_name(unsigned implementer, unsigned part) {
    const arm_part_name *p = find_part(implementer, part);
    return p ? p->name : NULL;
}

const char *hw_arm_implementer_name(unsigned implementer) {
    static const struct {
        unsigned code;
        const char *name;
    } names[] = {
        {0x41, "ARM"},       {0x42, "Broadcom"}, {0x43, "Cavium"}, {0x46, "Fujitsu"},
        {0x48, "HiSilicon"}, {0x4e, "NVIDIA"},   {0x50, "APM"},    {0x51, "Qualcomm"},
        {0x53, "Samsung"},   {0x56, "Marvell"},  {0x61, "Apple"},  {0x69, "Intel"},
        {0x6d, "Microsoft"}, {0xc0, "Ampere"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == implementer)
            return names[i].name;
    return NULL;
}

/* True when part a should be listed before part b: bigger tier first, then
 * (within Arm's numbering, newer is higher) the higher part number. */
static bool part_before(const hw_arm_part *a, const hw_arm_part *b) {
    const arm_part_name *na = find_part(a->implementer, a->part);
    const arm_part_name *nb = find_part(b->implementer, b->part);
    int ta = na ? na->tier : 0, tb = nb ? nb->tier : 0;
    if (ta != tb)
        return ta > tb;
    if (a->implementer != b->implementer)
        return a->implementer < b->implementer;
    return a->part > b->part;
}

static void part_label(const hw_arm_part *p, char *buf, size_t size) {
    const char *name = hw_arm_part_name(p->implementer, p->part);
    const char *vendor = hw_arm_implementer_name(p->implementer);
    if (name)
        snprintf(buf, size, "%s", name);
    else if (vendor)
        snprintf(buf, size, "%s part 0x%x", vendor, p->part);
    else
        snprintf(buf, size, "Arm 0x%x part 0x%x", p->implementer, p->part);
}

void hw_arm_model_name(const hw_cpuinfo *ci, char *out, size_t size) {
    if (size == 0)
        return;
    out[0] = '\0';
    int n = ci->n_parts < HW_ARM_PARTS_MAX ? ci->n_parts : HW_ARM_PARTS_MAX;
    if (n <= 0)
        return;
    int order[HW_ARM_PARTS_MAX];
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && part_before(&ci->parts[i], &ci->parts[order[j - 1]])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    char label[64];
    if (n == 1 && ci->n_other_parts == 0) {
        part_label(&ci->parts[0], label, sizeof label);
        hw_copy(out, size, label);
        return;
    }
    size_t used = 0;
    for (int i = 0; i < n && used < size; i++) {
        const hw_arm_part *p = &ci->parts[order[i]];
        part_label(p, label, sizeof label);
        int w = snprintf(out + used, size - used, "%s%dx %s", i ? " + " : "", p->count, label);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (ci->n_other_parts && used < size)
        snprintf(out + used, size - used, " + %dx other", ci->n_other_parts);
}

/* ---- meminfo, sizes, CPU lists ----------------------------------------------------- */

bool hw_meminfo_value(const char *text, size_t len, const char *key, uint64_t *bytes) {
    if (!text || !key)
        return false;
    size_t klen = strlen(key);
    const char *cur = text, *end = text + len;
    slice line, k, v;
    while (next_line(&cur, end, &line)) {
        if (!split_key_value(line, &k, &v))
            continue;
        /* "MemTotal" or, in node meminfo, "Node 0 MemTotal". */
        bool match = slice_eq(k, key) || (k.n > klen && k.p[k.n - klen - 1] == ' ' &&
                                          memcmp(k.p + k.n - klen, key, klen) == 0 && k.n >= 5 &&
                                          memcmp(k.p, "Node ", 5) == 0);
        if (!match)
            continue;
        uint64_t mult = 1;
        if (v.n >= 2 && (memcmp(v.p + v.n - 2, "kB", 2) == 0)) {
            mult = 1024;
            v = trim((slice){v.p, v.n - 2});
        }
        uint64_t n;
        if (!parse_dec(v, UINT64_MAX, &n) || __builtin_mul_overflow(n, mult, bytes))
            return false;
        return true;
    }
    return false;
}

bool hw_parse_size(const char *s, size_t len, uint64_t *bytes) {
    if (!s)
        return false;
    slice v = trim((slice){s, len});
    uint64_t mult = 1;
    if (v.n) {
        switch (v.p[v.n - 1]) {
        case 'K':
        case 'k':
            mult = 1ull << 10;
            break;
        case 'M':
        case 'm':
            mult = 1ull << 20;
            break;
        case 'G':
        case 'g':
            mult = 1ull << 30;
            break;
        default:
            break;
        }
        if (mult != 1)
            v.n--;
    }
    uint64_t n;
    return parse_dec(v, UINT64_MAX, &n) && !__builtin_mul_overflow(n, mult, bytes);
}

int hw_cpulist_parse(const char *s, size_t len, int *cpus, int max) {
    if (!s)
        return -1;
    slice v = trim((slice){s, len});
    if (v.n == 0)
        return 0; /* an empty list is valid: a node without CPUs */
    int count = 0;
    size_t i = 0;
    while (i <= v.n) {
        size_t start = i;
        while (i < v.n && v.p[i] != ',')
            i++;
        slice item = trim((slice){v.p + start, i - start});
        const char *dash = memchr(item.p, '-', item.n);
        uint64_t a, b;
        if (dash) {
            if (!parse_dec((slice){item.p, (size_t)(dash - item.p)}, HW_CPULIST_MAX - 1, &a) ||
                !parse_dec((slice){dash + 1, item.n - (size_t)(dash - item.p) - 1},
                           HW_CPULIST_MAX - 1, &b) ||
                b < a)
                return -1;
        } else if (!parse_dec(item, HW_CPULIST_MAX - 1, &a)) {
            return -1;
        } else {
            b = a;
        }
        if ((uint64_t)count + (b - a + 1) > HW_CPULIST_MAX)
            return -1;
        for (uint64_t c = a; c <= b; c++) {
            if (cpus && count < max)
                cpus[count] = (int)c;
            count++;
        }
        i++; /* past the comma (or the end) */
    }
    return count;
}

/* ---- cgroups -------------------------------------------------------------------------- */

static bool has_controller(slice list, const char *name) {
    size_t i = 0;
    while (i < list.n) {
        size_t start = i;
        while (i < list.n && list.p[i] != ',')
            i++;
        if (slice_eq((slice){list.p + start, i - start}, name))
            return true;
        i++;
    }
    return false;
}

/* An absolute printable path without ".." components. */
static bool safe_path(slice p) {
    if (p.n == 0 || p.p[0] != '/')
        return false;
    for (size_t i = 0; i < p.n; i++)
        if ((unsigned char)p.p[i] < 0x20 || (unsigned char)p.p[i] >= 0x7f)
            return false;
    for (size_t i = 0; i + 1 < p.n; i++)
        if (p.p[i] == '.' && p.p[i + 1] == '.' && (i == 0 || p.p[i - 1] == '/') &&
            (i + 2 == p.n || p.p[i + 2] == '/'))
            return false;
    return true;
}

bool hw_cgroup_own_path(const char *text, size_t len, int version, char *out, size_t size) {
    if (!text || size == 0)
        return false;
    const char *cur = text, *end = text + len;
    slice line;
    while (next_line(&cur, end, &line)) {
        const char *c1 = memchr(line.p, ':', line.n);
        if (!c1)
            continue;
        size_t rest = line.n - (size_t)(c1 + 1 - line.p);
        const char *c2 = memchr(c1 + 1, ':', rest);
        if (!c2)
            continue;
        slice id = {line.p, (size_t)(c1 - line.p)};
        slice controllers = {c1 + 1, (size_t)(c2 - c1 - 1)};
        slice path = trim((slice){c2 + 1, (size_t)(line.p + line.n - c2 - 1)});
        bool want = version == 2 ? slice_eq(id, "0") && controllers.n == 0
                                 : has_controller(controllers, "memory");
        if (!want || !safe_path(path) || path.n >= size)
            continue;
        memcpy(out, path.p, path.n);
        out[path.n] = '\0';
        return true;
    }
    return false;
}

uint64_t hw_memory_usable(uint64_t available, uint64_t limit, uint64_t usage) {
    if (!limit)
        return available;
    uint64_t headroom = limit > usage ? limit - usage : 0;
    if (!available)
        return headroom;
    return available < headroom ? available : headroom;
}

/* ---- SoC names ---------------------------------------------------------------------- */

typedef struct soc_name {
    const char *id;
    const char *name;
} soc_name;

static const soc_name qualcomm_socs[] = {
    {"SM8750", "Snapdragon 8 Elite"},     {"SM8650", "Snapdragon 8 Gen 3"},
    {"SM8635", "Snapdragon 8s Gen 3"},    {"SM8550", "Snapdragon 8 Gen 2"},
    {"SM8475", "Snapdragon 8+ Gen 1"},    {"SM8450", "Snapdragon 8 Gen 1"},
    {"SM8350", "Snapdragon 888"},         {"SM8250", "Snapdragon 865"},
    {"SM8150", "Snapdragon 855"},         {"SDM845", "Snapdragon 845"},
    {"MSM8998", "Snapdragon 835"},        {"SM7675", "Snapdragon 7+ Gen 3"},
    {"SM7475", "Snapdragon 7+ Gen 2"},    {"SM7450", "Snapdragon 7 Gen 1"},
    {"SM7325", "Snapdragon 778G"},        {"SM7250", "Snapdragon 765G"},
    {"SM7150", "Snapdragon 730"},         {"SM6375", "Snapdragon 695"},
    {"SM6225", "Snapdragon 680"},         {"SDM660", "Snapdragon 660"},
    {"SC8280XP", "Snapdragon 8cx Gen 3"}, {"SC7280", "Snapdragon 7c+ Gen 3"},
    {"SC7180", "Snapdragon 7c"},
};

/* Qualcomm's socinfo driver reports a number in soc_id; these are the ids
 * of the chips above that phones most often carry. */
static const soc_name qualcomm_numeric_ids[] = {
    {"321", "SDM845"}, {"339", "SM8150"}, {"356", "SM8250"}, {"415", "SM8350"},
    {"457", "SM8450"}, {"519", "SM8550"}, {"530", "SM8475"}, {"557", "SM8650"},
};

static const soc_name mediatek_socs[] = {
    {"MT6989", "Dimensity 9300"}, {"MT6985", "Dimensity 9200"}, {"MT6983", "Dimensity 9000"},
    {"MT6895", "Dimensity 8100"}, {"MT6893", "Dimensity 1200"}, {"MT6891", "Dimensity 1100"},
    {"MT6853", "Dimensity 720"},  {"MT6833", "Dimensity 700"},
};

/* Samsung's own chip ids (s5e....) for Exynos parts sold under a number. */
static const soc_name exynos_ids[] = {
    {"S5E9945", "2400"},
    {"S5E9925", "2200"},
    {"S5E9840", "2100"},
    {"S5E9830", "990"},
};

static const soc_name google_socs[] = {
    {"GS101", "Google Tensor"},
    {"GS201", "Google Tensor G2"},
    {"ZUMA", "Google Tensor G3"},
    {"ZUMAPRO", "Google Tensor G4"},
};

static const char *lookup(const soc_name *t, size_t n, const char *id) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].id, id) == 0)
            return t[i].name;
    return NULL;
}

#define LOOKUP(table, id) lookup(table, sizeof table / sizeof table[0], id)

static bool ci_contains(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; s && *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return true;
    return false;
}

/* Finds a token of s that starts (at a word boundary) with `prefix`
 * (case-insensitive) followed by at least min_digits digits, and copies it
 * upper-cased with any letters and digits that follow ("sc8280xp" ->
 * "SC8280XP"). */
static bool find_id(const char *s, const char *prefix, int min_digits, char *id, size_t size) {
    size_t plen = strlen(prefix);
    for (size_t i = 0; s && s[i]; i++) {
        if (i > 0 && isalnum((unsigned char)s[i - 1]))
            continue;
        if (strncasecmp(s + i, prefix, plen) != 0)
            continue;
        size_t j = i + plen;
        int digits = 0;
        while (isdigit((unsigned char)s[j + (size_t)digits]))
            digits++;
        if (digits < min_digits)
            continue;
        size_t k = j;
        while (isalnum((unsigned char)s[k]))
            k++;
        if (k - i >= size)
            continue;
        for (size_t m = i; m < k; m++)
            id[m - i] = (char)toupper((unsigned char)s[m]);
        id[k - i] = '\0';
        return true;
    }
    return false;
}

/* A whole word of s equal to `word` (case-insensitive). */
static bool has_word(const char *s, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; s && s[i]; i++)
        if ((i == 0 || !isalnum((unsigned char)s[i - 1])) && strncasecmp(s + i, word, n) == 0 &&
            !isalnum((unsigned char)s[i + n]))
            return true;
    return false;
}

static bool identify_qualcomm(const char *const *texts, int n, bool context, const char *soc_id,
                              char *soc, size_t soc_size) {
    static const char *const prefixes[] = {"SM", "SDM", "MSM", "SC", "QCS", "QCM", "SDA"};
    char id[32] = "";
    for (int t = 0; t < n && !id[0]; t++) {
        for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
            /* SC/QCS/QCM/SDA are common letters; only trust them beside "Qualcomm". */
            if ((p < 3 || context) && find_id(texts[t], prefixes[p], 3, id, sizeof id))
                break;
        }
    }
    if (!id[0] && context && soc_id && *soc_id) {
        const char *named = LOOKUP(qualcomm_numeric_ids, soc_id);
        if (named)
            hw_copy(id, sizeof id, named);
    }
    if (!id[0] && !context)
        return false;
    const char *name = id[0] ? LOOKUP(qualcomm_socs, id) : NULL;
    if (name)
        snprintf(soc, soc_size, "Qualcomm %s (%s)", name, id);
    else if (id[0])
        snprintf(soc, soc_size, "Qualcomm %s", id);
    else if (soc_id && *soc_id)
        snprintf(soc, soc_size, "Qualcomm Snapdragon (soc_id %s)", soc_id);
    else
        snprintf(soc, soc_size, "Qualcomm Snapdragon");
    return true;
}

static bool identify_other(const char *const *texts, int n, char *soc, size_t soc_size,
                           char *vendor, size_t vendor_size) {
    char id[32];
    for (int t = 0; t < n; t++) {
        if (find_id(texts[t], "MT", 4, id, sizeof id)) {
            const char *name = LOOKUP(mediatek_socs, id);
            if (name)
                snprintf(soc, soc_size, "MediaTek %s (%s)", name, id);
            else
                snprintf(soc, soc_size, "MediaTek %s", id);
            hw_copy(vendor, vendor_size, "MediaTek");
            return true;
        }
        if (find_id(texts[t], "S5E", 4, id, sizeof id)) {
            const char *number = LOOKUP(exynos_ids, id);
            if (number)
                snprintf(soc, soc_size, "Samsung Exynos %s", number);
            else
                snprintf(soc, soc_size, "Samsung Exynos (%s)", id);
            hw_copy(vendor, vendor_size, "Samsung");
            return true;
        }
        const char *ex = texts[t];
        for (size_t i = 0; ex && ex[i]; i++) {
            if (strncasecmp(ex + i, "exynos", 6) != 0)
                continue;
            const char *d = ex + i + 6;
            while (*d == ' ' || *d == '-' || *d == '_')
                d++;
            int digits = 0;
            while (isdigit((unsigned char)d[digits]) && digits < 8)
                digits++;
            if (digits)
                snprintf(soc, soc_size, "Samsung Exynos %.*s", digits, d);
            else
                snprintf(soc, soc_size, "Samsung Exynos");
            hw_copy(vendor, vendor_size, "Samsung");
            return true;
        }
        for (size_t g = 0; g < sizeof google_socs / sizeof google_socs[0]; g++) {
            if (has_word(texts[t], google_socs[g].id)) {
                snprintf(soc, soc_size, "%s (%s)", google_socs[g].name, google_socs[g].id);
                hw_copy(vendor, vendor_size, "Google");
                return true;
            }
        }
    }
    return false;
}

/* Replaces anything but printable ASCII, since raw ids come from files. */
static void make_printable(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

bool hw_soc_identify(const char *family, const char *machine, const char *soc_id,
                     const char *hardware, char *soc, size_t soc_size, char *vendor,
                     size_t vendor_size) {
    hw_copy(soc, soc_size, "");
    hw_copy(vendor, vendor_size, "");
    const char *texts[] = {machine ? machine : "", hardware ? hardware : "", soc_id ? soc_id : "",
                           family ? family : ""};
    int n = 4;
    bool any = false;
    for (int i = 0; i < n; i++)
        any |= texts[i][0] != '\0';
    if (!any)
        return false;
    bool qualcomm = false;
    for (int i = 0; i < n; i++)
        qualcomm |= ci_contains(texts[i], "qualcomm") || ci_contains(texts[i], "snapdragon") ||
                    ci_contains(texts[i], "qcom");
    if (identify_qualcomm(texts, n, qualcomm, soc_id, soc, soc_size)) {
        hw_copy(vendor, vendor_size, "Qualcomm");
        make_printable(soc);
        return true;
    }
    if (identify_other(texts, n, soc, soc_size, vendor, vendor_size))
        return true;
    /* No vendor we know: report what the machine says, as it says it. */
    char a[128], b[128];
    hw_copy_clean(a, sizeof a, machine ? machine : "", machine ? strlen(machine) : 0);
    hw_copy_clean(b, sizeof b, hardware ? hardware : "", hardware ? strlen(hardware) : 0);
    if (a[0])
        hw_copy(soc, soc_size, a);
    else if (b[0])
        hw_copy(soc, soc_size, b);
    else
        snprintf(soc, soc_size, "%s%s%s", family ? family : "", family && *family ? " " : "",
                 soc_id ? soc_id : "");
    make_printable(soc);
    return true;
}
