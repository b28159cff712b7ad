/*
 * Multihash: the hash functions CIDs name, and their names.
 *
 * Only sha2-256 (what Kubo uses by default) and identity are produced.
 * SHA-256 goes through OpenSSL's one-shot SHA256(), which uses the SHA
 * extensions (SHA-NI) or the best SIMD path the CPU has; the importer's
 * throughput is mostly this function's.
 */
#include <openssl/sha.h>

#include "ipfs/ipfs_internal.h"

void ia_sha256(const void *data, size_t len, uint8_t out[32]) { SHA256(data, len, out); }

static const struct {
    uint64_t code;
    const char *name;
} multihash_names[] = {
    {IA_MH_IDENTITY, "identity"},
    {0x11, "sha1"},
    {IA_MH_SHA2_256, "sha2-256"},
    {0x13, "sha2-512"},
    {0x16, "sha3-256"},
    {0x14, "sha3-512"},
    {0x1b, "keccak-256"},
    {0x1e, "blake3"},
    {0xb220, "blake2b-256"},
    {0x22, "murmur3-x64-64"},
    {0x1012, "sha2-256-trunc254-padded"},
};

const char *ia_multihash_name(uint64_t code) {
    for (size_t i = 0; i < sizeof multihash_names / sizeof multihash_names[0]; i++)
        if (multihash_names[i].code == code)
            return multihash_names[i].name;
    return NULL;
}
