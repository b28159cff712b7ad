/*
 * GGUF reader: maps a ggml model file and hands out its metadata and tensor
 * infos, but only after the whole header has been checked.
 *
 * Layout (all little-endian): "GGUF", u32 version (2 or 3), u64 tensor
 * count, u64 KV count; KVs (string key, u32 type, value); tensor infos
 * (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset);
 * then the data section at the next multiple of general.alignment. A string
 * is a u64 length and that many bytes; an array is a u32 element type, a
 * u64 count and the elements, which may themselves be arrays.
 *
 * Files come from anywhere (an IPFS CID, a download), so every length and
 * count is bounded by the bytes left before anything is allocated: a string
 * of n bytes needs n bytes, an array of n strings 8n, of n arrays 12n, an
 * array of scalars n times the scalar size (overflow-checked). The header
 * is walked twice by the same code: the first pass validates and counts
 * value nodes and string bytes, the second fills exactly that much memory,
 * so nothing the file claims is allocated before it is known to be there.
 * Tensor infos are then checked against the ggml type table (known type,
 * whole blocks, byte size), the alignment and the data section (inside,
 * aligned, no two tensors sharing a byte). Keys and tensor names must be
 * unique; that is checked on the sorted indexes that lookups use.
 *
 * Big-endian GGUF files exist (s390x builds write them); they carry the
 * version byte-swapped, which is how we recognise and refuse them. GGUF v1
 * used u32 counts and is refused by name. docs/FORMATS.md lists every rule.
 */
#include "formats/gguf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- the ggml type table ------------------------------------------------- */

/* From ggml.h's enum ggml_type and ggml-common.h's block structs (checked
 * against gguf-py 0.19.0's GGML_QUANT_SIZES, which disagrees only on Q8_1:
 * gguf-py says 40 bytes, the old float layout; ggml's block_q8_1 has two
 * halves and 32 quants, 36 bytes, and ggml is what loads the file). */
static const ia_ggml_type_info ggml_types[] = {
    {IA_GGML_F32, "F32", 1, 4, false},
    {IA_GGML_F16, "F16", 1, 2, false},
    {IA_GGML_Q4_0, "Q4_0", 32, 18, true},
    {IA_GGML_Q4_1, "Q4_1", 32, 20, true},
    {IA_GGML_Q5_0, "Q5_0", 32, 22, true},
    {IA_GGML_Q5_1, "Q5_1", 32, 24, true},
    {IA_GGML_Q8_0, "Q8_0", 32, 34, true},
    {IA_GGML_Q8_1, "Q8_1", 32, 36, true},
    {IA_GGML_Q2_K, "Q2_K", 256, 84, true},
    {IA_GGML_Q3_K, "Q3_K", 256, 110, true},
    {IA_GGML_Q4_K, "Q4_K", 256, 144, true},
    {IA_GGML_Q5_K, "Q5_K", 256, 176, true},
    {IA_GGML_Q6_K, "Q6_K", 256, 210, true},
    {IA_GGML_Q8_K, "Q8_K", 256, 292, true},
    {IA_GGML_IQ2_XXS, "IQ2_XXS", 256, 66, true},
    {IA_GGML_IQ2_XS, "IQ2_XS", 256, 74, true},
    {IA_GGML_IQ3_XXS, "IQ3_XXS", 256, 98, true},
    {IA_GGML_IQ1_S, "IQ1_S", 256, 50, true},
    {IA_GGML_IQ4_NL, "IQ4_NL", 32, 18, true},
    {IA_GGML_IQ3_S, "IQ3_S", 256, 110, true},
    {IA_GGML_IQ2_S, "IQ2_S", 256, 82, true},
    {IA_GGML_IQ4_XS, "IQ4_XS", 256, 136, true},
    {IA_GGML_I8, "I8", 1, 1, false},
    {IA_GGML_I16, "I16", 1, 2, false},
    {IA_GGML_I32, "I32", 1, 4, false},
    {IA_GGML_I64, "I64", 1, 8, false},
    {IA_GGML_F64, "F64", 1, 8, false},
    {IA_GGML_IQ1_M, "IQ1_M", 256, 56, true},
    {IA_GGML_BF16, "BF16", 1, 2, false},
    {IA_GGML_TQ1_0, "TQ1_0", 256, 54, true},
    {IA_GGML_TQ2_0, "TQ2_0", 256, 66, true},
    {IA_GGML_MXFP4, "MXFP4", 32, 17, true},
    {IA_GGML_NVFP4, "NVFP4", 64, 36, true},
    {IA_GGML_Q1_0, "Q1_0", 128, 18, true},
};

const ia_ggml_type_info *ia_ggml_type_get_info(uint32_t id) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == id)
            return &ggml_types[i];
    return NULL;
}

ia_status ia_ggml_type_bytes(uint32_t id, uint64_t n_elems, uint64_t *out) {
    const ia_ggml_type_info *ti = ia_ggml_type_get_info(id);
    if (!ti)
        return ia_error_set(IA_EPARSE, "unknown ggml type id %u", id);
    if (n_elems % ti->block_elems != 0)
        return ia_error_set(IA_ERANGE, "%llu elements are not a whole number of %s blocks of %u",
                            (unsigned long long)n_elems, ti->name, ti->block_elems);
    if (__builtin_mul_overflow(n_elems / ti->block_elems, (uint64_t)ti->block_bytes, out))
        return ia_error_set(IA_ENOMEM, "%llu elements of %s overflow a byte count",
                            (unsigned long long)n_elems, ti->name);
    return IA_OK;
}

static const char *const gguf_type_names[IA_GGUF_TYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};

