/*
 * safetensors reader: maps a model file and hands out ia_tensor views into
 * the mapping, but only after the whole header has been checked.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON mapping tensor names to {dtype, shape, data_offsets}, then the
 * data area; offsets are relative to the start of the data area. Files come
 * from anywhere (an IPFS CID, a download), so nothing in the header is
 * trusted: every size is computed with overflow checks, every byte range
 * must lie inside the data area, and no two tensors may share a byte. A
 * caller that gets a handle can read any tensor's bytes without further
 * checks. docs/FORMATS.md lists every rule with the error it gives.
 *
 * Parsing runs in two passes over the jansson tree: the first counts tensors
 * and string bytes (and checks __metadata__), the second validates each
 * entry and copies names into one pool owned by the handle, so the JSON tree
 * is freed before returning. Structural errors (EPARSE, ERANGE) win over
 * "well-formed but unsupported" ones (EUNSUPPORTED: an F64 tensor, five
 * dimensions), which are reported only once the whole file is known to be
 * sound, so a corrupt file is never mistaken for an exotic one.
 *
 * Alignment: the format does not require tensors to be aligned to their
 * element size, and some writers do not align them. We accept unaligned
 * tensors (and log their count at debug level): kernels copy or convert
 * weights when they pack them, and ia_tensor users must read data with
 * memcpy-safe access unless they check alignment themselves.
 *
 * Lookup by name is a binary search over pointers sorted by name.
 */
#include "ia/formats.h"

#include "formats/formats_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every dtype the safetensors format defines, with its width in bits; those
 * without an ia_dtype (ia < 0) are valid files we do not run. Sub-byte types
 * (F4, F6_*) must fill a whole number of bytes, as in the reference reader. */
typedef struct st_dtype {
    const char *name;
    unsigned bits;
    int ia;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 32, IA_DTYPE_F32},
    {"F16", 16, IA_DTYPE_F16},
    {"BF16", 16, IA_DTYPE_BF16},
    {"I8", 8, IA_DTYPE_I8},
    {"I32", 32, IA_DTYPE_I32},
    {"I64", 64, IA_DTYPE_I64},
    {"F64", 64, -1},
    {"U8", 8, -1},
    {"BOOL", 8, -1},
    {"I16", 16, -1},
    {"U16", 16, -1},
    {"U32", 32, -1},
    {"U64", 64, -1},
    {"F8_E4M3", 8, -1},
    {"F8_E5M2", 8, -1},
    {"F8_E8M0", 8, -1},
    {"F6_E2M3", 6, -1},
    {"F6_E3M2", 6, -1},
    {"F4", 4, -1},
    {"C64", 64, -1},
};

typedef struct st_meta {
    const char *key;
    const char *value;
} st_meta;

/* One tensor's byte range while validating; idx is its header position. */
typedef struct st_range {
    uint64_t begin, end;
    size_t idx;
} st_range;

struct ia_safetensors {
    ia_mapped_file map; /* owned when opened from a path; empty after parse */
    char *what;
    size_t n_tensors;
    ia_tensor *tensors;        /* header order */
    const ia_tensor **by_name; /* sorted by name for bsearch */
    size_t n_meta;
    st_meta *meta; /* sorted by key */
    char *strings; /* tensor names and metadata, NUL-separated */
};

/* The per-parse state the entry checks share. */
typedef struct st_parser {
    const char *what;
    const uint8_t *data_area;
    uint64_t data_size;
    char *pool; /* next free byte of the string pool */
} st_parser;

static const st_dtype *dtype_lookup(const json_t *s) {
    const char *name = json_string_value(s);
    size_t len = json_string_length(s); /* a "\u0000" inside must not match */
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strlen(st_dtypes[i].name) == len && memcmp(st_dtypes[i].name, name, len) == 0)
            return &st_dtypes[i];
    return NULL;
}

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static char *pool_copy(st_parser *p, const char *s) {
    size_t n = strlen(s) + 1;
    char *out = p->pool;
    memcpy(out, s, n);
    p->pool += n;
    return out;
}

