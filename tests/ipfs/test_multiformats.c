/*
 * Multiformats: varints, multibase (spec test vectors), CIDs (Kubo's
 * strings for "hello world\n"), conversion, and the errors malformed input
 * gets. Also the murmur3 hash the HAMT uses.
 */
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"
#include "test.h"

#define HELLO_V0 "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
#define HELLO_V1 "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"

TEST(varint_roundtrip_and_limits) {
    static const uint64_t values[] = {
        0, 1, 127, 128, 255, 300, 16383, 16384, (1ull << 56) - 1, (1ull << 63) - 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[IA_VARINT_MAX_BYTES];
        size_t n = ia_varint_encode(values[i], buf), used;
        uint64_t back;
        CHECK_EQ_INT(n, ia_varint_len(values[i]));
        CHECK_OK(ia_varint_decode(buf, n, &back, &used));
        CHECK(back == values[i]);
        CHECK_EQ_INT(used, n);
    }
    uint64_t v;
    size_t used;
    const uint8_t overlong[] = {0x81, 0x00};
    CHECK_ERR(ia_varint_decode(overlong, 2, &v, &used), IA_EPARSE, "not minimally");
    const uint8_t trunc[] = {0x80, 0x80};
    CHECK_ERR(ia_varint_decode(trunc, 2, &v, &used), IA_EPARSE, "truncated");
    const uint8_t ten[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_ERR(ia_varint_decode(ten, 10, &v, &used), IA_EPARSE, "9 bytes");
    CHECK_ERR(ia_varint_decode(ten, 0, &v, &used), IA_EPARSE, "truncated");
}

/* The multibase spec's test1 vectors: "yes mani !". */
TEST(multibase_spec_vectors) {
    static const struct {
        ia_multibase base;
        const char *text;
    } v[] = {
        {IA_BASE16, "f796573206d616e692021"},
        {IA_BASE32, "bpfsxgidnmfxgsibb"},
        {IA_BASE58BTC, "z7paNL19xttacUY"},
        {IA_BASE36, "k2lcpzo5yikidynfl"},
    };
    const char *msg = "yes mani !";
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *s = NULL;
        uint8_t *bytes = NULL;
        size_t n = 0;
        ia_multibase b;
        CHECK_OK(ia_multibase_encode(v[i].base, (const uint8_t *)msg, strlen(msg), &s));
        CHECK_MSG(s && strcmp(s, v[i].text) == 0, "got %s want %s", s ? s : "(null)", v[i].text);
        CHECK_OK(ia_multibase_decode(v[i].text, &bytes, &n, &b));
        CHECK(n == strlen(msg) && bytes && memcmp(bytes, msg, n) == 0);
        CHECK(b == v[i].base);
        free(s);
        free(bytes);
    }
    /* upper-case variants decode too */
    uint8_t *bytes = NULL;
    size_t n;
    CHECK_OK(ia_multibase_decode("BPFSXGIDNMFXGSIBB", &bytes, &n, NULL));
    CHECK(n == 10 && memcmp(bytes, msg, 10) == 0);
    free(bytes);
    CHECK_OK(ia_multibase_decode("F796573206D616E692021", &bytes, &n, NULL));
    CHECK(n == 10 && memcmp(bytes, msg, 10) == 0);
    free(bytes);
    CHECK_OK(ia_multibase_decode("K2LCPZO5YIKIDYNFL", &bytes, &n, NULL));
    CHECK(n == 10 && memcmp(bytes, msg, 10) == 0);
    free(bytes);
}

TEST(multibase_roundtrip_with_leading_zeros) {
    uint8_t data[40];
    for (size_t len = 0; len <= sizeof data; len++) {
        for (size_t i = 0; i < len; i++)
            data[i] = i < 3 ? 0 : (uint8_t)(i * 37 + len);
        const ia_multibase bases[] = {IA_BASE16, IA_BASE32, IA_BASE58BTC, IA_BASE36};
        for (size_t b = 0; b < 4; b++) {
            char *s = NULL;
            uint8_t *back = NULL;
            size_t n = 0;
            CHECK_OK(ia_multibase_encode(bases[b], data, len, &s));
            CHECK_OK(ia_multibase_decode(s, &back, &n, NULL));
            CHECK_MSG(n == len && (len == 0 || memcmp(back, data, len) == 0), "base %c len %zu",
                      (char)bases[b], len);
            free(s);
            free(back);
        }
    }
}

