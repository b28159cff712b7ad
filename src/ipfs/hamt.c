/*
 * HAMT-sharded directories, built the way boxo builds them, so a large
 * directory gets the same root CID as in Kubo.
 *
 * Each entry name is hashed with murmur3-x64-64 (seed 0, the first half of
 * murmur3's x64 128-bit variant, read big-endian). With fanout 256 every
 * level of the trie consumes one byte of that hash: the top shard puts an
 * entry in slot hash[0], a child shard in slot hash[1], and so on. A slot
 * holding a single entry links to it directly, under the name "XX" + entry
 * name (XX = the slot in upper-case hex); a slot shared by several entries
 * links, under "XX" alone, to a child shard holding them. Because boxo
 * collapses shards on removal, the trie depends only on the set of names,
 * which lets us build it bottom-up from the sorted hashes instead of by
 * insertion. A shard's Data is UnixFS {Type: HAMTShard, Data: bitfield,
 * hashType: 0x22, fanout: 256}, where the bitfield is the big-endian bit
 * set of occupied slots with its leading zero bytes dropped (go-bitfield's
 * Bytes()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

#define HASH_BYTES 8

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void ia_murmur3_x64_64(const void *data, size_t len, uint8_t out[8]) {
    const uint8_t *p = data;
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    uint64_t h1 = 0, h2 = 0;
    size_t nblocks = len / 16;
    for (size_t i = 0; i < nblocks; i++) {
        uint64_t k1 = load_le64(p + 16 * i), k2 = load_le64(p + 16 * i + 8);
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
        h1 = rotl64(h1, 27);
        h1 += h2;
        h1 = h1 * 5 + 0x52dce729;
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
        h2 = rotl64(h2, 31);
        h2 += h1;
        h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t *tail = p + nblocks * 16;
    size_t rem = len & 15;
    uint64_t k1 = 0, k2 = 0;
    for (size_t i = rem; i > 8; i--)
        k2 = (k2 << 8) | tail[i - 1];
    for (size_t i = rem < 8 ? rem : 8; i > 0; i--)
        k1 = (k1 << 8) | tail[i - 1];
    if (rem > 8) {
        k2 *= c2;
        k2 = rotl64(k2, 33);
        k2 *= c1;
        h2 ^= k2;
    }
    if (rem > 0) {
        k1 *= c1;
        k1 = rotl64(k1, 31);
        k1 *= c2;
        h1 ^= k1;
    }
    h1 ^= (uint64_t)len;
    h2 ^= (uint64_t)len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(h1 >> (56 - 8 * i));
}

typedef struct hashed_entry {
    uint8_t hash[HASH_BYTES];
    ia_dir_entry *entry;
} hashed_entry;

static int cmp_hashed(const void *a, const void *b) {
    const hashed_entry *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, HASH_BYTES);
    if (c)
        return c;
    /* Equal 64-bit hashes: boxo cannot shard these apart either; keep the
     * order total so the caller gets a clear error, not a random tree. */
    size_t n = x->entry->name_len < y->entry->name_len ? x->entry->name_len : y->entry->name_len;
    c = memcmp(x->entry->name, y->entry->name, n);
    return c ? c
             : (x->entry->name_len > y->entry->name_len) -
                   (x->entry->name_len < y->entry->name_len);
}

typedef struct hamt_ctx {
    int cid_version;
    ia_block_sink sink;
    void *sink_ctx;
    ia_pbw node, data; /* scratch, reused by every shard */
} hamt_ctx;

