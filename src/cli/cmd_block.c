/*
 * `ipfs-accelerate block get|put|stat|rm`: raw blocks in the local store, as
 * Kubo's `ipfs block` commands treat them (put defaults to a CIDv1 with the
 * raw codec; stat prints "Key: CID" and "Size: N"; rm refuses pinned roots).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"

#define BLOCK_PUT_MAX ((size_t)64 << 20)

static const char block_usage[] =
    "usage: ipfs-accelerate block get CID | put [FILE] | stat CID | rm CID... [--repo DIR]\n"
    "\n"
    "  get CID          write the block's bytes to stdout (verified against the CID)\n"
    "  put [FILE]       store FILE (or stdin) as one block; prints its CID\n"
    "  stat CID         print 'Key: CID' and 'Size: N'\n"
    "  rm CID...        remove blocks (not pinned ones); prints 'removed CID'\n"
    "\n"
    "  --repo DIR              the store (default $IPFS_ACCELERATE_HOME or\n"
    "                          ~/.local/share/ipfs-accelerate)\n"
    "  --cid-codec CODEC       put: raw (default), dag-pb or dag-cbor\n"
    "  --cid-version N         put: 1 (default), or 0 (dag-pb only)\n";

static ia_status block_put(ia_blockstore *bs, const char *file, uint64_t codec, int version) {
    const char *path = file && strcmp(file, "-") ? file : "/dev/stdin";
    char *data = NULL;
    size_t len = 0;
    ia_status st = ia_file_read_all(path, BLOCK_PUT_MAX, &data, &len);
    if (st)
        return st;
    ia_cid cid;
    char text[IA_CID_MAX_STRING];
    ia_cid_of_block(version, codec, data, len, &cid);
    if (!(st = ia_blockstore_put(bs, &cid, data, len)) &&
        !(st = ia_cid_format(&cid, IA_BASE32, text, sizeof text)))
        printf("%s\n", text);
    free(data);
    return st;
}

static ia_status block_each(ia_blockstore *bs, const char *sub, const char *arg) {
    ia_cid cid;
    ia_status st = cli_parse_cid(arg, &cid);
    if (st)
        return st;
    if (strcmp(sub, "get") == 0) {
        uint8_t *data = NULL;
        size_t len = 0;
        if (!(st = ia_blockstore_get(bs, &cid, &data, &len)))
            st = cli_write_stream(stdout, data, len);
        free(data);
        return st;
    }
    if (strcmp(sub, "stat") == 0) {
        uint64_t size = 0;
        if (!(st = ia_blockstore_size(bs, &cid, &size)))
            printf("Key: %s\nSize: %llu\n", arg, (unsigned long long)size);
        return st;
    }
    ia_pin_type type;
    if (ia_pin_get(bs, &cid, &type) == IA_OK)
        return ia_error_set(IA_EINVAL, "%s is pinned (%s); 'pin rm' it first", arg,
                            ia_pin_type_name(type));
    ia_error_clear();
    if (!(st = ia_blockstore_remove(bs, &cid)))
        printf("removed %s\n", arg);
    return st;
}

int cmd_block(int argc, char **argv) {
    static const struct option options[] = {
        {"repo", required_argument, NULL, 'R'},
        {"cid-codec", required_argument, NULL, 'c'},
        {"cid-version", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *repo = NULL;
    uint64_t codec = IA_CODEC_RAW;
    long version = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case 'R':
            repo = optarg;
            break;
        case 'c':
            if (strcmp(optarg, "raw") == 0)
                codec = IA_CODEC_RAW;
            else if (strcmp(optarg, "dag-pb") == 0 || strcmp(optarg, "protobuf") == 0)
                codec = IA_CODEC_DAG_PB;
            else if (strcmp(optarg, "dag-cbor") == 0 || strcmp(optarg, "cbor") == 0)
                codec = IA_CODEC_DAG_CBOR;
            else
                return cli_usage_error("block", "--cid-codec: '%s' is not raw, dag-pb or dag-cbor",
                                       optarg);
            break;
        case 'v':
            st = cli_parse_int("--cid-version", optarg, 0, 1, &version);
            break;
        case 'h':
            fputs(block_usage, stdout);
            return 0;
        default:
            return cli_usage_error("block", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("block", "%s", ia_error_message());
    }
    if (optind >= argc)
        return cli_usage_error("block", "expected get, put, stat or rm");
    const char *sub = argv[optind++];
    int n_args = argc - optind;
    if (strcmp(sub, "put") == 0) {
        if (n_args > 1)
            return cli_usage_error("block", "put takes at most one FILE");
        if (version == 0 && codec != IA_CODEC_DAG_PB)
            return cli_usage_error("block", "--cid-version 0 needs --cid-codec dag-pb");
    } else if (strcmp(sub, "get") == 0 || strcmp(sub, "stat") == 0) {
        if (n_args != 1)
            return cli_usage_error("block", "%s takes one CID", sub);
    } else if (strcmp(sub, "rm") == 0) {
        if (n_args < 1)
            return cli_usage_error("block", "rm takes one or more CIDs");
    } else {
        return cli_usage_error("block", "unknown subcommand '%s'", sub);
    }
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(repo, &bs);
    int rc = 0;
    if (st == IA_OK && strcmp(sub, "put") == 0) {
        st = block_put(bs, n_args ? argv[optind] : NULL, codec, (int)version);
    } else {
        /* rm goes on past a failure, like Kubo, and fails at the end */
        for (int i = optind; st == IA_OK && i < argc; i++) {
            ia_status one = block_each(bs, sub, argv[i]);
            if (one && strcmp(sub, "rm") == 0) {
                rc = cli_fail("block", one);
                continue;
            }
            st = one;
        }
    }
    if (st)
        rc = cli_fail("block", st);
    else if (fflush(stdout) != 0)
        rc = cli_fail("block", ia_error_set(IA_EIO, "cannot write to stdout"));
    ia_blockstore_close(bs);
    return rc;
}