TEST(multibase_errors) {
    uint8_t *b = NULL;
    size_t n;
    CHECK_ERR(ia_multibase_decode("bafy0", &b, &n, NULL), IA_EPARSE,
              "base32: invalid character '0' at offset 4");
    CHECK_ERR(ia_multibase_decode("zQm0", &b, &n, NULL), IA_EPARSE,
              "base58btc: invalid character '0' at offset 3");
    CHECK_ERR(ia_multibase_decode("f0", &b, &n, NULL), IA_EPARSE, "not a valid length");
    CHECK_ERR(ia_multibase_decode("f0G", &b, &n, NULL), IA_EPARSE, "base16");
    CHECK_ERR(ia_multibase_decode("ba", &b, &n, NULL), IA_EPARSE, "not a valid length");
    CHECK_ERR(ia_multibase_decode("bab", &b, &n, NULL), IA_EPARSE, "padding bits");
    CHECK_ERR(ia_multibase_decode("bAFYQ", &b, &n, NULL), IA_EPARSE, "'A' at offset 1");
    CHECK_ERR(ia_multibase_decode("mAAAA", &b, &n, NULL), IA_EUNSUPPORTED, "prefix 'm'");
    CHECK_ERR(ia_multibase_decode("", &b, &n, NULL), IA_EPARSE, "empty");
    CHECK_ERR(ia_multibase_decode("k\xff", &b, &n, NULL), IA_EPARSE, "byte 0xff at offset 1");
    char *longstr = malloc(10002);
    memset(longstr, '2', 10001);
    longstr[0] = 'z';
    longstr[10001] = 0;
    CHECK_ERR(ia_multibase_decode(longstr, &b, &n, NULL), IA_ERANGE, "longer than");
    free(longstr);
}