/* Reads a non-negative JSON integer; `field` and `pos` only shape the message. */
static ia_status read_count(const st_parser *p, const char *name, const char *field, size_t pos,
                            const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        char got[64];
        if (json_is_integer(v))
            snprintf(got, sizeof got, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            snprintf(got, sizeof got, "the real number %g", json_real_value(v));
        else
            snprintf(got, sizeof got, "%s", formats_json_type_word(v));
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s': %s[%zu] must be a non-negative integer, got %s",
                            p->what, name, field, pos, got);
    }
    *out = (uint64_t)json_integer_value(v);
    return IA_OK;
}

static const json_t *get_field(const st_parser *p, const char *name, const json_t *entry,
                               const char *field, json_type type, const char *expect,
                               ia_status *st) {
    const json_t *v = json_object_get(entry, field);
    if (!v) {
        *st = ia_error_set(IA_EPARSE, "%s: tensor '%s' has no '%s' field", p->what, name, field);
        return NULL;
    }
    if (json_typeof(v) != type) {
        *st = ia_error_set(IA_EPARSE, "%s: tensor '%s': field '%s' must be %s, got %s", p->what,
                           name, field, expect, formats_json_type_word(v));
        return NULL;
    }
    *st = IA_OK;
    return v;
}

/* Validates the shape and returns the element count (0 when any dim is 0)
 * in *numel; copies up to IA_MAX_DIMS dims into t. */
static ia_status check_shape(const st_parser *p, const char *name, const json_t *shape,
                             ia_tensor *t, uint64_t *numel) {
    uint64_t n = 1;
    bool zero = false, overflow = false;
    for (size_t i = 0; i < json_array_size(shape); i++) {
        uint64_t d;
        ia_status st = read_count(p, name, "shape", i, json_array_get(shape, i), &d);
        if (st != IA_OK)
            return st;
        if (i < IA_MAX_DIMS)
            t->shape[i] = (int64_t)d;
        zero |= d == 0;
        overflow |= __builtin_mul_overflow(n, d, &n);
    }
    if (zero) {
        *numel = 0;
        return IA_OK;
    }
    if (overflow)
        return ia_error_set(IA_ERANGE,
                            "%s: tensor '%s' has a shape whose element count overflows 64 bits",
                            p->what, name);
    *numel = n;
    return IA_OK;
}

/* Checks one header entry and fills *t and *r (the data pointer is set only
 * once the range is known to be inside the data area). */
static ia_status check_entry(st_parser *p, const char *name, const json_t *entry, ia_tensor *t,
                             st_range *r, const st_dtype **dt, size_t *ndim) {
    ia_status st;
    if (!json_is_object(entry))
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s' must be an object with dtype, shape and "
                            "data_offsets, got %s",
                            p->what, name, formats_json_type_word(entry));
    const json_t *dtype = get_field(p, name, entry, "dtype", JSON_STRING, "a string", &st);
    if (!dtype)
        return st;
    const json_t *shape = get_field(p, name, entry, "shape", JSON_ARRAY, "an array", &st);
    if (!shape)
        return st;
    const json_t *offs = get_field(p, name, entry, "data_offsets", JSON_ARRAY, "an array", &st);
    if (!offs)
        return st;

    *dt = dtype_lookup(dtype);
    if (!*dt)
        return ia_error_set(IA_EPARSE, "%s: tensor '%s' has unknown dtype '%s'", p->what, name,
                            json_string_value(dtype));
    *ndim = json_array_size(shape);
    uint64_t numel = 0;
    if ((st = check_shape(p, name, shape, t, &numel)) != IA_OK)
        return st;

    if (json_array_size(offs) != 2)
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s': data_offsets must be [begin, end], got %zu values",
                            p->what, name, json_array_size(offs));
    if ((st = read_count(p, name, "data_offsets", 0, json_array_get(offs, 0), &r->begin)) ||
        (st = read_count(p, name, "data_offsets", 1, json_array_get(offs, 1), &r->end)))
        return st;
    if (r->begin > r->end)
        return ia_error_set(
            IA_EPARSE, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", p->what,
            name, (unsigned long long)r->begin, (unsigned long long)r->end);
    if (r->end > p->data_size)
        return ia_error_set(
            IA_EPARSE, "%s: tensor '%s' ends at byte %llu but the data area has %llu bytes",
            p->what, name, (unsigned long long)r->end, (unsigned long long)p->data_size);

    uint64_t bits;
    if (__builtin_mul_overflow(numel, (uint64_t)(*dt)->bits, &bits))
        return ia_error_set(IA_ERANGE, "%s: tensor '%s': %llu elements of %s overflow a byte count",
                            p->what, name, (unsigned long long)numel, (*dt)->name);
    if (bits % 8 != 0)
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s': %llu elements of %s do not fill whole bytes", p->what,
                            name, (unsigned long long)numel, (*dt)->name);
    if (bits / 8 != r->end - r->begin)
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s' has dtype %s and %llu elements (%llu bytes) but "
                            "data_offsets [%llu, %llu] span %llu bytes",
                            p->what, name, (*dt)->name, (unsigned long long)numel,
                            (unsigned long long)(bits / 8), (unsigned long long)r->begin,
                            (unsigned long long)r->end, (unsigned long long)(r->end - r->begin));

    t->name = pool_copy(p, name);
    t->dtype = (*dt)->ia >= 0 ? (ia_dtype)(*dt)->ia : IA_DTYPE_COUNT;
    t->ndim = *ndim <= IA_MAX_DIMS ? (int)*ndim : IA_MAX_DIMS;
    t->data = p->data_area + r->begin;
    return IA_OK;
}

