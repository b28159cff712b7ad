/*
 * CIDs: parse, encode, format and convert content identifiers.
 *
 * A CIDv0 is a bare sha2-256 multihash (34 bytes, 0x12 0x20 + digest)
 * written in base58btc without a multibase prefix ("Qm..."); it always
 * means dag-pb. A CIDv1 is varint(1) varint(codec) multihash, written with
 * a multibase prefix (Kubo prints base32). Parsing follows go-cid: a
 * 46-character string starting with "Qm" is v0, anything else is multibase;
 * the binary form must be consumed exactly, and every varint must be
 * minimal. ia_cid is a value type: no allocation after parsing.
 */
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

static const struct {
    uint64_t code;
    const char *name;
} codec_names[] = {
    {IA_CODEC_RAW, "raw"},
    {IA_CODEC_DAG_PB, "dag-pb"},
    {IA_CODEC_DAG_CBOR, "dag-cbor"},
    {IA_CODEC_LIBP2P_KEY, "libp2p-key"},
    {0x0129, "dag-json"},
    {0x0200, "json"},
    {0x51, "cbor"},
    {0x78, "git-raw"},
    {0x0202, "car"},
};

const char *ia_codec_name(uint64_t codec) {
    for (size_t i = 0; i < sizeof codec_names / sizeof codec_names[0]; i++)
        if (codec_names[i].code == codec)
            return codec_names[i].name;
    return NULL;
}

ia_status ia_cid_decode(const uint8_t *buf, size_t len, ia_cid *out, size_t *used) {
    memset(out, 0, sizeof *out);
    if (len >= 2 && buf[0] == IA_MH_SHA2_256 && buf[1] == 32) {
        if (len < 34)
            return ia_error_set(IA_EPARSE, "CIDv0: sha2-256 multihash truncated (%zu of 34 bytes)",
                                len);
        out->version = 0;
        out->codec = IA_CODEC_DAG_PB;
        out->mh_code = IA_MH_SHA2_256;
        out->digest_len = 32;
        memcpy(out->digest, buf + 2, 32);
        *used = 34;
        return IA_OK;
    }
    uint64_t version, codec, code, dlen;
    size_t pos = 0, n;
    ia_status st;
    if ((st = ia_varint_decode(buf, len, &version, &n)))
        goto fail_prefix_version;
    pos += n;
    if (version != 1) {
        if (version == 0x12)
            return ia_error_set(IA_EPARSE,
                                "CID: starts like a sha2-256 multihash (CIDv0) but its length "
                                "byte is %u, not 32",
                                len > 1 ? buf[1] : 0);
        return ia_error_set(IA_EPARSE, "CID: version %llu is not 1 (only CIDv0 and CIDv1 exist)",
                            (unsigned long long)version);
    }
    if ((st = ia_varint_decode(buf + pos, len - pos, &codec, &n))) {
        ia_error_prefix("CID codec at byte %zu", pos);
        return st;
    }
    pos += n;
    if ((st = ia_varint_decode(buf + pos, len - pos, &code, &n))) {
        ia_error_prefix("CID multihash code at byte %zu", pos);
        return st;
    }
    pos += n;
    if ((st = ia_varint_decode(buf + pos, len - pos, &dlen, &n))) {
        ia_error_prefix("CID multihash length at byte %zu", pos);
        return st;
    }
    pos += n;
    if (dlen > IA_MH_MAX_DIGEST)
        return ia_error_set(IA_EPARSE, "CID: multihash digest of %llu bytes exceeds the %d we keep",
                            (unsigned long long)dlen, IA_MH_MAX_DIGEST);
    if (code == IA_MH_SHA2_256 && dlen != 32)
        return ia_error_set(IA_EPARSE, "CID: sha2-256 digest of %llu bytes (must be 32)",
                            (unsigned long long)dlen);
    if (dlen > len - pos)
        return ia_error_set(IA_EPARSE, "CID: multihash digest truncated (%zu of %llu bytes)",
                            len - pos, (unsigned long long)dlen);
    out->version = 1;
    out->codec = codec;
    out->mh_code = code;
    out->digest_len = (uint32_t)dlen;
    memcpy(out->digest, buf + pos, (size_t)dlen);
    *used = pos + (size_t)dlen;
    return IA_OK;
fail_prefix_version:
    ia_error_prefix("CID version");
    return st;
}

size_t ia_cid_encode(const ia_cid *cid, uint8_t *buf) {
    size_t n = 0;
    if (cid->version == 0) {
        buf[n++] = IA_MH_SHA2_256;
        buf[n++] = 32;
        memcpy(buf + n, cid->digest, 32);
        return n + 32;
    }
    n += ia_varint_encode(1, buf + n);
    n += ia_varint_encode(cid->codec, buf + n);
    n += ia_varint_encode(cid->mh_code, buf + n);
    n += ia_varint_encode(cid->digest_len, buf + n);
    memcpy(buf + n, cid->digest, cid->digest_len);
    return n + cid->digest_len;
}

