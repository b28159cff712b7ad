/*
 * dag-pb and UnixFS codecs: the exact bytes Kubo writes (empty directory,
 * empty file, "hello world\n" leaf), round trips, and the strictness of
 * the decoders against truncated, reordered and hostile input.
 */
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"
#include "test.h"

static void check_cid_of(const uint8_t *block, size_t len, const char *want) {
    ia_cid c;
    char s[IA_CID_MAX_STRING];
    ia_cid_of_block(0, IA_CODEC_DAG_PB, block, len, &c);
    CHECK_OK(ia_cid_format(&c, IA_BASE32, s, sizeof s));
    CHECK_MSG(strcmp(s, want) == 0, "got %s want %s", s, want);
}

TEST(kubo_blocks) {
    /* empty directory: PBNode{Data: UnixFS{Type: Directory}} */
    ia_unixfs u = {.type = IA_UNIXFS_DIRECTORY};
    uint8_t *ud = NULL, *blk = NULL;
    size_t ul, bl;
    CHECK_OK(ia_unixfs_encode(&u, &ud, &ul));
    ia_pb_node n = {.data = ud, .data_len = ul, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&n, &blk, &bl));
    const uint8_t want_dir[] = {0x0a, 0x02, 0x08, 0x01};
    CHECK(bl == 4 && memcmp(blk, want_dir, 4) == 0);
    check_cid_of(blk, bl, "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    free(ud);
    free(blk);
    /* empty file: filesize 0 is written */
    ia_unixfs f = {.type = IA_UNIXFS_FILE, .has_filesize = true};
    CHECK_OK(ia_unixfs_encode(&f, &ud, &ul));
    n = (ia_pb_node){.data = ud, .data_len = ul, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&n, &blk, &bl));
    check_cid_of(blk, bl, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
    free(ud);
    free(blk);
    /* "hello world\n" leaf */
    f = (ia_unixfs){.type = IA_UNIXFS_FILE,
                    .data = (const uint8_t *)"hello world\n",
                    .data_len = 12,
                    .has_data = true,
                    .filesize = 12,
                    .has_filesize = true};
    CHECK_OK(ia_unixfs_encode(&f, &ud, &ul));
    n = (ia_pb_node){.data = ud, .data_len = ul, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&n, &blk, &bl));
    check_cid_of(blk, bl, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    /* and back */
    ia_pb_node dn;
    ia_unixfs du;
    CHECK_OK(ia_dagpb_decode(blk, bl, &dn));
    CHECK(dn.has_data && dn.n_links == 0);
    CHECK_OK(ia_unixfs_decode(dn.data, dn.data_len, &du));
    CHECK(du.type == IA_UNIXFS_FILE && du.has_filesize && du.filesize == 12);
    CHECK(du.has_data && du.data_len == 12 && memcmp(du.data, "hello world\n", 12) == 0);
    ia_unixfs_free(&du);
    ia_pb_node_free(&dn);
    free(ud);
    free(blk);
}

TEST(links_roundtrip) {
    ia_pb_link links[3];
    memset(links, 0, sizeof links);
    for (int i = 0; i < 3; i++) {
        ia_cid_of_block(i == 2 ? 1 : 0, i == 2 ? IA_CODEC_RAW : IA_CODEC_DAG_PB, &i, sizeof i,
                        &links[i].cid);
        links[i].has_tsize = true;
        links[i].tsize = 1000u * (unsigned)i;
    }
    links[0].name = "";
    links[0].has_name = true;
    links[1].name = "caf\xc3\xa9";
    links[1].name_len = 5;
    links[1].has_name = true;
    links[2].has_tsize = false;
    links[2].tsize = 0;
    uint64_t bs[3] = {262144, 262144, 7};
    ia_unixfs u = {.type = IA_UNIXFS_FILE,
                   .filesize = 524295,
                   .has_filesize = true,
                   .blocksizes = bs,
                   .n_blocksizes = 3};
    uint8_t *ud, *blk;
    size_t ul, bl;
    CHECK_OK(ia_unixfs_encode(&u, &ud, &ul));
    /* blocksizes unpacked: key 0x20 once per value */
    size_t keys = 0;
    for (size_t i = 0; i < ul; i++)
        keys += ud[i] == 0x20;
    CHECK(keys >= 3);
    ia_pb_node n = {.links = links, .n_links = 3, .data = ud, .data_len = ul, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&n, &blk, &bl));
    CHECK(blk[0] == 0x12); /* links first */
    ia_pb_node d;
    CHECK_OK(ia_dagpb_decode(blk, bl, &d));
    CHECK_EQ_INT(d.n_links, 3);
    for (int i = 0; i < 3; i++) {
        CHECK(ia_cid_equal(&d.links[i].cid, &links[i].cid));
        CHECK(d.links[i].has_name == links[i].has_name);
        CHECK(d.links[i].name_len == links[i].name_len);
        CHECK(d.links[i].has_tsize == links[i].has_tsize && d.links[i].tsize == links[i].tsize);
    }
    CHECK(memcmp(d.links[1].name, "caf\xc3\xa9", 5) == 0);
    ia_unixfs du;
    CHECK_OK(ia_unixfs_decode(d.data, d.data_len, &du));
    CHECK(du.n_blocksizes == 3 && du.blocksizes[2] == 7 && du.filesize == 524295);
    ia_unixfs_free(&du);
    /* re-encoding the decoded node gives the same bytes */
    uint8_t *again;
    size_t al;
    CHECK_OK(ia_dagpb_encode(&d, &again, &al));
    CHECK(al == bl && memcmp(again, blk, bl) == 0);
    free(again);
    ia_pb_node_free(&d);
    free(ud);
    free(blk);
}