const char *ia_gguf_type_name(ia_gguf_type type) {
    return (unsigned)type < IA_GGUF_TYPE_COUNT ? gguf_type_names[type] : "unknown";
}

/* ---- the handle ------------------------------------------------------------ */

typedef struct gguf_kv {
    const char *key;
    ia_gguf_value *value;
} gguf_kv;

struct ia_gguf {
    ia_mapped_file map; /* owned when opened from a path */
    char *what;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    size_t n_kv, n_tensors;
    gguf_kv *kvs;              /* file order */
    const gguf_kv **kv_sorted; /* by key, for bsearch */
    ia_gguf_value *nodes;      /* n_kv top-level values, then array children */
    ia_gguf_tensor *tensors;   /* file order */
    const ia_gguf_tensor **by_name;
    char *pool; /* keys, names and string values, each NUL-terminated */
};

/* The walk's state. In the counting pass `fill` is false and only n_nodes
 * and pool_bytes grow; in the filling pass the same walk writes them. */
typedef struct gguf_parser {
    const ia_gguf *g;
    const char *what;
    const uint8_t *base;
    uint64_t pos, size;
    bool fill;
    size_t n_nodes, pool_bytes; /* used so far */
    char ctx[160];              /* "key 'general.name'": where we are, for messages */
} gguf_parser;

static uint64_t left(const gguf_parser *p) { return p->size - p->pos; }

/* Fails unless n more bytes are there; `thing` says what they were for. */
static ia_status need(gguf_parser *p, uint64_t n, const char *thing) {
    if (n <= left(p))
        return IA_OK;
    return ia_error_set(IA_EPARSE,
                        "%s: %s: %s needs %llu bytes at byte %llu but only %llu are "
                        "left (file truncated?)",
                        p->what, p->ctx, thing, (unsigned long long)n, (unsigned long long)p->pos,
                        (unsigned long long)left(p));
}

static ia_status read_u32(gguf_parser *p, const char *thing, uint32_t *out) {
    ia_status st = need(p, 4, thing);
    if (st == IA_OK) {
        *out = (uint32_t)gguf_load_le(p->base + p->pos, 4);
        p->pos += 4;
    }
    return st;
}

static ia_status read_u64(gguf_parser *p, const char *thing, uint64_t *out) {
    ia_status st = need(p, 8, thing);
    if (st == IA_OK) {
        *out = gguf_load_le(p->base + p->pos, 8);
        p->pos += 8;
    }
    return st;
}

/* A GGUF string: returns its bytes in the mapping (not NUL-terminated). */
static ia_status read_string(gguf_parser *p, const char *thing, const uint8_t **s, uint64_t *len) {
    ia_status st = read_u64(p, thing, len);
    if (st == IA_OK && (st = need(p, *len, thing)) == IA_OK) {
        *s = p->base + p->pos;
        p->pos += *len;
    }
    return st;
}

/* Reserves n bytes of the pool (counting pass: just counts). */
static char *pool_take(gguf_parser *p, char *pool, const uint8_t *s, uint64_t len) {
    char *out = NULL;
    if (p->fill) {
        out = pool + p->pool_bytes;
        if (len)
            memcpy(out, s, (size_t)len);
        out[len] = '\0';
    }
    p->pool_bytes += (size_t)len + 1; /* len <= file size: no overflow */
    return out;
}

/* Keys and tensor names: non-empty, no NUL (they are looked up as C strings). */
static ia_status check_name(gguf_parser *p, const char *kind, uint64_t index, const uint8_t *s,
                            uint64_t len, uint64_t max) {
    if (len == 0)
        return ia_error_set(IA_EPARSE, "%s: %s %llu has an empty name", p->what, kind,
                            (unsigned long long)index);
    if (len > max)
        return ia_error_set(IA_EPARSE, "%s: %s %llu has a %llu-byte name; at most %llu allowed",
                            p->what, kind, (unsigned long long)index, (unsigned long long)len,
                            (unsigned long long)max);
    if (memchr(s, '\0', (size_t)len))
        return ia_error_set(IA_EPARSE, "%s: %s %llu: name '%.*s' contains a NUL byte", p->what,
                            kind, (unsigned long long)index,
                            (int)strnlen((const char *)s, len < 64 ? (size_t)len : 64),
                            (const char *)s);
    return IA_OK;
}

/* Checks that every BOOL byte is 0 or 1. */
static ia_status check_bools(gguf_parser *p, const uint8_t *b, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (b[i] > 1)
            return ia_error_set(IA_EPARSE, "%s: %s: BOOL value %u at byte %llu is neither 0 nor 1",
                                p->what, p->ctx, b[i], (unsigned long long)(b + i - p->base));
    return IA_OK;
}

static ia_status walk_value(gguf_parser *p, ia_gguf_value *nodes, char *pool, ia_gguf_type type,
                            int depth, ia_gguf_value *v);

