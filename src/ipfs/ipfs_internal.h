/*
 * Private pieces shared by the files of src/ipfs/ (not part of the public
 * API in include/ia/ipfs.h).
 *
 * A growable byte writer for protobuf encoding (dag-pb, UnixFS), the
 * protobuf field helpers both codecs use, the murmur3 hash the HAMT keys
 * on, and the HAMT builder that the importer calls for directories past
 * Kubo's sharding threshold. The blockstore side may add its own
 * declarations below the marked line.
 */
#ifndef IA_IPFS_INTERNAL_H
#define IA_IPFS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ia/ipfs.h"

/* ---- byte writer ------------------------------------------------------------ */

/* A malloc'd buffer that grows as bytes are appended. After a failed
 * allocation `failed` is set and further writes are ignored, so a caller can
 * write a whole node and check once (ia_pbw_status). Not thread-safe. */
typedef struct ia_pbw {
    uint8_t *data;
    size_t len, cap;
    bool failed;
} ia_pbw;

void ia_pbw_reset(ia_pbw *w); /* len = 0, keeps the buffer */
void ia_pbw_free(ia_pbw *w);
bool ia_pbw_reserve(ia_pbw *w, size_t extra);
void ia_pbw_bytes(ia_pbw *w, const void *p, size_t n);
void ia_pbw_varint(ia_pbw *w, uint64_t v);
/* A protobuf key: field number and wire type (0 varint, 2 length-delimited). */
void ia_pbw_key(ia_pbw *w, uint32_t field, uint32_t wire);
/* Field `field` as length-delimited bytes (key, length, bytes). */
void ia_pbw_field_bytes(ia_pbw *w, uint32_t field, const void *p, size_t n);
void ia_pbw_field_varint(ia_pbw *w, uint32_t field, uint64_t v);
/* IA_ENOMEM (with a message) when a write failed, else IA_OK. */
ia_status ia_pbw_status(const ia_pbw *w);

/* Bytes the varint encoding of v takes (1..10). */
size_t ia_varint_len(uint64_t v);

/* ---- protobuf reading --------------------------------------------------------- */

/* Reads a protobuf varint (up to 10 bytes, no minimality rule, overflow past
 * 64 bits rejected) at *pos, advancing it. IA_EPARSE naming `what`. */
ia_status ia_pb_read_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out,
                            const char *what);
/* Skips one field of wire type `wire` at *pos (after its key). */
ia_status ia_pb_skip_field(const uint8_t *buf, size_t len, size_t *pos, uint32_t wire,
                           const char *what);

/* ---- codecs into a writer (no per-call allocation once the writer grew) ------ */

ia_status ia_dagpb_encode_into(const ia_pb_node *node, ia_pbw *w);
ia_status ia_unixfs_encode_into(const ia_unixfs *u, ia_pbw *w);

/* ---- HAMT (hamt.c) ------------------------------------------------------------- */

#define IA_HAMT_FANOUT 256
#define IA_HAMT_MURMUR3 0x22

/* murmur3 x64 128 with seed 0, first 64 bits, big-endian: the 8 bytes
 * boxo's HAMT reads its slot indices from (spaolacci/murmur3 New64). */
void ia_murmur3_x64_64(const void *data, size_t len, uint8_t out[8]);

/* One directory entry as the importer collected it. */
typedef struct ia_dir_entry {
    char *name; /* owned by the caller's array */
    size_t name_len;
    ia_cid cid;
    uint64_t tsize; /* cumulative size of the child DAG */
} ia_dir_entry;

/* Called for every block built (shards, directory nodes); may be NULL. */
typedef ia_status (*ia_block_sink)(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len);

/* Builds the HAMT (fanout 256, murmur3) over entries, as boxo does for a
 * sharded directory, passing every shard to sink; *root and *tsize describe
 * the top shard. Reorders `entries`. */
ia_status ia_hamt_build(ia_dir_entry *entries, size_t n, int cid_version, ia_block_sink sink,
                        void *sink_ctx, ia_cid *root, uint64_t *tsize);

/* ---- blockstore side (blockstore.c, pins.c, exporter.c, car.c) ---------------- */

struct sqlite3;

/* The multihash bytes of a CID (varint code, varint length, digest) into buf
 * (IA_CID_MAX_BYTES); returns the length. The store's key. */