ia_status ia_cid_parse(const char *str, ia_cid *out) {
    size_t slen = strlen(str);
    uint8_t *bytes = NULL;
    size_t n = 0, used = 0;
    ia_status st;
    if (slen == 0)
        return ia_error_set(IA_EPARSE, "CID: empty string");
    if (slen == 46 && str[0] == 'Q' && str[1] == 'm') {
        if ((st = ia_base58btc_decode(str, &bytes, &n)))
            goto fail;
        if (n != 34 || bytes[0] != IA_MH_SHA2_256 || bytes[1] != 32) {
            st = ia_error_set(IA_EPARSE, "CIDv0 '%s' does not decode to a sha2-256 multihash", str);
            goto fail_quiet;
        }
    } else if ((st = ia_multibase_decode(str, &bytes, &n, NULL))) {
        goto fail;
    }
    if ((st = ia_cid_decode(bytes, n, out, &used)))
        goto fail;
    if (used != n) {
        st = ia_error_set(IA_EPARSE, "CID '%s': %zu trailing bytes after the CID", str, n - used);
        goto fail_quiet;
    }
    free(bytes);
    return IA_OK;
fail:
    ia_error_prefix("'%.*s%s' is not a valid CID", slen > 80 ? 80 : (int)slen, str,
                    slen > 80 ? "..." : "");
fail_quiet:
    free(bytes);
    return st;
}

ia_status ia_cid_format(const ia_cid *cid, ia_multibase base, char *buf, size_t cap) {
    uint8_t bin[IA_CID_MAX_BYTES];
    size_t n = ia_cid_encode(cid, bin);
    char *s = NULL;
    ia_status st =
        cid->version == 0 ? ia_base58btc_encode(bin, n, &s) : ia_multibase_encode(base, bin, n, &s);
    if (st)
        return st;
    size_t len = strlen(s);
    if (len + 1 > cap) {
        free(s);
        return ia_error_set(IA_ERANGE, "CID text form needs %zu bytes, buffer has %zu", len + 1,
                            cap);
    }
    memcpy(buf, s, len + 1);
    free(s);
    return IA_OK;
}

ia_status ia_cid_convert(const ia_cid *cid, int version, ia_cid *out) {
    if (version != 0 && version != 1)
        return ia_error_set(IA_EINVAL, "CID version %d does not exist (0 or 1)", version);
    if (version == 0 && (cid->codec != IA_CODEC_DAG_PB || cid->mh_code != IA_MH_SHA2_256 ||
                         cid->digest_len != 32)) {
        const char *codec = ia_codec_name(cid->codec), *mh = ia_multihash_name(cid->mh_code);
        return ia_error_set(IA_EINVAL,
                            "cannot express as CIDv0: it needs dag-pb and sha2-256, this CID has "
                            "codec %s (0x%llx) and multihash %s (0x%llx)",
                            codec ? codec : "unknown", (unsigned long long)cid->codec,
                            mh ? mh : "unknown", (unsigned long long)cid->mh_code);
    }
    if (out != cid)
        *out = *cid;
    out->version = (uint8_t)version;
    return IA_OK;
}

bool ia_cid_equal(const ia_cid *a, const ia_cid *b) {
    return a->version == b->version && a->codec == b->codec && a->mh_code == b->mh_code &&
           a->digest_len == b->digest_len && memcmp(a->digest, b->digest, a->digest_len) == 0;
}

void ia_cid_of_block(int version, uint64_t codec, const void *data, size_t len, ia_cid *out) {
    memset(out, 0, sizeof *out);
    out->version = (uint8_t)version;
    out->codec = version == 0 ? IA_CODEC_DAG_PB : codec;
    out->mh_code = IA_MH_SHA2_256;
    out->digest_len = 32;
    ia_sha256(data, len, out->digest);
}

ia_status ia_cid_verify(const ia_cid *cid, const void *data, size_t len) {
    ia_cid got;
    char want_s[IA_CID_MAX_STRING], got_s[IA_CID_MAX_STRING];
    if (cid->mh_code == IA_MH_IDENTITY) {
        if (cid->digest_len == len && memcmp(cid->digest, data, len) == 0)
            return IA_OK;
        return ia_error_set(IA_EPARSE, "block does not match its identity CID (%zu bytes vs %u)",
                            len, cid->digest_len);
    }
    if (cid->mh_code != IA_MH_SHA2_256) {
        const char *mh = ia_multihash_name(cid->mh_code);
        return ia_error_set(IA_EUNSUPPORTED, "cannot verify a block hashed with %s (0x%llx)",
                            mh ? mh : "an unknown multihash", (unsigned long long)cid->mh_code);
    }
    ia_cid_of_block(cid->version, cid->codec, data, len, &got);
    if (memcmp(got.digest, cid->digest, 32) == 0)
        return IA_OK;
    if (ia_cid_format(cid, IA_BASE32, want_s, sizeof want_s) ||
        ia_cid_format(&got, IA_BASE32, got_s, sizeof got_s))
        return ia_error_set(IA_EPARSE, "block does not hash to its CID");
    return ia_error_set(IA_EPARSE, "block of %zu bytes hashes to %s, not %s", len, got_s, want_s);
}