/* An array's elements after its type tag: u32 element type, u64 count. */
static ia_status walk_array(gguf_parser *p, ia_gguf_value *nodes, char *pool, int depth,
                            ia_gguf_value *v) {
    ia_status st;
    uint32_t elem;
    uint64_t count;
    if (depth > IA_GGUF_MAX_DEPTH)
        return ia_error_set(IA_EPARSE, "%s: %s: arrays nested more than %d deep", p->what, p->ctx,
                            IA_GGUF_MAX_DEPTH);
    if ((st = read_u32(p, "an array's element type", &elem)) ||
        (st = read_u64(p, "an array's count", &count)))
        return st;
    if (elem >= IA_GGUF_TYPE_COUNT)
        return ia_error_set(IA_EPARSE, "%s: %s: unknown array element type %u", p->what, p->ctx,
                            elem);
    size_t scalar = gguf_scalar_size((ia_gguf_type)elem);
    if (v) {
        v->elem_type = (ia_gguf_type)elem;
        v->count = count;
    }
    if (scalar) {
        uint64_t bytes;
        if (__builtin_mul_overflow(count, (uint64_t)scalar, &bytes) || bytes > left(p))
            return ia_error_set(IA_EPARSE,
                                "%s: %s: array of %llu %s values needs more bytes than the %llu "
                                "left at byte %llu",
                                p->what, p->ctx, (unsigned long long)count,
                                ia_gguf_type_name((ia_gguf_type)elem), (unsigned long long)left(p),
                                (unsigned long long)p->pos);
        if (elem == IA_GGUF_BOOL && (st = check_bools(p, p->base + p->pos, count)))
            return st;
        if (v)
            v->raw = p->base + p->pos;
        p->pos += bytes;
        return IA_OK;
    }
    /* Strings take at least 8 bytes each, arrays 12: the count is bounded
     * before any node is reserved for it. */
    uint64_t min = elem == IA_GGUF_STRING ? 8 : 12;
    if (count > left(p) / min)
        return ia_error_set(IA_EPARSE,
                            "%s: %s: array of %llu %s values needs at least %llu bytes each but "
                            "only %llu are left at byte %llu",
                            p->what, p->ctx, (unsigned long long)count,
                            ia_gguf_type_name((ia_gguf_type)elem), (unsigned long long)min,
                            (unsigned long long)left(p), (unsigned long long)p->pos);
    ia_gguf_value *kids = p->fill ? nodes + p->n_nodes : NULL;
    p->n_nodes += (size_t)count;
    if (v)
        v->elems = kids;
    for (uint64_t i = 0; i < count; i++) {
        if (kids) {
            kids[i] = (ia_gguf_value){.owner = p->g,
                                      .key = v->key,
                                      .type = (ia_gguf_type)elem,
                                      .elem_type = IA_GGUF_TYPE_COUNT};
        }
        if ((st = walk_value(p, nodes, pool, (ia_gguf_type)elem, depth, kids ? &kids[i] : NULL)))
            return st;
    }
    return IA_OK;
}

/* One value of a known `type` at p->pos; v is NULL in the counting pass. */
static ia_status walk_value(gguf_parser *p, ia_gguf_value *nodes, char *pool, ia_gguf_type type,
                            int depth, ia_gguf_value *v) {
    ia_status st;
    uint64_t start = p->pos;
    if (type == IA_GGUF_ARRAY) {
        st = walk_array(p, nodes, pool, depth + 1, v);
    } else if (type == IA_GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        st = read_string(p, "a string value", &s, &len);
        if (st == IA_OK) {
            char *copy = pool_take(p, pool, s, len);
            if (v) {
                v->str = copy;
                v->str_len = len;
            }
        }
    } else {
        size_t n = gguf_scalar_size(type);
        st = need(p, n, ia_gguf_type_name(type));
        if (st == IA_OK && type == IA_GGUF_BOOL)
            st = check_bools(p, p->base + p->pos, 1);
        if (st == IA_OK) {
            if (v)
                v->raw = p->base + p->pos;
            p->pos += n;
        }
    }
    if (st == IA_OK && v) {
        v->span = p->base + start;
        v->span_len = p->pos - start;
    }
    return st;
}

/* The KV section. kvs, nodes and pool are NULL in the counting pass. */
static ia_status walk_kvs(gguf_parser *p, uint64_t n_kv, gguf_kv *kvs, ia_gguf_value *nodes,
                          char *pool) {
    ia_status st;
    p->n_nodes = (size_t)n_kv; /* the top-level values come first */
    for (uint64_t i = 0; i < n_kv; i++) {
        const uint8_t *key;
        uint64_t key_len;
        uint32_t type;
        snprintf(p->ctx, sizeof p->ctx, "key %llu", (unsigned long long)i);
        if ((st = read_string(p, "the key", &key, &key_len)) ||
            (st = check_name(p, "key", i, key, key_len, IA_GGUF_MAX_KEY)))
            return st;
        snprintf(p->ctx, sizeof p->ctx, "key '%.*s'", (int)(key_len < 100 ? key_len : 100),
                 (const char *)key);
        char *key_copy = pool_take(p, pool, key, key_len);
        if ((st = read_u32(p, "the value type", &type)))
            return st;
        if (type >= IA_GGUF_TYPE_COUNT)
            return ia_error_set(IA_EPARSE, "%s: %s has unknown value type %u", p->what, p->ctx,
                                type);
        ia_gguf_value *v = NULL;
        if (p->fill) {
            v = &nodes[i];
            *v = (ia_gguf_value){.owner = p->g,
                                 .key = key_copy,
                                 .type = (ia_gguf_type)type,
                                 .elem_type = IA_GGUF_TYPE_COUNT};
            kvs[i] = (gguf_kv){.key = key_copy, .value = v};
        }
        if ((st = walk_value(p, nodes, pool, (ia_gguf_type)type, 0, v)))
            return st;
    }
    return IA_OK;
}

/* ---- header ---------------------------------------------------------------- */

static uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

