/*
 * ipfs: content-addressed data, byte-compatible with Kubo.
 *
 * Multiformats (varint, multihash, multibase, CID), the dag-pb and UnixFS
 * codecs, the importer that turns files and directories into the same DAG
 * (and so the same root CID) that Kubo's `ipfs add` builds, the on-disk
 * blockstore with pins, CAR files, and the exporter that reads DAGs back.
 * The gateway server and the multi-peer fetch client build on these.
 *
 * Depends only on base/. A CID is a small value type (no allocation);
 * decoded nodes borrow the bytes they were decoded from.
 */
#ifndef IA_IPFS_H
#define IA_IPFS_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- varint (unsigned LEB128, as multiformats uses it) -------------------- */

#define IA_VARINT_MAX_BYTES 10

/* Writes v; returns the number of bytes (1..10). buf needs 10 bytes. */
size_t ia_varint_encode(uint64_t v, uint8_t *buf);
/* Reads a minimally encoded varint of at most 9 bytes (the multiformats
 * limit, values < 2^63); *used is its length. IA_EPARSE on truncation,
 * overlong (non-minimal) encodings or overflow. */
ia_status ia_varint_decode(const uint8_t *buf, size_t len, uint64_t *out, size_t *used);

/* ---- multihash ------------------------------------------------------------ */

#define IA_MH_IDENTITY 0x00
#define IA_MH_SHA2_256 0x12
#define IA_MH_MAX_DIGEST 128 /* the longest identity digest we keep inline */

/* SHA-256 through OpenSSL's libcrypto (SHA-NI where the CPU has it). */
void ia_sha256(const void *data, size_t len, uint8_t out[32]);

/* ---- multibase -------------------------------------------------------------- */

typedef enum ia_multibase {
    IA_BASE32 = 'b',    /* RFC 4648 lower case, no padding */
    IA_BASE58BTC = 'z', /* Bitcoin alphabet */
    IA_BASE16 = 'f',    /* lower-case hex */
    IA_BASE36 = 'k',    /* lower case */
} ia_multibase;

/* Encodes with the prefix character into a malloc'd string (caller frees). */
ia_status ia_multibase_encode(ia_multibase base, const uint8_t *data, size_t len, char **out);
/* Decodes a prefixed string (b, B, z, f, F, k, K) into a malloc'd buffer;
 * errors name the base and the offending character's offset. */
ia_status ia_multibase_decode(const char *str, uint8_t **out, size_t *out_len, ia_multibase *base);
/* Unprefixed base58btc (CIDv0's text form). */
ia_status ia_base58btc_encode(const uint8_t *data, size_t len, char **out);
ia_status ia_base58btc_decode(const char *str, uint8_t **out, size_t *out_len);

/* ---- CID -------------------------------------------------------------------- */

#define IA_CODEC_RAW 0x55
#define IA_CODEC_DAG_PB 0x70
#define IA_CODEC_DAG_CBOR 0x71
#define IA_CODEC_LIBP2P_KEY 0x72

typedef struct ia_cid {
    uint8_t version; /* 0 or 1 */
    uint64_t codec;  /* multicodec of the content (dag-pb for v0) */
    uint64_t mh_code;
    uint32_t digest_len;
    uint8_t digest[IA_MH_MAX_DIGEST];
} ia_cid;

/* Longest binary CID: version + codec + mh code + length varints + digest. */
#define IA_CID_MAX_BYTES (4 * IA_VARINT_MAX_BYTES + IA_MH_MAX_DIGEST)
/* Longest text form we produce (base58 of the longest binary, plus prefix). */
#define IA_CID_MAX_STRING 256

/* Parses the text form: CIDv0 ("Qm..." base58btc, 46 chars) or a
 * multibase-prefixed CIDv1. Errors say what is wrong and where. */
ia_status ia_cid_parse(const char *str, ia_cid *out);
/* Parses a binary CID at the start of buf (v0 is a bare sha2-256
 * multihash); *used is its length. */