TEST(dagpb_strictness) {
    ia_pb_node n;
    /* Data before Links */
    const uint8_t data_first[] = {0x0a, 0x00, 0x12, 0x00};
    CHECK_ERR(ia_dagpb_decode(data_first, sizeof data_first, &n), IA_EPARSE, "after Data");
    const uint8_t two_data[] = {0x0a, 0x00, 0x0a, 0x00};
    CHECK_ERR(ia_dagpb_decode(two_data, sizeof two_data, &n), IA_EPARSE, "second Data");
    const uint8_t unknown[] = {0x1a, 0x00};
    CHECK_ERR(ia_dagpb_decode(unknown, sizeof unknown, &n), IA_EPARSE, "unknown field 3");
    const uint8_t wire[] = {0x08, 0x01};
    CHECK_ERR(ia_dagpb_decode(wire, sizeof wire, &n), IA_EPARSE, "wire type");
    const uint8_t past[] = {0x0a, 0x05, 0x01};
    CHECK_ERR(ia_dagpb_decode(past, sizeof past, &n), IA_EPARSE, "past the end");
    const uint8_t huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK_ERR(ia_dagpb_decode(huge, sizeof huge, &n), IA_EPARSE, "past the end");
    const uint8_t overflow[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK_ERR(ia_dagpb_decode(overflow, sizeof overflow, &n), IA_EPARSE, "overflows");
    /* a link without Hash, with fields out of order, with a bad CID */
    const uint8_t no_hash[] = {0x12, 0x02, 0x18, 0x01};
    CHECK_ERR(ia_dagpb_decode(no_hash, sizeof no_hash, &n), IA_EPARSE, "no Hash");
    const uint8_t order[] = {0x12, 0x04, 0x12, 0x00, 0x12, 0x00};
    CHECK_ERR(ia_dagpb_decode(order, sizeof order, &n), IA_EPARSE, "repeated");
    const uint8_t badcid[] = {0x12, 0x04, 0x0a, 0x02, 0x01, 0x70};
    CHECK_ERR(ia_dagpb_decode(badcid, sizeof badcid, &n), IA_EPARSE, "Hash");
    /* empty block: a node with nothing */
    CHECK_OK(ia_dagpb_decode((const uint8_t *)"", 0, &n));
    CHECK(n.n_links == 0 && !n.has_data);
    ia_pb_node_free(&n);
}

TEST(unixfs_strictness) {
    ia_unixfs u;
    const uint8_t no_type[] = {0x18, 0x05};
    CHECK_ERR(ia_unixfs_decode(no_type, sizeof no_type, &u), IA_EPARSE, "no Type");
    const uint8_t bad_type[] = {0x08, 0x09};
    CHECK_ERR(ia_unixfs_decode(bad_type, sizeof bad_type, &u), IA_EPARSE, "unknown Type 9");
    const uint8_t data_past[] = {0x08, 0x02, 0x12, 0x40, 0x00};
    CHECK_ERR(ia_unixfs_decode(data_past, sizeof data_past, &u), IA_EPARSE, "past the end");
    const uint8_t wire[] = {0x08, 0x02, 0x1a, 0x00};
    CHECK_ERR(ia_unixfs_decode(wire, sizeof wire, &u), IA_EPARSE, "wire type");
    const uint8_t fanout[] = {0x08, 0x05, 0x30, 0x03};
    CHECK_ERR(ia_unixfs_decode(fanout, sizeof fanout, &u), IA_EPARSE, "fanout 3");
    const uint8_t trunc[] = {0x08, 0x02, 0x18, 0x80};
    CHECK_ERR(ia_unixfs_decode(trunc, sizeof trunc, &u), IA_EPARSE, "truncated");
    /* packed blocksizes, unknown fields and mtime are accepted */
    const uint8_t packed[] = {0x08, 0x02, 0x18, 0x03, 0x22, 0x02, 0x01, 0x02, 0x38,
                              0xa4, 0x03, 0x42, 0x02, 0x08, 0x01, 0x50, 0x01};
    CHECK_OK(ia_unixfs_decode(packed, sizeof packed, &u));
    CHECK(u.type == IA_UNIXFS_FILE && u.n_blocksizes == 2 && u.blocksizes[1] == 2);
    ia_unixfs_free(&u);
}