static ia_status read_header(gguf_parser *p, uint32_t *version, uint64_t *n_tensors,
                             uint64_t *n_kv) {
    ia_status st;
    snprintf(p->ctx, sizeof p->ctx, "header");
    if (p->size < 4 || memcmp(p->base, "GGUF", 4) != 0) {
        char magic[16] = "";
        for (size_t i = 0; i < 4 && i < p->size; i++)
            snprintf(magic + 2 * i, sizeof magic - 2 * i, "%02x", p->base[i]);
        return ia_error_set(IA_EPARSE,
                            "%s: not a GGUF file: it starts with %s%s instead of the magic "
                            "\"GGUF\" (47475546)",
                            p->what, p->size ? "0x" : "nothing", magic);
    }
    p->pos = 4;
    if ((st = read_u32(p, "the version", version)))
        return st;
    uint32_t v = *version;
    if (v != 2 && v != 3) {
        if (bswap32(v) >= 1 && bswap32(v) <= 3)
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: big-endian GGUF file (version %u byte-swapped); only "
                                "little-endian files are supported",
                                p->what, bswap32(v));
        if (v == 1)
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: GGUF version 1 (32-bit counts, from 2023) is not supported; "
                                "versions 2 and 3 are (re-convert the model with current tools)",
                                p->what);
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: GGUF version %u is not supported; versions 2 and 3 are", p->what,
                            v);
    }
    if ((st = read_u64(p, "the tensor count", n_tensors)) ||
        (st = read_u64(p, "the KV count", n_kv)))
        return st;
    /* A KV takes at least 13 bytes (key length, a 1-byte key, type, a u8)
     * and a tensor info at least 24: bound the counts before allocating. */
    if (*n_kv > left(p) / 13)
        return ia_error_set(IA_EPARSE,
                            "%s: header claims %llu KVs but only %llu bytes follow, room for at "
                            "most %llu",
                            p->what, (unsigned long long)*n_kv, (unsigned long long)left(p),
                            (unsigned long long)(left(p) / 13));
    if (*n_tensors > left(p) / 24)
        return ia_error_set(IA_EPARSE,
                            "%s: header claims %llu tensors but only %llu bytes follow, room for "
                            "at most %llu",
                            p->what, (unsigned long long)*n_tensors, (unsigned long long)left(p),
                            (unsigned long long)(left(p) / 24));
    return IA_OK;
}

/* ---- sorting and duplicates ---------------------------------------------------- */

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp((*(const ia_gguf_tensor *const *)a)->name,
                  (*(const ia_gguf_tensor *const *)b)->name);
}

static ia_status index_kvs(ia_gguf *g) {
    for (size_t i = 0; i < g->n_kv; i++)
        g->kv_sorted[i] = &g->kvs[i];
    qsort(g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    for (size_t i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key) == 0)
            return ia_error_set(IA_EPARSE, "%s: key '%s' appears more than once", g->what,
                                g->kv_sorted[i]->key);
    return IA_OK;
}

/* general.alignment, when present, must be a UINT32 power of two. */
static ia_status read_alignment(ia_gguf *g) {
    g->alignment = IA_GGUF_DEFAULT_ALIGNMENT;
    const ia_gguf_value *v = ia_gguf_find(g, "general.alignment");
    if (!v)
        return IA_OK;
    if (v->type != IA_GGUF_UINT32)
        return ia_error_set(IA_EPARSE, "%s: key 'general.alignment' is a %s; expected UINT32",
                            g->what, ia_gguf_type_name(v->type));
    uint32_t a = (uint32_t)gguf_load_le(v->raw, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return ia_error_set(
            IA_EPARSE, "%s: key 'general.alignment' is %u; it must be a power of two", g->what, a);
    g->alignment = a;
    return IA_OK;
}

/* ---- tensor infos -------------------------------------------------------------- */

/* Reads one tensor info (everything but the data range, checked later). */
static ia_status read_tensor_info(gguf_parser *p, uint64_t i, char *pool, ia_gguf_tensor *t) {
    ia_status st;
    const uint8_t *name;
    uint64_t name_len;
    uint32_t n_dims;
    snprintf(p->ctx, sizeof p->ctx, "tensor %llu", (unsigned long long)i);
    if ((st = read_string(p, "the tensor name", &name, &name_len)) ||
        (st = check_name(p, "tensor", i, name, name_len, UINT64_MAX)))
        return st;
    snprintf(p->ctx, sizeof p->ctx, "tensor '%.*s'", (int)(name_len < 100 ? name_len : 100),
             (const char *)name);
    t->name = pool_take(p, pool, name, name_len);
    if ((st = read_u32(p, "n_dims", &n_dims)))
        return st;
    if (n_dims > 4)
        return ia_error_set(IA_EPARSE, "%s: %s has %u dimensions; GGUF allows at most 4", p->what,
                            p->ctx, n_dims);
    t->n_dims = n_dims;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < 4; d++)
        t->dims[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if ((st = read_u64(p, "a dimension", &t->dims[d])))
            return st;
        if (t->dims[d] == 0 || t->dims[d] > (uint64_t)INT64_MAX)
            return ia_error_set(IA_EPARSE, "%s: %s: dimension %u is %llu; it must be in 1..2^63-1",
                                p->what, p->ctx, d, (unsigned long long)t->dims[d]);
        if (__builtin_mul_overflow(numel, t->dims[d], &numel) || numel > (uint64_t)INT64_MAX)
            return ia_error_set(IA_ERANGE, "%s: %s: the element count overflows 63 bits", p->what,
                                p->ctx);
    }
    if ((st = read_u32(p, "the ggml type", &t->type)) ||
        (st = read_u64(p, "the data offset", &t->offset)))
        return st;
    const ia_ggml_type_info *ti = ia_ggml_type_get_info(t->type);
    if (!ti)
        return ia_error_set(IA_EPARSE, "%s: %s has unknown ggml type id %u", p->what, p->ctx,
                            t->type);
    if (t->dims[0] % ti->block_elems != 0)
        return ia_error_set(IA_EPARSE,
                            "%s: %s has type %s but its rows of %llu elements are not a whole "
                            "number of %u-element blocks",
                            p->what, p->ctx, ti->name, (unsigned long long)t->dims[0],
                            ti->block_elems);
    if (ia_ggml_type_bytes(t->type, numel, &t->n_bytes) != IA_OK)
        return ia_error_set(IA_ERANGE, "%s: %s: %llu elements of %s overflow a byte count", p->what,
                            p->ctx, (unsigned long long)numel, ti->name);
    return IA_OK;
}