size_t ia_bs_multihash(const ia_cid *cid, uint8_t *buf);
/* A CIDv1 (raw codec) for multihash bytes; false when they are not one. */
bool ia_bs_cid_from_multihash(const uint8_t *mh, size_t mh_len, ia_cid *out);
/* The repo's database (pins and references), owned by the store. */
struct sqlite3 *ia_bs_db(ia_blockstore *bs);
/* Takes the shared writer lock on repo.lock (kept until close). */
ia_status ia_bs_lock_writer(ia_blockstore *bs);
/* Converts to the exclusive lock gc needs, waiting up to ~5 s (with wait) for
 * other writers; IA_EIO saying `why` needs the repo when they stay. */
ia_status ia_bs_lock_exclusive(ia_blockstore *bs, const char *why, bool wait);
/* Back to the shared lock (if the handle had one) or unlocked. */
void ia_bs_unlock_exclusive(ia_blockstore *bs);
/* Every block (files, then references); with clean_temp also removes leftover
 * ".put-*" temporary files (only under the exclusive lock). */
ia_status ia_bs_foreach(ia_blockstore *bs, bool clean_temp, ia_cid_fn fn, void *ctx);
/* Bytes on disk under the repo directory. */
uint64_t ia_bs_disk_usage(ia_blockstore *bs);
/* When an open batch commits by itself (0: the defaults, 4096 blocks or
 * 256 MiB); for tests. */
void ia_bs_set_batch_limits(ia_blockstore *bs, size_t max_blocks, uint64_t max_bytes);

/* A reference whose file is still being written (get --from): the block is
 * prefix, bytes [offset, offset + len) of path, then suffix. */
#define IA_BS_WRAP_MAX 64
typedef struct ia_bs_ref {
    ia_cid cid;
    const char *path; /* absolute, the file's final name (borrowed) */
    uint64_t offset, len;
    uint8_t prefix[IA_BS_WRAP_MAX], suffix[IA_BS_WRAP_MAX];
    uint8_t n_prefix, n_suffix;
} ia_bs_ref;
/* Records references as pending (absent to reads) in one transaction. */
ia_status ia_bs_put_refs_pending(ia_blockstore *bs, const ia_bs_ref *refs, size_t n);
/* Makes the pending references into each file valid: records the file's
 * size and mtime now (call once it is complete under its final name). */
ia_status ia_bs_refs_finish(ia_blockstore *bs, const char *const *paths, size_t n);
/* True when the block is held as a (valid) reference: references hold only
 * leaves, so a walk that needs the DAG's shape need not read it. */
bool ia_bs_ref_is_leaf(ia_blockstore *bs, const ia_cid *cid);
/* Removes the pending references into these files (a get that failed). */
ia_status ia_bs_refs_drop(ia_blockstore *bs, const char *const *paths, size_t n);

/* A set of multihashes (the identity of a block in the store), for walks. */
typedef struct ia_mh_set ia_mh_set;
ia_mh_set *ia_mh_set_create(void);
void ia_mh_set_destroy(ia_mh_set *set);
/* Adds cid's multihash: 1 when added, 0 when already there, -1 when out of memory. */
int ia_mh_set_add(ia_mh_set *set, const ia_cid *cid);
bool ia_mh_set_has(const ia_mh_set *set, const ia_cid *cid);
size_t ia_mh_set_count(const ia_mh_set *set);

/* ---- blocks opened for copy-free serving (blockstore.c, used by gateway.c) -------- */

/* A block ready to be copied out: a trusted block file (fd >= 0, `size`
 * bytes from offset 0; read it with ia_bs_block_pread into the destination)
 * or, for references, identity CIDs and any block while hash-on-read is on,
 * its verified bytes in memory (fd -1, data malloc'd and owned). */
typedef struct ia_bs_block {
    int fd;
    uint8_t *data;
    uint64_t size;
} ia_bs_block;
/* Opens cid's block without reading a block file: no allocation, no CID
 * text. IA_ENOTFOUND (with a message) when absent; a reference that fails
 * its check is IA_EIO as in ia_blockstore_get. Close with ia_bs_block_close. */
ia_status ia_bs_block_open(ia_blockstore *bs, const ia_cid *cid, ia_bs_block *out);
/* Copies bytes [off, off + len) of the block to dst; IA_EIO when a block
 * file is shorter than it was when opened. */
ia_status ia_bs_block_pread(const ia_bs_block *b, uint64_t off, void *dst, size_t len);
/* Turns an fd-backed block into one in memory (reads it whole). */
ia_status ia_bs_block_load(ia_bs_block *b);
/* Closes the file or frees the bytes; the struct reads as empty afterwards. */
void ia_bs_block_close(ia_bs_block *b);

#endif /* IA_IPFS_INTERNAL_H */