TEST(cid_parse_format_convert) {
    ia_cid v0, v1, back;
    char s[IA_CID_MAX_STRING];
    CHECK_OK(ia_cid_parse(HELLO_V0, &v0));
    CHECK_EQ_INT(v0.version, 0);
    CHECK_EQ_INT(v0.codec, IA_CODEC_DAG_PB);
    CHECK_EQ_INT(v0.mh_code, IA_MH_SHA2_256);
    CHECK_EQ_INT(v0.digest_len, 32);
    CHECK_OK(ia_cid_format(&v0, IA_BASE32, s, sizeof s));
    CHECK(strcmp(s, HELLO_V0) == 0);
    CHECK_OK(ia_cid_convert(&v0, 1, &v1));
    CHECK_OK(ia_cid_format(&v1, IA_BASE32, s, sizeof s));
    CHECK_MSG(strcmp(s, HELLO_V1) == 0, "%s", s);
    CHECK_OK(ia_cid_parse(HELLO_V1, &back));
    CHECK(ia_cid_equal(&back, &v1));
    CHECK(!ia_cid_equal(&back, &v0));
    CHECK_OK(ia_cid_convert(&back, 0, &back));
    CHECK(ia_cid_equal(&back, &v0));
    /* every base round-trips */
    const ia_multibase bases[] = {IA_BASE16, IA_BASE32, IA_BASE58BTC, IA_BASE36};
    for (int b = 0; b < 4; b++) {
        CHECK_OK(ia_cid_format(&v1, bases[b], s, sizeof s));
        CHECK(s[0] == (char)bases[b]);
        CHECK_OK(ia_cid_parse(s, &back));
        CHECK(ia_cid_equal(&back, &v1));
    }
    /* binary form */
    uint8_t bin[IA_CID_MAX_BYTES];
    size_t n = ia_cid_encode(&v1, bin), used;
    CHECK_EQ_INT(n, 36);
    CHECK(bin[0] == 1 && bin[1] == 0x70 && bin[2] == 0x12 && bin[3] == 0x20);
    CHECK_OK(ia_cid_decode(bin, n, &back, &used));
    CHECK(used == 36 && ia_cid_equal(&back, &v1));
    CHECK_EQ_INT(ia_cid_encode(&v0, bin), 34);
    /* raw leaf of "hello world\n" */
    ia_cid raw;
    ia_cid_of_block(1, IA_CODEC_RAW, "hello world\n", 12, &raw);
    CHECK_OK(ia_cid_format(&raw, IA_BASE32, s, sizeof s));
    CHECK(strcmp(s, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4") == 0);
    CHECK_ERR(ia_cid_convert(&raw, 0, &back), IA_EINVAL, "codec raw");
    CHECK_OK(ia_cid_verify(&raw, "hello world\n", 12));
    CHECK_ERR(ia_cid_verify(&raw, "hello world!", 12), IA_EPARSE, "hashes to");
    CHECK(strcmp(ia_codec_name(0x70), "dag-pb") == 0);
    CHECK(strcmp(ia_multihash_name(0x12), "sha2-256") == 0);
    CHECK(ia_codec_name(0x123456) == NULL);
}

TEST(cid_errors) {
    ia_cid c;
    CHECK_ERR(ia_cid_parse("", &c), IA_EPARSE, "empty");
    CHECK_ERR(ia_cid_parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff50", &c), IA_EPARSE,
              "invalid character '0' at offset 45");
    CHECK_ERR(ia_cid_parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5", &c), IA_EUNSUPPORTED,
              "prefix 'Q'");
    ia_cid ok;
    uint8_t bin[IA_CID_MAX_BYTES + 2];
    char *s = NULL;
    CHECK_OK(ia_cid_parse(HELLO_V1, &ok));
    size_t len = ia_cid_encode(&ok, bin);
    bin[len++] = 0xde;
    bin[len++] = 0xad;
    CHECK_OK(ia_multibase_encode(IA_BASE32, bin, len, &s));
    CHECK_ERR(ia_cid_parse(s, &c), IA_EPARSE, "2 trailing bytes");
    free(s);
    CHECK_OK(ia_multibase_encode(IA_BASE32, bin, 30, &s));
    CHECK_ERR(ia_cid_parse(s, &c), IA_EPARSE, "truncated (26 of 32 bytes)");
    free(s);
    CHECK_ERR(ia_cid_parse("bagaaaaaa", &c), IA_EPARSE, "not a valid CID");
    /* version 2, 0 (explicit) and non-minimal varints */
    const uint8_t v2[] = {0x02, 0x70, 0x12, 0x20};
    size_t used;
    CHECK_ERR(ia_cid_decode(v2, sizeof v2, &c, &used), IA_EPARSE, "version 2");
    const uint8_t v0x[] = {0x00, 0x70, 0x12, 0x20};
    CHECK_ERR(ia_cid_decode(v0x, sizeof v0x, &c, &used), IA_EPARSE, "version 0");
    const uint8_t nonmin[] = {0x01, 0xf0, 0x00, 0x12, 0x20};
    CHECK_ERR(ia_cid_decode(nonmin, sizeof nonmin, &c, &used), IA_EPARSE, "minimal");
    const uint8_t short256[] = {0x01, 0x55, 0x12, 0x10, 1,  2,  3,  4,  5,  6,
                                7,    8,    9,    10,   11, 12, 13, 14, 15, 16};
    CHECK_ERR(ia_cid_decode(short256, sizeof short256, &c, &used), IA_EPARSE, "must be 32");
    const uint8_t big[] = {0x01, 0x55, 0x00, 0x81, 0x08};
    CHECK_ERR(ia_cid_decode(big, sizeof big, &c, &used), IA_EPARSE, "exceeds");
    const uint8_t v0trunc[] = {0x12, 0x20, 1, 2, 3};
    CHECK_ERR(ia_cid_decode(v0trunc, sizeof v0trunc, &c, &used), IA_EPARSE, "truncated");
    /* identity multihash CIDs parse and verify */
    const uint8_t ident[] = {0x01, 0x55, 0x00, 0x03, 'a', 'b', 'c'};
    CHECK_OK(ia_cid_decode(ident, sizeof ident, &c, &used));
    CHECK(c.mh_code == IA_MH_IDENTITY && c.digest_len == 3);
    CHECK_OK(ia_cid_verify(&c, "abc", 3));
}

/* spaolacci/murmur3 (what boxo uses): Sum64 of "hello" is 0xcbd8a7b341bd9b02. */
TEST(murmur3_x64_64) {
    uint8_t h[8];
    ia_murmur3_x64_64("hello", 5, h);
    const uint8_t want[8] = {0xcb, 0xd8, 0xa7, 0xb3, 0x41, 0xbd, 0x9b, 0x02};
    CHECK(memcmp(h, want, 8) == 0);
    ia_murmur3_x64_64("", 0, h);
    const uint8_t zero[8] = {0};
    CHECK(memcmp(h, zero, 8) == 0);
}