ia_status ia_cid_decode(const uint8_t *buf, size_t len, ia_cid *out, size_t *used);
/* Binary form; returns its length (at most IA_CID_MAX_BYTES). */
size_t ia_cid_encode(const ia_cid *cid, uint8_t *buf);
/* Text form: v0 in base58btc without prefix; v1 in `base` (IA_BASE32 is
 * Kubo's default). buf needs IA_CID_MAX_STRING bytes. */
ia_status ia_cid_format(const ia_cid *cid, ia_multibase base, char *buf, size_t cap);
/* Same content, other version: v0 -> v1 keeps dag-pb; v1 -> v0 needs
 * dag-pb + sha2-256 (IA_EINVAL otherwise). */
ia_status ia_cid_convert(const ia_cid *cid, int version, ia_cid *out);
bool ia_cid_equal(const ia_cid *a, const ia_cid *b);
/* The CID of a block: sha2-256 of data, or identity when asked. */
void ia_cid_of_block(int version, uint64_t codec, const void *data, size_t len, ia_cid *out);
/* Checks that data hashes to cid (IA_EPARSE with both CIDs when not). */
ia_status ia_cid_verify(const ia_cid *cid, const void *data, size_t len);
/* Name of a codec / multihash ("dag-pb", "sha2-256"), or NULL. */
const char *ia_codec_name(uint64_t codec);
const char *ia_multihash_name(uint64_t code);

/* ---- dag-pb ----------------------------------------------------------------- */

typedef struct ia_pb_link {
    ia_cid cid;
    const char *name; /* borrowed, name_len bytes, not NUL-terminated */
    size_t name_len;
    bool has_name;
    uint64_t tsize;
    bool has_tsize;
} ia_pb_link;

typedef struct ia_pb_node {
    ia_pb_link *links; /* owned by the node (ia_pb_node_free) */
    size_t n_links;
    const uint8_t *data; /* borrowed from the encoded block */
    size_t data_len;
    bool has_data;
} ia_pb_node;

/* Strict decoding per the dag-pb spec (links before data, field order,
 * no unknown fields, no duplicate Data). Names borrow from buf. */
ia_status ia_dagpb_decode(const uint8_t *buf, size_t len, ia_pb_node *out);
void ia_pb_node_free(ia_pb_node *node);
/* Encodes as Kubo writes nodes (links first, then data). Caller frees *out. */
ia_status ia_dagpb_encode(const ia_pb_node *node, uint8_t **out, size_t *out_len);

/* ---- UnixFS ------------------------------------------------------------------ */

typedef enum ia_unixfs_type {
    IA_UNIXFS_RAW = 0,
    IA_UNIXFS_DIRECTORY = 1,
    IA_UNIXFS_FILE = 2,
    IA_UNIXFS_METADATA = 3,
    IA_UNIXFS_SYMLINK = 4,
    IA_UNIXFS_HAMT_SHARD = 5,
} ia_unixfs_type;

typedef struct ia_unixfs {
    ia_unixfs_type type;
    const uint8_t *data; /* borrowed */
    size_t data_len;
    bool has_data;
    uint64_t filesize;
    bool has_filesize;
    uint64_t *blocksizes; /* owned (ia_unixfs_free) */
    size_t n_blocksizes;
    uint64_t hash_type, fanout; /* HAMT shards */
    bool has_hash_type, has_fanout;
} ia_unixfs;

ia_status ia_unixfs_decode(const uint8_t *buf, size_t len, ia_unixfs *out);
void ia_unixfs_free(ia_unixfs *u);
/* Encodes as Kubo does (Type, Data, filesize, blocksizes unpacked, ...). */
ia_status ia_unixfs_encode(const ia_unixfs *u, uint8_t **out, size_t *out_len);

/* ---- blockstore ---------------------------------------------------------------- */