typedef struct gguf_range {
    uint64_t begin, end;
    size_t idx;
} gguf_range;

static int cmp_range(const void *a, const void *b) {
    const gguf_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Data ranges: aligned, inside the data section, no byte shared. */
static ia_status check_ranges(ia_gguf *g, const uint8_t *data, uint64_t size) {
    ia_status st = IA_OK;
    uint64_t data_size = g->data_offset <= size ? size - g->data_offset : 0;
    gguf_range *r = ia_malloc_array(g->n_tensors, sizeof *r);
    if (!r && g->n_tensors)
        return IA_ENOMEM;
    for (size_t i = 0; i < g->n_tensors; i++) {
        ia_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0) {
            st = ia_error_set(IA_EPARSE,
                              "%s: tensor '%s' starts at data offset %llu, not a multiple of "
                              "the alignment %u",
                              g->what, t->name, (unsigned long long)t->offset, g->alignment);
            goto done;
        }
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            st = ia_error_set(IA_EPARSE,
                              "%s: tensor '%s' (%llu bytes at data offset %llu) ends past the "
                              "data section, which has %llu bytes (file truncated?)",
                              g->what, t->name, (unsigned long long)t->n_bytes,
                              (unsigned long long)t->offset, (unsigned long long)data_size);
            goto done;
        }
        t->data = data + g->data_offset + t->offset;
        r[i] = (gguf_range){t->offset, t->offset + t->n_bytes, i};
    }
    if (g->n_tensors)
        qsort(r, g->n_tensors, sizeof *r, cmp_range);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (r[i].begin < r[i - 1].end) {
            st = ia_error_set(IA_EPARSE,
                              "%s: tensors '%s' (data bytes %llu..%llu) and '%s' (data bytes "
                              "%llu..%llu) overlap",
                              g->what, g->tensors[r[i - 1].idx].name,
                              (unsigned long long)r[i - 1].begin, (unsigned long long)r[i - 1].end,
                              g->tensors[r[i].idx].name, (unsigned long long)r[i].begin,
                              (unsigned long long)r[i].end);
            goto done;
        }
    }
done:
    free(r);
    return st;
}

static ia_status index_tensors(ia_gguf *g) {
    for (size_t i = 0; i < g->n_tensors; i++)
        g->by_name[i] = &g->tensors[i];
    qsort(g->by_name, g->n_tensors, sizeof *g->by_name, cmp_tensor);
    for (size_t i = 1; i < g->n_tensors; i++)
        if (strcmp(g->by_name[i - 1]->name, g->by_name[i]->name) == 0)
            return ia_error_set(IA_EPARSE, "%s: tensor name '%s' appears more than once", g->what,
                                g->by_name[i]->name);
    return IA_OK;
}

/* The tensor infos (pass over bytes once: the pool was sized for them in
 * the counting pass by pool_bytes_for_tensors). */
static ia_status walk_tensors(gguf_parser *p, ia_gguf *g, char *pool) {
    ia_status st;
    for (size_t i = 0; i < g->n_tensors; i++)
        if ((st = read_tensor_info(p, i, pool, &g->tensors[i])))
            return st;
    return IA_OK;
}

/* ---- open ------------------------------------------------------------------------ */

ia_status ia_gguf_open_memory(const uint8_t *data, size_t size, const char *what, ia_gguf **out) {
    ia_status st;
    ia_gguf *g = NULL;
    uint64_t n_tensors = 0, n_kv = 0;
    if (!out || (!data && size))
        return ia_error_set(IA_EINVAL, "ia_gguf_open_memory: NULL data or out");
    *out = NULL;
    if (!what)
        what = "gguf";
    g = ia_calloc(1, sizeof *g);
    if (!g || !(g->what = ia_strdup(what))) {
        st = IA_ENOMEM;
        goto fail;
    }
    gguf_parser p = {.g = g, .what = g->what, .base = data, .size = size};
    if ((st = read_header(&p, &g->version, &n_tensors, &n_kv)))
        goto fail;
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;

    /* Counting pass over KVs and tensor infos: validates the structure and
     * sizes the node array and the string pool. */
    uint64_t kv_start = p.pos;
    if ((st = walk_kvs(&p, n_kv, NULL, NULL, NULL)))
        goto fail;
    size_t n_nodes = p.n_nodes;
    g->tensors = ia_calloc(g->n_tensors, sizeof *g->tensors);
    if (!g->tensors && g->n_tensors) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((st = walk_tensors(&p, g, NULL)))
        goto fail;
    uint64_t infos_end = p.pos;
    size_t pool_bytes = p.pool_bytes;

    /* Filling pass. */
    g->kvs = ia_malloc_array(g->n_kv, sizeof *g->kvs);
    g->kv_sorted = ia_malloc_array(g->n_kv, sizeof *g->kv_sorted);
    g->nodes = ia_malloc_array(n_nodes, sizeof *g->nodes);
    g->by_name = ia_malloc_array(g->n_tensors, sizeof *g->by_name);
    g->pool = ia_malloc(pool_bytes ? pool_bytes : 1);
    if ((g->n_kv && (!g->kvs || !g->kv_sorted)) || (n_nodes && !g->nodes) ||
        (g->n_tensors && !g->by_name) || !g->pool) {
        st = IA_ENOMEM;
        goto fail;
    }
    p.pos = kv_start;
    p.fill = true;
    p.pool_bytes = 0;
    if ((st = walk_kvs(&p, n_kv, g->kvs, g->nodes, g->pool)) || (st = walk_tensors(&p, g, g->pool)))
        goto fail; /* cannot fail: the counting pass read the same bytes */
    if ((st = index_kvs(g)) || (st = read_alignment(g)))
        goto fail;
    /* The data section starts at the next multiple of the alignment (it may
     * be past the end of a file without tensor data). */
    uint64_t a = g->alignment;
    g->data_offset = (infos_end + a - 1) / a * a;
    if ((st = index_tensors(g)) || (st = check_ranges(g, data, size)))
        goto fail;
    *out = g;
    return IA_OK;
fail:
    ia_gguf_close(g);
    return st;
}