/* First pass: counts tensors, sizes the string pool and checks __metadata__
 * (which must be an object of strings without NUL characters). */
static ia_status count_entries(const char *what, json_t *root, size_t *n_tensors, size_t *n_meta,
                               size_t *pool_bytes) {
    const char *key;
    json_t *value;
    *n_tensors = *n_meta = *pool_bytes = 0;
    json_object_foreach(root, key, value) {
        *pool_bytes += strlen(key) + 1; /* bounded by the header size: no overflow */
        if (strcmp(key, "__metadata__") != 0) {
            (*n_tensors)++;
            continue;
        }
        if (!json_is_object(value))
            return ia_error_set(IA_EPARSE,
                                "%s: '__metadata__' must be an object of strings, got %s", what,
                                formats_json_type_word(value));
        const char *mkey;
        json_t *mval;
        json_object_foreach(value, mkey, mval) {
            if (!json_is_string(mval))
                return ia_error_set(IA_EPARSE,
                                    "%s: __metadata__ entry '%s' must be a string, got %s", what,
                                    mkey, formats_json_type_word(mval));
            size_t len = json_string_length(mval);
            if (memchr(json_string_value(mval), '\0', len))
                return ia_error_set(
                    IA_EPARSE, "%s: __metadata__ entry '%s' contains a NUL character", what, mkey);
            *pool_bytes += strlen(mkey) + 1 + len + 1;
            (*n_meta)++;
        }
    }
    return IA_OK;
}

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    const ia_tensor *x = *(const ia_tensor *const *)a, *y = *(const ia_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* No byte may belong to two tensors. Empty tensors own no bytes, so they
 * never overlap; among the others, sorted by start, each must begin at or
 * after the furthest end seen so far. Sorts `ranges` in place. */
static ia_status check_overlaps(const ia_safetensors *st, st_range *ranges) {
    qsort(ranges, st->n_tensors, sizeof *ranges, cmp_range);
    const st_range *reach = NULL;
    for (size_t i = 0; i < st->n_tensors; i++) {
        const st_range *r = &ranges[i];
        if (r->begin == r->end)
            continue;
        if (reach && r->begin < reach->end)
            return ia_error_set(IA_EPARSE,
                                "%s: tensors '%s' (bytes %llu..%llu) and '%s' (bytes "
                                "%llu..%llu) overlap in the data area",
                                st->what, st->tensors[reach->idx].name,
                                (unsigned long long)reach->begin, (unsigned long long)reach->end,
                                st->tensors[r->idx].name, (unsigned long long)r->begin,
                                (unsigned long long)r->end);
        if (!reach || r->end > reach->end)
            reach = r;
    }
    return IA_OK;
}

/* Second pass over the tensors: each entry, then overlaps, then (only once
 * the file is known sound) unsupported dtypes and ranks. */
static ia_status check_tensors(ia_safetensors *st, st_parser *p, json_t *root) {
    ia_status status = IA_OK;
    st_range *ranges = ia_malloc_array(st->n_tensors, sizeof *ranges);
    const st_dtype **dts = ia_malloc_array(st->n_tensors, sizeof *dts);
    size_t *ndims = ia_malloc_array(st->n_tensors, sizeof *ndims);
    if (!ranges || !dts || !ndims) {
        status = IA_ENOMEM;
        goto done;
    }
    size_t i = 0, unaligned = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        ranges[i].idx = i;
        status = check_entry(p, key, value, &st->tensors[i], &ranges[i], &dts[i], &ndims[i]);
        if (status != IA_OK)
            goto done;
        unsigned align = dts[i]->bits >= 8 ? dts[i]->bits / 8 : 1;
        unaligned += (uintptr_t)st->tensors[i].data % align != 0;
        st->by_name[i] = &st->tensors[i];
        i++;
    }
    if ((status = check_overlaps(st, ranges)) != IA_OK)
        goto done;
    for (i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        if (dts[i]->ia < 0) {
            status = ia_error_set(IA_EUNSUPPORTED,
                                  "%s: tensor '%s' has dtype %s, which is not supported (F32, "
                                  "F16, BF16, I8, I32 and I64 are)",
                                  st->what, name, dts[i]->name);
            goto done;
        }
        if (ndims[i] > IA_MAX_DIMS) {
            status = ia_error_set(IA_EUNSUPPORTED,
                                  "%s: tensor '%s' has %zu dimensions; at most %d are supported",
                                  st->what, name, ndims[i], IA_MAX_DIMS);
            goto done;
        }
    }
    if (unaligned)
        ia_log(IA_LOG_DEBUG, "%s: %zu tensors are not aligned to their element size", st->what,
               unaligned);
done:
    free(ranges);
    free(dts);
    free(ndims);
    return status;
}