/* A repository: blocks in sharded folders under DIR/blocks, each written
 * atomically (temporary file, fsync or a batch's syncfs, rename); pins and metadata in SQLite
 * (DIR/repo.sqlite); safe for several processes (file locks). */
typedef struct ia_blockstore ia_blockstore;

/* The repository directory: $IPFS_ACCELERATE_HOME or
 * ~/.local/share/ipfs-accelerate (malloc'd; caller frees). */
char *ia_repo_default_path(void);
ia_status ia_blockstore_open(const char *dir, ia_blockstore **out);
void ia_blockstore_close(ia_blockstore *bs);
/* Stores a block after checking it hashes to cid. Idempotent. */
ia_status ia_blockstore_put(ia_blockstore *bs, const ia_cid *cid, const void *data, size_t len);
/* Reads a block into a malloc'd buffer (caller frees). Blocks in the store
 * were verified when written and are trusted, as Kubo trusts its datastore,
 * unless hash-on-read is on: then a block whose bytes do not match its CID is
 * an error, never returned. A --nocopy reference is always re-hashed (a
 * changed source is an error). IA_ENOTFOUND when absent. */
ia_status ia_blockstore_get(ia_blockstore *bs, const ia_cid *cid, uint8_t **data, size_t *len);
/* Re-hash every block read from the store (off by default; repo verify always
 * hashes). */
void ia_blockstore_set_hash_on_read(ia_blockstore *bs, bool on);
bool ia_blockstore_hash_on_read(const ia_blockstore *bs);
/* Batched writes for bulk imports. Between begin and commit, puts write their
 * temporary files without syncing; commit (also run automatically every
 * 256 MiB or 4096 blocks) syncs them together and renames them into place, so
 * a block is never visible before its bytes are durable. Blocks put in a
 * batch are visible to reads only once committed. Batches nest: only the
 * outermost commit or abort acts. abort (or close with a batch open) removes
 * the uncommitted temporary files. commit returns IA_EIO when syncing or
 * renaming fails (the blocks not yet renamed are then dropped). */
void ia_blockstore_batch_begin(ia_blockstore *bs);
ia_status ia_blockstore_batch_commit(ia_blockstore *bs);
void ia_blockstore_batch_abort(ia_blockstore *bs);
bool ia_blockstore_has(ia_blockstore *bs, const ia_cid *cid);
ia_status ia_blockstore_size(ia_blockstore *bs, const ia_cid *cid, uint64_t *size);
ia_status ia_blockstore_remove(ia_blockstore *bs, const ia_cid *cid);
/* --nocopy: records that the block is bytes [offset, offset+len) of a file. */
ia_status ia_blockstore_put_ref(ia_blockstore *bs, const ia_cid *cid, const char *path,
                                uint64_t offset, uint64_t len);

/* ---- importer (ipfs add) ------------------------------------------------------------ */

typedef struct ia_add_options {
    int cid_version;       /* 0 (default) or 1 */
    int raw_leaves;        /* -1: off for v0, on for v1 */
    size_t chunk_size;     /* 0: 262144 */
    size_t max_links;      /* 0: 174 */
    bool only_hash;        /* hash only; the blockstore may be NULL */
    bool nocopy;           /* store leaf references, not bytes */
    bool pin;              /* pin the root recursively (default true) */
    int threads;           /* 0: physical cores (leaf hashing) */
    size_t hamt_threshold; /* directory block size past which HAMT shards; 0: Kubo's */
    /* Added by the importer (additive): */
    bool hidden;         /* include names starting with '.' (Kubo skips them) */
    int hamt_estimation; /* IA_HAMT_ESTIMATE_LINKS (default) or _BLOCK */
} ia_add_options;

/* How a directory's size is estimated against hamt_threshold (sharded when
 * the estimate is strictly greater): LINKS sums name + binary CID lengths
 * (Kubo's historical rule, unixfs-v0-2015); BLOCK is the encoded size of
 * the flat directory block (unixfs-v1-2025, IPIP-499). */