ia_status ia_gguf_open(const char *path, ia_gguf **out) {
    ia_mapped_file map;
    if (!path || !out)
        return ia_error_set(IA_EINVAL, "ia_gguf_open: NULL path or out");
    *out = NULL;
    ia_status st = ia_file_map(path, &map);
    if (st != IA_OK)
        return st;
    if ((st = ia_gguf_open_memory(map.data, map.size, path, out)) != IA_OK) {
        ia_file_unmap(&map);
        return st;
    }
    (*out)->map = map;
    return IA_OK;
}

void ia_gguf_drop_pages(const ia_gguf *g) {
    if (g)
        ia_file_drop_pages(&g->map);
}

void ia_gguf_drop_range(const ia_gguf *g, const void *p, size_t n) {
    if (!g || !g->map.data || !p)
        return;
    uintptr_t base = (uintptr_t)g->map.data, lo = (uintptr_t)p;
    if (lo < base || n > g->map.size || lo - base > g->map.size - n)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (lo + page - 1) & ~(page - 1), last = (lo + n) & ~(page - 1);
    if (last > first)
        madvise((void *)first, last - first, MADV_DONTNEED);
}

void ia_gguf_close(ia_gguf *g) {
    if (!g)
        return;
    ia_file_unmap(&g->map);
    free(g->what);
    free(g->kvs);
    free(g->kv_sorted);
    free(g->nodes);
    free(g->tensors);
    free(g->by_name);
    free(g->pool);
    free(g);
}

/* ---- accessors ------------------------------------------------------------------- */

const char *ia_gguf_path(const ia_gguf *g) { return g ? g->what : NULL; }
uint32_t ia_gguf_version(const ia_gguf *g) { return g ? g->version : 0; }
uint32_t ia_gguf_alignment(const ia_gguf *g) { return g ? g->alignment : 0; }
uint64_t ia_gguf_data_offset(const ia_gguf *g) { return g ? g->data_offset : 0; }
size_t ia_gguf_kv_count(const ia_gguf *g) { return g ? g->n_kv : 0; }

const char *ia_gguf_kv_key(const ia_gguf *g, size_t i) {
    return g && i < g->n_kv ? g->kvs[i].key : NULL;
}

const ia_gguf_value *ia_gguf_kv_value(const ia_gguf *g, size_t i) {
    return g && i < g->n_kv ? g->kvs[i].value : NULL;
}

static int cmp_kv_key(const void *key, const void *elem) {
    return strcmp(key, (*(const gguf_kv *const *)elem)->key);
}

const ia_gguf_value *ia_gguf_find(const ia_gguf *g, const char *key) {
    if (!g || !key || g->n_kv == 0)
        return NULL;
    const gguf_kv *const *hit =
        bsearch(key, g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv_key);
    return hit ? (*hit)->value : NULL;
}

size_t ia_gguf_tensor_count(const ia_gguf *g) { return g ? g->n_tensors : 0; }

const ia_gguf_tensor *ia_gguf_tensor_at(const ia_gguf *g, size_t i) {
    return g && i < g->n_tensors ? &g->tensors[i] : NULL;
}

static int cmp_tensor_key(const void *key, const void *elem) {
    return strcmp(key, (*(const ia_gguf_tensor *const *)elem)->name);
}

const ia_gguf_tensor *ia_gguf_tensor_find(const ia_gguf *g, const char *name) {
    if (!g || !name || g->n_tensors == 0)
        return NULL;
    const ia_gguf_tensor *const *hit =
        bsearch(name, g->by_name, g->n_tensors, sizeof *g->by_name, cmp_tensor_key);
    return hit ? *hit : NULL;
}

ia_status ia_gguf_tensor_dtype(const ia_gguf *g, const ia_gguf_tensor *t, ia_dtype *out) {
    static const struct {
        uint32_t ggml;
        ia_dtype ia;
    } map[] = {
        {IA_GGML_F32, IA_DTYPE_F32},   {IA_GGML_F16, IA_DTYPE_F16},   {IA_GGML_BF16, IA_DTYPE_BF16},
        {IA_GGML_I8, IA_DTYPE_I8},     {IA_GGML_I32, IA_DTYPE_I32},   {IA_GGML_I64, IA_DTYPE_I64},
        {IA_GGML_Q4_0, IA_DTYPE_Q4_0}, {IA_GGML_Q4_1, IA_DTYPE_Q4_1}, {IA_GGML_Q5_0, IA_DTYPE_Q5_0},
        {IA_GGML_Q5_1, IA_DTYPE_Q5_1}, {IA_GGML_Q8_0, IA_DTYPE_Q8_0}, {IA_GGML_Q2_K, IA_DTYPE_Q2_K},
        {IA_GGML_Q3_K, IA_DTYPE_Q3_K}, {IA_GGML_Q4_K, IA_DTYPE_Q4_K}, {IA_GGML_Q5_K, IA_DTYPE_Q5_K},
        {IA_GGML_Q6_K, IA_DTYPE_Q6_K}, {IA_GGML_Q8_K, IA_DTYPE_Q8_K},
    };
    if (!g || !t || !out)
        return ia_error_set(IA_EINVAL, "ia_gguf_tensor_dtype: NULL argument");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].ggml == t->type) {
            *out = map[i].ia;
            return IA_OK;
        }
    const ia_ggml_type_info *ti = ia_ggml_type_get_info(t->type);
    return ia_error_set(IA_EUNSUPPORTED,
                        "%s: tensor '%s' has ggml type %s, which is read and size-checked but not "
                        "computable (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K to Q6_K "
                        "are)",
                        g->what, t->name, ti ? ti->name : "unknown");
}