/* Checks the length prefix and parses the JSON header into *root. */
static ia_status parse_header(const uint8_t *data, size_t size, const char *what, json_t **root,
                              uint64_t *header_len) {
    *root = NULL;
    if (size < 8)
        return ia_error_set(IA_EPARSE,
                            "%s: file has %zu bytes, too short for the 8-byte header length "
                            "(not a safetensors file, or truncated)",
                            what, size);
    uint64_t n = read_le64(data);
    if (n > IA_SAFETENSORS_MAX_HEADER)
        return ia_error_set(IA_ERANGE,
                            "%s: header length %llu exceeds the %u-byte limit (not a "
                            "safetensors file?)",
                            what, (unsigned long long)n, IA_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return ia_error_set(IA_EPARSE,
                            "%s: header length is %llu bytes but only %zu bytes follow the "
                            "length field (file truncated?)",
                            what, (unsigned long long)n, size - 8);
    char label[1100];
    snprintf(label, sizeof label, "%s: header", what);
    ia_status st = ia_json_parse((const char *)data + 8, (size_t)n, label, root);
    if (st != IA_OK)
        return st;
    if (!json_is_object(*root))
        return ia_error_set(IA_EPARSE,
                            "%s: header is a JSON %s; expected an object mapping tensor names "
                            "to dtype, shape and data_offsets",
                            what, formats_json_type_word(*root));
    *header_len = n;
    return IA_OK;
}

static void fill_metadata(ia_safetensors *st, st_parser *p, json_t *root) {
    json_t *meta = json_object_get(root, "__metadata__");
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(meta, key, value) {
        st->meta[i].key = pool_copy(p, key);
        st->meta[i].value = pool_copy(p, json_string_value(value));
        i++;
    }
    qsort(st->meta, st->n_meta, sizeof *st->meta, cmp_meta);
}

ia_status ia_safetensors_parse(const uint8_t *data, size_t size, const char *what,
                               ia_safetensors **out) {
    ia_status status;
    json_t *root = NULL;
    ia_safetensors *st = NULL;
    uint64_t header_len = 0;
    size_t pool_bytes;
    if (!out || (!data && size))
        return ia_error_set(IA_EINVAL, "ia_safetensors_parse: NULL data or out");
    *out = NULL;
    if (!what)
        what = "safetensors";

    if ((status = parse_header(data, size, what, &root, &header_len)) != IA_OK)
        goto fail;
    st = ia_calloc(1, sizeof *st);
    if (!st || !(st->what = ia_strdup(what))) {
        status = IA_ENOMEM;
        goto fail;
    }
    status = count_entries(what, root, &st->n_tensors, &st->n_meta, &pool_bytes);
    if (status != IA_OK)
        goto fail;
    st->tensors = ia_calloc(st->n_tensors, sizeof *st->tensors);
    st->by_name = ia_malloc_array(st->n_tensors, sizeof *st->by_name);
    st->meta = ia_malloc_array(st->n_meta, sizeof *st->meta);
    st->strings = ia_malloc(pool_bytes);
    if (!st->tensors || !st->by_name || !st->meta || !st->strings) {
        status = IA_ENOMEM;
        goto fail;
    }
    st_parser p = {
        .what = st->what,
        .data_area = data + 8 + header_len,
        .data_size = size - 8 - header_len,
        .pool = st->strings,
    };
    if ((status = check_tensors(st, &p, root)) != IA_OK)
        goto fail;
    fill_metadata(st, &p, root);
    qsort(st->by_name, st->n_tensors, sizeof *st->by_name, cmp_tensor_name);
    json_decref(root);
    *out = st;
    return IA_OK;
fail:
    json_decref(root);
    ia_safetensors_close(st);
    return status;
}

ia_status ia_safetensors_open(const char *path, ia_safetensors **out) {
    ia_mapped_file map;
    if (!path || !out)
        return ia_error_set(IA_EINVAL, "ia_safetensors_open: NULL path or out");
    *out = NULL;
    ia_status status = ia_file_map(path, &map);
    if (status != IA_OK)
        return status;
    status = ia_safetensors_parse(map.data, map.size, path, out);
    if (status != IA_OK) {
        ia_file_unmap(&map);
        return status;
    }
    (*out)->map = map;
    return IA_OK;
}

void ia_safetensors_close(ia_safetensors *st) {
    if (!st)
        return;
    ia_file_unmap(&st->map);
    free(st->what);
    free(st->tensors);
    free(st->by_name);
    free(st->meta);
    free(st->strings);
    free(st);
}

void ia_safetensors_drop_pages(const ia_safetensors *st) {
    if (st)
        ia_file_drop_pages(&st->map);
}

size_t ia_safetensors_count(const ia_safetensors *st) { return st ? st->n_tensors : 0; }

const ia_tensor *ia_safetensors_at(const ia_safetensors *st, size_t i) {
    return st && i < st->n_tensors ? &st->tensors[i] : NULL;
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp(key, (*(const ia_tensor *const *)elem)->name);
}

const ia_tensor *ia_safetensors_find(const ia_safetensors *st, const char *name) {
    if (!st || !name || st->n_tensors == 0)
        return NULL;
    const ia_tensor *const *hit =
        bsearch(name, st->by_name, st->n_tensors, sizeof *st->by_name, cmp_name_key);
    return hit ? *hit : NULL;
}

static int cmp_meta_key(const void *key, const void *elem) {
    return strcmp(key, ((const st_meta *)elem)->key);
}

const char *ia_safetensors_metadata(const ia_safetensors *st, const char *key) {
    if (!st || !key || st->n_meta == 0)
        return NULL;
    const st_meta *hit = bsearch(key, st->meta, st->n_meta, sizeof *st->meta, cmp_meta_key);
    return hit ? hit->value : NULL;
}

const char *ia_safetensors_path(const ia_safetensors *st) { return st ? st->what : NULL; }