#define IA_HAMT_ESTIMATE_LINKS 0
#define IA_HAMT_ESTIMATE_BLOCK 1

ia_add_options ia_add_options_default(void);
/* Applies a named profile ("unixfs-v0-2015" or "unixfs-v1-2025"). */
ia_status ia_add_options_profile(ia_add_options *opts, const char *profile);

/* Called once per file or directory added (path relative to the argument). */
typedef void (*ia_add_progress_fn)(void *ctx, const char *path, const ia_cid *cid, uint64_t size);

/* Adds a file or (recursively) a directory; *root is its CID. bs may be
 * NULL with only_hash. Memory stays bounded whatever the file size. */
ia_status ia_add_path(ia_blockstore *bs, const char *path, const ia_add_options *opts,
                      ia_add_progress_fn progress, void *progress_ctx, ia_cid *root);
/* Adds bytes from a file descriptor (stdin), as one file. */
ia_status ia_add_fd(ia_blockstore *bs, int fd, const ia_add_options *opts, ia_cid *root);

/* ---- blockstore: listing ------------------------------------------------------------ */

/* The repository directory the store was opened on (borrowed). */
const char *ia_blockstore_dir(const ia_blockstore *bs);

/* Called once per CID; a non-IA_OK return stops the iteration and is returned. */
typedef ia_status (*ia_cid_fn)(void *ctx, const ia_cid *cid);
/* Calls fn for every block in the store (copies and --nocopy references), as a
 * CIDv1 with the raw codec: like Kubo, the store keys blocks by multihash. */
ia_status ia_blockstore_foreach(ia_blockstore *bs, ia_cid_fn fn, void *ctx);

/* ---- DAG links and walks --------------------------------------------------------------- */

/* The CIDs a block links to: dag-pb links in order, dag-cbor tag-42 links in
 * document order; raw and identity blocks have none (other codecs:
 * IA_EUNSUPPORTED). *links is malloc'd (caller frees; NULL when none). */
ia_status ia_block_links(const ia_cid *cid, const uint8_t *data, size_t len, ia_cid **links,
                         size_t *n_links);

/* Called once per block of a walk with its verified bytes (borrowed for the call). */
typedef ia_status (*ia_dag_visit_fn)(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len);
/* Visits every block reachable from root once (by multihash), depth first in
 * link order, parents before children: the order a CAR export writes. A
 * missing block is IA_ENOTFOUND naming it, or skipped with skip_missing. */
ia_status ia_dag_walk(ia_blockstore *bs, const ia_cid *root, bool skip_missing, ia_dag_visit_fn fn,
                      void *ctx);

/* ---- pins ------------------------------------------------------------------------------ */

typedef enum ia_pin_type {
    IA_PIN_ALL = 0, /* ia_pin_list: every kind */
    IA_PIN_DIRECT = 1,
    IA_PIN_RECURSIVE = 2,
    IA_PIN_INDIRECT = 3, /* below a recursive pin (listing only) */
} ia_pin_type;

/* "direct", "recursive", "indirect" (or "all"). */
const char *ia_pin_type_name(ia_pin_type type);
/* Pins cid directly or recursively (recursive checks that the whole DAG is in
 * the store: IA_ENOTFOUND naming the first missing block). Re-pinning changes
 * the type. */
ia_status ia_pin_add(ia_blockstore *bs, const ia_cid *cid, ia_pin_type type);
/* IA_ENOTFOUND when cid is not pinned directly or recursively. */
ia_status ia_pin_remove(ia_blockstore *bs, const ia_cid *cid);
/* The type of a direct or recursive pin on cid (matched by multihash);
 * IA_ENOTFOUND when there is none. */