ia_status ia_gguf_tensor_view(const ia_gguf *g, const ia_gguf_tensor *t, ia_tensor *out) {
    ia_dtype dt;
    ia_status st = ia_gguf_tensor_dtype(g, t, &dt);
    if (st != IA_OK)
        return st;
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->dtype = dt;
    out->ndim = (int)t->n_dims;
    for (uint32_t d = 0; d < t->n_dims; d++)
        out->shape[d] = (int64_t)t->dims[t->n_dims - 1 - d];
    out->data = t->data;
    return IA_OK;
}

/* ---- values ------------------------------------------------------------------------ */

ia_gguf_type ia_gguf_value_type(const ia_gguf_value *v) { return v ? v->type : IA_GGUF_TYPE_COUNT; }

const char *ia_gguf_value_key(const ia_gguf_value *v) { return v ? v->key : NULL; }

static const char *owner_what(const ia_gguf_value *v) { return v->owner->what; }

static ia_status wrong_type(const ia_gguf_value *v, const char *want) {
    return ia_error_set(IA_EPARSE, "%s: key '%s' has type %s; expected %s", owner_what(v), v->key,
                        ia_gguf_type_name(v->type), want);
}

/* An integer value as signed or unsigned; IA_EPARSE for non-integers. */
static ia_status value_int(const ia_gguf_value *v, int64_t *s, uint64_t *u, bool *is_signed) {
    if (!v)
        return ia_error_set(IA_EINVAL, "NULL GGUF value");
    if (!gguf_type_is_int(v->type))
        return wrong_type(v, "an integer");
    gguf_load_int(v->type, v->raw, s, u, is_signed);
    return IA_OK;
}

static ia_status out_of_range(const ia_gguf_value *v, bool is_signed, int64_t s, uint64_t u,
                              const char *target) {
    if (is_signed)
        return ia_error_set(IA_ERANGE, "%s: key '%s' is %lld, which does not fit in %s",
                            owner_what(v), v->key, (long long)s, target);
    return ia_error_set(IA_ERANGE, "%s: key '%s' is %llu, which does not fit in %s", owner_what(v),
                        v->key, (unsigned long long)u, target);
}

ia_status ia_gguf_value_u64(const ia_gguf_value *v, uint64_t *out) {
    int64_t s;
    uint64_t u;
    bool sg;
    ia_status st = value_int(v, &s, &u, &sg);
    if (st != IA_OK)
        return st;
    if (sg && s < 0)
        return out_of_range(v, sg, s, u, "an unsigned 64-bit integer");
    *out = sg ? (uint64_t)s : u;
    return IA_OK;
}

ia_status ia_gguf_value_u32(const ia_gguf_value *v, uint32_t *out) {
    int64_t s;
    uint64_t u;
    bool sg;
    ia_status st = value_int(v, &s, &u, &sg);
    if (st != IA_OK)
        return st;
    if (sg ? (s < 0 || s > (int64_t)UINT32_MAX) : u > UINT32_MAX)
        return out_of_range(v, sg, s, u, "an unsigned 32-bit integer");
    *out = sg ? (uint32_t)s : (uint32_t)u;
    return IA_OK;
}

ia_status ia_gguf_value_i64(const ia_gguf_value *v, int64_t *out) {
    int64_t s;
    uint64_t u;
    bool sg;
    ia_status st = value_int(v, &s, &u, &sg);
    if (st != IA_OK)
        return st;
    if (!sg && u > (uint64_t)INT64_MAX)
        return out_of_range(v, sg, s, u, "a signed 64-bit integer");
    *out = sg ? s : (int64_t)u;
    return IA_OK;
}

ia_status ia_gguf_value_f64(const ia_gguf_value *v, double *out) {
    if (!v)
        return ia_error_set(IA_EINVAL, "NULL GGUF value");
    if (v->type == IA_GGUF_FLOAT32 || v->type == IA_GGUF_FLOAT64) {
        *out = gguf_load_float(v->type, v->raw);
        return IA_OK;
    }
    if (!gguf_type_is_int(v->type))
        return wrong_type(v, "a number");
    int64_t s;
    uint64_t u;
    bool sg;
    gguf_load_int(v->type, v->raw, &s, &u, &sg);
    *out = sg ? (double)s : (double)u;
    return IA_OK;
}

ia_status ia_gguf_value_f32(const ia_gguf_value *v, float *out) {
    double d;
    ia_status st = ia_gguf_value_f64(v, &d);
    if (st == IA_OK)
        *out = (float)d;
    return st;
}

ia_status ia_gguf_value_bool(const ia_gguf_value *v, bool *out) {
    if (!v)
        return ia_error_set(IA_EINVAL, "NULL GGUF value");
    if (v->type != IA_GGUF_BOOL)
        return wrong_type(v, "a BOOL");
    *out = v->raw[0] != 0;
    return IA_OK;
}

ia_status ia_gguf_value_string(const ia_gguf_value *v, const char **out, size_t *len) {
    if (!v)
        return ia_error_set(IA_EINVAL, "NULL GGUF value");
    if (v->type != IA_GGUF_STRING)
        return wrong_type(v, "a STRING");
    *out = v->str;
    if (len)
        *len = (size_t)v->str_len;
    return IA_OK;
}