/* Builds the shard for entries[0, n), all sharing hash bytes [0, depth). */
static ia_status build_shard(hamt_ctx *c, hashed_entry *e, size_t n, int depth, ia_cid *out,
                             uint64_t *tsize) {
    static const char hex[] = "0123456789ABCDEF";
    ia_status st = IA_OK;
    ia_pb_link *links = NULL;
    size_t n_links = 0, name_bytes = 0;
    uint8_t bitfield[IA_HAMT_FANOUT / 8] = {0};
    char *names = NULL;
    if (depth >= HASH_BYTES) {
        int shown = (int)(e[0].entry->name_len > 64 ? 64 : e[0].entry->name_len);
        return ia_error_set(IA_EUNSUPPORTED,
                            "HAMT directory: %zu names (one is '%.*s') share the same 64-bit "
                            "murmur3 hash; the directory cannot be sharded",
                            n, shown, e[0].entry->name);
    }
    /* Count slots and the bytes their names need. */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && e[j].hash[depth] == e[i].hash[depth])
            j++;
        n_links++;
        name_bytes += 2 + (j - i == 1 ? e[i].entry->name_len : 0);
        i = j;
    }
    if (!(links = ia_calloc(n_links, sizeof *links)) || !(names = ia_malloc(name_bytes + 1))) {
        st = IA_ENOMEM;
        goto done;
    }
    uint64_t total = 0;
    size_t k = 0, off = 0;
    for (size_t i = 0; i < n; k++) {
        size_t j = i + 1;
        uint8_t slot = e[i].hash[depth];
        while (j < n && e[j].hash[depth] == slot)
            j++;
        ia_pb_link *l = &links[k];
        l->name = names + off;
        names[off++] = hex[slot >> 4];
        names[off++] = hex[slot & 15];
        l->has_name = l->has_tsize = true;
        if (j - i == 1) {
            memcpy(names + off, e[i].entry->name, e[i].entry->name_len);
            off += e[i].entry->name_len;
            l->name_len = 2 + e[i].entry->name_len;
            l->cid = e[i].entry->cid;
            l->tsize = e[i].entry->tsize;
        } else {
            l->name_len = 2;
            if ((st = build_shard(c, e + i, j - i, depth + 1, &l->cid, &l->tsize)))
                goto done;
        }
        total += l->tsize;
        bitfield[sizeof bitfield - 1 - slot / 8] |= (uint8_t)(1u << (slot % 8));
        i = j;
    }
    size_t lead = 0;
    while (lead < sizeof bitfield && bitfield[lead] == 0)
        lead++;
    ia_unixfs u = {.type = IA_UNIXFS_HAMT_SHARD,
                   .data = bitfield + lead,
                   .data_len = sizeof bitfield - lead,
                   .has_data = true,
                   .hash_type = IA_HAMT_MURMUR3,
                   .has_hash_type = true,
                   .fanout = IA_HAMT_FANOUT,
                   .has_fanout = true};
    ia_pbw_reset(&c->data);
    if ((st = ia_unixfs_encode_into(&u, &c->data)))
        goto done;
    ia_pb_node node = {.links = links,
                       .n_links = n_links,
                       .data = c->data.data,
                       .data_len = c->data.len,
                       .has_data = true};
    ia_pbw_reset(&c->node);
    if ((st = ia_dagpb_encode_into(&node, &c->node)))
        goto done;
    ia_cid_of_block(c->cid_version, IA_CODEC_DAG_PB, c->node.data, c->node.len, out);
    *tsize = total + c->node.len;
    if (c->sink)
        st = c->sink(c->sink_ctx, out, c->node.data, c->node.len);
done:
    free(links);
    free(names);
    return st;
}

ia_status ia_hamt_build(ia_dir_entry *entries, size_t n, int cid_version, ia_block_sink sink,
                        void *sink_ctx, ia_cid *root, uint64_t *tsize) {
    hamt_ctx c = {.cid_version = cid_version, .sink = sink, .sink_ctx = sink_ctx};
    hashed_entry *h = ia_malloc_array(n ? n : 1, sizeof *h);
    ia_status st;
    if (!h)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ia_murmur3_x64_64(entries[i].name, entries[i].name_len, h[i].hash);
        h[i].entry = &entries[i];
    }
    qsort(h, n, sizeof *h, cmp_hashed);
    st = build_shard(&c, h, n, 0, root, tsize);
    free(h);
    ia_pbw_free(&c.node);
    ia_pbw_free(&c.data);
    return st;
}