ia_status ia_pin_get(ia_blockstore *bs, const ia_cid *cid, ia_pin_type *type);
typedef ia_status (*ia_pin_fn)(void *ctx, const ia_cid *cid, ia_pin_type type);
/* Lists pins of one type, or all (direct, recursive, then indirect). */
ia_status ia_pin_list(ia_blockstore *bs, ia_pin_type type, ia_pin_fn fn, void *ctx);

/* ---- repo maintenance ------------------------------------------------------------------- */

typedef struct ia_repo_stats {
    uint64_t num_objects; /* blocks, copies and references */
    uint64_t repo_size;   /* bytes on disk under the repo directory */
} ia_repo_stats;

ia_status ia_repo_stat(ia_blockstore *bs, ia_repo_stats *out);
/* Removes every block not reachable from a direct or recursive pin, and
 * leftover temporary files; removed(ctx, cid) per block (may be NULL). Needs
 * the repo to itself: IA_EIO when another process is writing to it. */
ia_status ia_repo_gc(ia_blockstore *bs, ia_cid_fn removed, void *ctx, uint64_t *n_removed);
/* Called per bad block with the reason (the message of the failed read). */
typedef void (*ia_repo_bad_fn)(void *ctx, const ia_cid *cid, ia_status st, const char *why);
/* Re-hashes every block (and every --nocopy reference's source bytes) and
 * reports bad ones; IA_OK even when some are bad (see *n_bad). Also removes
 * leftover temporary files when no other process is writing. */
ia_status ia_repo_verify(ia_blockstore *bs, ia_repo_bad_fn bad, void *ctx, uint64_t *n_checked,
                         uint64_t *n_bad);

/* ---- exporter (cat, ls, get) ------------------------------------------------------------ */

/* Resolves "CID", "CID/a/b" or "/ipfs/CID/a/b" through UnixFS directories and
 * HAMT-sharded directories. IA_ENOTFOUND names the missing component. */
ia_status ia_unixfs_resolve(ia_blockstore *bs, const char *path, ia_cid *out);

/* Receives output bytes; a non-IA_OK return stops the export. */
typedef ia_status (*ia_write_fn)(void *ctx, const void *data, size_t len);

/* What a CID holds: its UnixFS type (IA_UNIXFS_RAW for raw leaves) and, for
 * files, the byte size. */
typedef struct ia_unixfs_info {
    ia_unixfs_type type;
    uint64_t size;
} ia_unixfs_info;
ia_status ia_unixfs_stat(ia_blockstore *bs, const ia_cid *cid, ia_unixfs_info *out);

/* Streams bytes [offset, offset + length) of a file (a dag-pb UnixFS File
 * tree or a raw leaf; length UINT64_MAX reads to the end; a range past the
 * end is clipped). Memory is one block per tree level; every block is
 * verified. IA_EINVAL for directories and symlinks. */
ia_status ia_unixfs_cat(ia_blockstore *bs, const ia_cid *cid, uint64_t offset, uint64_t length,
                        ia_write_fn write, void *ctx);

typedef struct ia_ls_entry {
    const char *name; /* borrowed for the call, NUL-terminated */
    ia_cid cid;
    ia_unixfs_type type; /* of the child (needs its root block) */
    uint64_t size;       /* file size for files, 0 for directories */
} ia_ls_entry;
typedef ia_status (*ia_ls_fn)(void *ctx, const ia_ls_entry *entry);
/* Lists a directory (plain or HAMT-sharded, in link order). */
ia_status ia_unixfs_ls(ia_blockstore *bs, const ia_cid *dir, ia_ls_fn fn, void *ctx);
/* Writes a file, symlink or directory tree to out_path, which must not exist.
 * Entry names that are not a single path component are refused. */
ia_status ia_unixfs_get(ia_blockstore *bs, const ia_cid *cid, const char *out_path);

/* ---- CAR (content-addressed archives) ------------------------------------------------------- */