/* Looks a key up for a by-key getter: *v NULL (and IA_OK) when absent and
 * optional. */
static ia_status lookup(const ia_gguf *g, const char *key, bool required, const ia_gguf_value **v) {
    if (!g || !key)
        return ia_error_set(IA_EINVAL, "ia_gguf_get: NULL handle or key");
    *v = ia_gguf_find(g, key);
    if (!*v && required)
        return ia_error_set(IA_ENOTFOUND, "%s: required key '%s' is missing", g->what, key);
    return IA_OK;
}

#define GGUF_GETTER(suffix, ctype)                                                                 \
    ia_status ia_gguf_get_##suffix(const ia_gguf *g, const char *key, bool required, ctype *out) { \
        const ia_gguf_value *v = NULL;                                                             \
        ia_status st = lookup(g, key, required, &v);                                               \
        if (st != IA_OK || !v)                                                                     \
            return st;                                                                             \
        return ia_gguf_value_##suffix(v, out);                                                     \
    }

GGUF_GETTER(u32, uint32_t)
GGUF_GETTER(u64, uint64_t)
GGUF_GETTER(i64, int64_t)
GGUF_GETTER(f32, float)
GGUF_GETTER(f64, double)
GGUF_GETTER(bool, bool)

ia_status ia_gguf_get_string(const ia_gguf *g, const char *key, bool required, const char **out,
                             size_t *len) {
    const ia_gguf_value *v = NULL;
    ia_status st = lookup(g, key, required, &v);
    if (st != IA_OK || !v)
        return st;
    return ia_gguf_value_string(v, out, len);
}

/* ---- arrays ---------------------------------------------------------------------------- */

ia_gguf_type ia_gguf_array_type(const ia_gguf_value *v) {
    return v && v->type == IA_GGUF_ARRAY ? v->elem_type : IA_GGUF_TYPE_COUNT;
}

uint64_t ia_gguf_array_count(const ia_gguf_value *v) {
    return v && v->type == IA_GGUF_ARRAY ? v->count : 0;
}

/* Checks that v is an array whose elements pass `ok` and that i exists. */
static ia_status array_elem(const ia_gguf_value *v, uint64_t i, bool ok, const char *want) {
    if (!v)
        return ia_error_set(IA_EINVAL, "NULL GGUF value");
    if (v->type != IA_GGUF_ARRAY)
        return wrong_type(v, "an ARRAY");
    if (!ok)
        return ia_error_set(IA_EPARSE, "%s: key '%s' is an array of %s; expected %s", owner_what(v),
                            v->key, ia_gguf_type_name(v->elem_type), want);
    if (i >= v->count)
        return ia_error_set(IA_ERANGE, "%s: key '%s' has %llu elements, no element %llu",
                            owner_what(v), v->key, (unsigned long long)v->count,
                            (unsigned long long)i);
    return IA_OK;
}

ia_status ia_gguf_array_int(const ia_gguf_value *v, uint64_t i, int64_t *out) {
    bool ok = v && (gguf_type_is_int(v->elem_type) || v->elem_type == IA_GGUF_BOOL);
    ia_status st = array_elem(v, i, ok, "integers");
    if (st != IA_OK)
        return st;
    size_t n = gguf_scalar_size(v->elem_type);
    const uint8_t *p = v->raw + i * n;
    if (v->elem_type == IA_GGUF_BOOL) {
        *out = p[0];
        return IA_OK;
    }
    int64_t s;
    uint64_t u;
    bool sg;
    gguf_load_int(v->elem_type, p, &s, &u, &sg);
    if (!sg && u > (uint64_t)INT64_MAX)
        return ia_error_set(IA_ERANGE, "%s: key '%s' element %llu is %llu, beyond INT64_MAX",
                            owner_what(v), v->key, (unsigned long long)i, (unsigned long long)u);
    *out = sg ? s : (int64_t)u;
    return IA_OK;
}

ia_status ia_gguf_array_float(const ia_gguf_value *v, uint64_t i, double *out) {
    bool fl = v && (v->elem_type == IA_GGUF_FLOAT32 || v->elem_type == IA_GGUF_FLOAT64);
    bool ok = v && (fl || gguf_type_is_int(v->elem_type));
    ia_status st = array_elem(v, i, ok, "numbers");
    if (st != IA_OK)
        return st;
    const uint8_t *p = v->raw + i * gguf_scalar_size(v->elem_type);
    if (fl) {
        *out = gguf_load_float(v->elem_type, p);
        return IA_OK;
    }
    int64_t s;
    uint64_t u;
    bool sg;
    gguf_load_int(v->elem_type, p, &s, &u, &sg);
    *out = sg ? (double)s : (double)u;
    return IA_OK;
}

ia_status ia_gguf_array_string(const ia_gguf_value *v, uint64_t i, const char **out, size_t *len) {
    ia_status st = array_elem(v, i, v && v->elem_type == IA_GGUF_STRING, "strings");
    if (st != IA_OK)
        return st;
    *out = v->elems[i].str;
    if (len)
        *len = (size_t)v->elems[i].str_len;
    return IA_OK;
}

const ia_gguf_value *ia_gguf_array_at(const ia_gguf_value *v, uint64_t i) {
    if (!v || v->type != IA_GGUF_ARRAY || v->elem_type != IA_GGUF_ARRAY || i >= v->count)
        return NULL;
    return &v->elems[i];
}

const void *ia_gguf_array_data(const ia_gguf_value *v) {
    if (!v || v->type != IA_GGUF_ARRAY || !gguf_scalar_size(v->elem_type))
        return NULL;
    return v->raw;
}