/* Writes a CARv1 holding the DAGs under roots: header {roots, version: 1},
 * then each block once, depth first (ia_dag_walk order). *n_blocks may be NULL. */
ia_status ia_car_export(ia_blockstore *bs, const ia_cid *roots, size_t n_roots, ia_write_fn write,
                        void *ctx, uint64_t *n_blocks);

typedef struct ia_car_info {
    int version;   /* 1, or 2 for a CARv2 wrapping a CARv1 */
    ia_cid *roots; /* owned (ia_car_info_free) */
    size_t n_roots;
    uint64_t n_blocks; /* sections read */
} ia_car_info;

/* Reads a CARv1 (or a CARv2's inner CARv1) from memory, verifying each block
 * against its CID, and stores the blocks when bs is not NULL. Errors name
 * `what`, the byte offset and the problem. */
ia_status ia_car_import_buffer(ia_blockstore *bs, const uint8_t *data, size_t len, const char *what,
                               ia_car_info *info);
/* The same from a file (mapped, so memory stays bounded). */
ia_status ia_car_import_file(ia_blockstore *bs, const char *path, ia_car_info *info);
void ia_car_info_free(ia_car_info *info);

/* Streaming CARv1 framing, for a CAR that arrives in pieces (a gateway's
 * answer read from the network). Looks at the front of p[0..len): when it
 * holds a whole item (the header when header_done is false, else one
 * section), *item and *item_len give its bytes without the length prefix and
 * *used the bytes it takes with it; when more bytes are needed, *used is 0.
 * IA_EPARSE for a malformed length prefix, an empty item, or one longer than
 * max_item (checked before its bytes arrive), with the reason in the error
 * message. A header item is only checked to be a CBOR map; a section's CID
 * and block are the caller's to decode (ia_cid_decode) and verify. */
ia_status ia_car_stream_item(const uint8_t *p, size_t len, bool header_done, size_t max_item,
                             const uint8_t **item, size_t *item_len, size_t *used);

/* ---- trustless gateway (gateway.c) ---------------------------------------------------------- */

/* An HTTP server that answers IPFS Trustless Gateway requests from a local
 * blockstore: GET/HEAD /ipfs/{cid}[/path] as a raw block
 * (application/vnd.ipld.raw) or a CARv1 stream (application/vnd.ipld.car,
 * order=dfs, dups=n or y) with dag-scope and entity-bytes. libmicrohttpd,
 * one thread per connection; CAR responses stream block by block. */
typedef struct ia_gateway ia_gateway;

typedef struct ia_gateway_options {
    bool deserialized;        /* plain GETs of UnixFS files answer the file's bytes
                                 (off: 400 without Accept, 406 for other types) */
    unsigned max_connections; /* 0: 256 */
    unsigned timeout_s;       /* idle connection timeout; 0: 120 */
    size_t stream_buffer;     /* bytes per CAR read; 0: 1 MiB */
} ia_gateway_options;

ia_gateway_options ia_gateway_options_default(void);

/* Starts a gateway over bs (borrowed: it must outlive the gateway) listening
 * on `listen` ("HOST:PORT", "[V6]:PORT" or "PORT"; port 0 picks a free one).
 * listen NULL creates the handler only, for mounting with ia_gateway_handle
 * in another libmicrohttpd server. opts may be NULL (defaults). IA_EINVAL for
 * a bad address, IA_EIO when the socket cannot be bound. The blockstore is
 * shared by the connection threads (SQLite serialised mode). */
ia_status ia_gateway_start(ia_blockstore *bs, const char *listen, const ia_gateway_options *opts,
                           ia_gateway **out);
/* The bound port (0 when not listening). */
uint16_t ia_gateway_port(const ia_gateway *gw);
/* Stops accepting, closes connections (streams in flight are cut), joins the
 * threads and frees gw. NULL is a no-op. */
void ia_gateway_stop(ia_gateway *gw);

/* Answers one request on a libmicrohttpd connection (call it from an access
 * handler on its second call, once MHD has read the headers: answering on the
 * first makes MHD close the connection), with the URL as MHD passes it: path only,
 * unescaped; `url` may be the part from "/ipfs/" on). Returns MHD_YES or
 * MHD_NO as the handler must. */
struct MHD_Connection;
int ia_gateway_handle(ia_gateway *gw, struct MHD_Connection *conn, const char *url,
                      const char *method);

/* ---- gateway request parsing (transport-neutral; also the fuzz target's entry) ---- */

typedef enum ia_gw_format {
    IA_GW_FORMAT_NONE = 0, /* no format asked for (deserialized, when enabled) */
    IA_GW_FORMAT_RAW,
    IA_GW_FORMAT_CAR,
} ia_gw_format;

typedef enum ia_gw_scope {
    IA_GW_SCOPE_ALL = 0,
    IA_GW_SCOPE_ENTITY,
    IA_GW_SCOPE_BLOCK,
} ia_gw_scope;

/* The request's raw inputs: query parameters and the Accept header, NULL
 * when absent (borrowed). */
typedef struct ia_gw_inputs {
    const char *accept;
    const char *format, *dag_scope, *entity_bytes;
    const char *car_version, *car_order, *car_dups;
} ia_gw_inputs;

typedef struct ia_gw_request {
    ia_cid cid;
    const char *path; /* after the CID: "" or "/a/b" (borrowed from url) */
    ia_gw_format format;
    bool format_from_accept; /* negotiated by Accept, no ?format */
    ia_gw_scope scope;
    bool has_range;     /* entity-bytes given */
    int64_t range_from; /* negative: from the end */
    int64_t range_to;   /* inclusive; negative: from the end */
    bool range_to_end;  /* to is '*' */
    bool dups;          /* CAR dups=y */
} ia_gw_request;

/* Parses a request URL (path only, from "/ipfs/") and its inputs. Returns the
 * HTTP status to answer: 200 when *out is filled, else 400 (malformed CID,
 * path or parameter), 404 (not under /ipfs/), 406 (no acceptable format) or
 * 501 (/ipns/), with the reason in why (cap bytes, NUL-terminated). */
int ia_gateway_parse_request(const char *url, const ia_gw_inputs *in, ia_gw_request *out, char *why,
                             size_t cap);

/* ---- fetching from trustless gateways (get --from) --------------------------------------- */

typedef struct ia_fetch_options {
    int max_inflight;         /* requests in flight per peer; 0: 8 */
    int max_failures;         /* failed requests in a row that drop a peer; 0: 3 */
    double connect_timeout_s; /* 0: 10 */
    double stall_timeout_s;   /* no bytes for this long drops the peer; 0: 20 */
    double request_timeout_s; /* one whole request; 0: 300 */
    size_t max_block_size;    /* larger answers are refused; 0: 2 MiB (Kubo's limit) */
} ia_fetch_options;

ia_fetch_options ia_fetch_options_default(void);

typedef struct ia_fetch_peer_stats {
    char *url;          /* the peer's base URL (owned by the report) */
    uint64_t requests;  /* requests sent */
    uint64_t blocks;    /* verified blocks it served */
    uint64_t bytes;     /* their bytes */
    uint64_t not_found; /* 404/410 answers */
    uint64_t failures;  /* transport errors, other HTTP errors, oversized answers */
    uint64_t corrupt;   /* blocks that did not match their CID */
    bool dropped;
    char *why; /* why it was dropped (owned), or NULL */
} ia_fetch_peer_stats;

typedef struct ia_fetch_report {
    ia_fetch_peer_stats *peers; /* one per peer, in the order given */
    size_t n_peers;
    uint64_t blocks;         /* distinct blocks of the DAG (present + fetched) */
    uint64_t blocks_present; /* already in the store: not requested */
    uint64_t blocks_fetched;
    uint64_t bytes_fetched;
    uint64_t retries; /* blocks requested again after a failure */
    double seconds;
    char **notes; /* what went wrong, one line per event ("peer URL ...; dropped") */
    size_t n_notes;
} ia_fetch_report;

/* Copies the DAG under root into bs from trustless gateways (peers: base
 * URLs such as "http://127.0.0.1:8080"), breadth first, several requests in
 * flight per peer, each block to the peer expected to deliver it soonest.
 * Every block is verified against its CID before it is stored; a failed or
 * corrupt block is retried on another peer; misbehaving or dead peers are
 * dropped. Blocks already in bs are not requested. opts may be NULL. The
 * report is filled on success and failure alike (free it with
 * ia_fetch_report_free). IA_EINVAL for bad URLs, IA_ENOTFOUND naming the
 * block and peers when no peer has a block, IA_EIO when every peer failed. */
ia_status ia_fetch_dag(ia_blockstore *bs, const ia_cid *root, const char *const *peers,
                       size_t n_peers, const ia_fetch_options *opts, ia_fetch_report *report);
void ia_fetch_report_free(ia_fetch_report *report);

/* Fetches the DAG under root from trustless gateways as ia_fetch_dag does
 * and writes it to out_path (a file, symlink or directory tree; it must not
 * exist): each block is verified against its CID, then its bytes are written
 * straight to their place in the output (a file's leaves at the offsets their
 * parents' blocksizes give), so nothing is exported a second time. The
 * output is written under a temporary name beside it (OUT.get-XXXXXX) and
 * renamed to out_path only once complete; on failure it is removed. A block
 * that occurs several times is fetched once and copied.
 *
 * With bs, blocks already in bs are not fetched (their bytes are read from
 * it), and fetched blocks are kept: leaves as references into the output
 * file, as `add --nocopy` keeps them (a dag-pb leaf's framing is stored
 * with the reference), other nodes as blocks. The references count only once
 * the output is complete; reading one re-hashes it, so an output file changed
 * later is reported, never served. bs NULL: nothing is stored. The report
 * and errors are those of ia_fetch_dag, plus IA_EINVAL when out_path exists,
 * IA_EPARSE for a DAG that is not valid UnixFS and IA_EIO for the output. */
ia_status ia_fetch_get(ia_blockstore *bs, const ia_cid *root, const char *out_path,
                       const char *const *peers, size_t n_peers, const ia_fetch_options *opts,
                       ia_fetch_report *report);

/* ---- --nocopy references, read side (blockstore.c) ------------------------------------ */

#define IA_BLOCKSTORE_REF_PATH_MAX 4096
#define IA_BLOCKSTORE_REF_WRAP_MAX 64

/* Where a block held by reference lives: its bytes are prefix, then bytes
 * [offset, offset + length) of the file at path, then suffix (the framing of a
 * dag-pb leaf; empty for raw leaves). file_size and mtime_ns are the file's
 * when the reference was recorded: a file that differs now has changed. */
typedef struct ia_blockstore_ref {
    char path[IA_BLOCKSTORE_REF_PATH_MAX]; /* absolute */
    uint64_t offset, length;
    uint64_t file_size;
    int64_t mtime_ns;
    uint8_t prefix[IA_BLOCKSTORE_REF_WRAP_MAX], suffix[IA_BLOCKSTORE_REF_WRAP_MAX];
    size_t n_prefix, n_suffix;
} ia_blockstore_ref;

/* Fills *out when cid is held as a finished --nocopy reference (whether or
 * not a copy is stored too); IA_ENOTFOUND when it is not one. Reads nothing
 * from the file and checks nothing: the caller verifies the bytes. */
ia_status ia_blockstore_ref_get(ia_blockstore *bs, const ia_cid *cid, ia_blockstore_ref *out);

#ifdef __cplusplus
}
#endif

#endif /* IA_IPFS_H */
