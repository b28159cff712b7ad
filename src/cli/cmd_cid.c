/*
 * `ipfs-accelerate cid`: look at and rewrite CIDs, like Kubo's `ipfs cid`.
 *
 *   cid inspect CID...                 every part of the CID, one per line
 *   cid format [--v0|--v1|-v N] [-b BASE] CID...
 *   cid base32 CID...                  (= format --v1 -b base32)
 *
 * format keeps the input's version and multibase unless told otherwise;
 * moving a v0 CID to v1 without -b gives base32, as Kubo does.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char cid_usage[] =
    "usage: ipfs-accelerate cid inspect CID...\n"
    "       ipfs-accelerate cid format [--v0 | --v1 | -v N] [-b BASE] CID...\n"
    "       ipfs-accelerate cid base32 CID...\n"
    "\n"
    "  inspect        print version, multibase, codec, multihash and digest of each CID\n"
    "  format         print each CID re-encoded; keeps version and base unless told otherwise\n"
    "    --v0, --v1, -v N   the CID version to write (v0 needs dag-pb and sha2-256)\n"
    "    -b, --base BASE    base32 (default for v1), base58btc, base16 or base36\n"
    "  base32         CIDv1 in base32 (what Kubo prints)\n";

static const struct {
    const char *name;
    ia_multibase base;
} bases[] = {
    {"base32", IA_BASE32}, {"b", IA_BASE32}, {"base58btc", IA_BASE58BTC}, {"z", IA_BASE58BTC},
    {"base16", IA_BASE16}, {"f", IA_BASE16}, {"base36", IA_BASE36},       {"k", IA_BASE36},
};

static const char *base_name(ia_multibase b) {
    switch (b) {
    case IA_BASE32:
        return "base32";
    case IA_BASE58BTC:
        return "base58btc";
    case IA_BASE16:
        return "base16";
    case IA_BASE36:
        return "base36";
    }
    return "?";
}

/* The multibase a CID string was written in (v0: base58btc, implicit). */
static ia_multibase input_base(const char *s) {
    switch (s[0]) {
    case 'z':
        return IA_BASE58BTC;
    case 'f':
    case 'F':
        return IA_BASE16;
    case 'k':
    case 'K':
        return IA_BASE36;
    default:
        return IA_BASE32;
    }
}

static int inspect(const char *s) {
    ia_cid cid, other;
    char text[IA_CID_MAX_STRING];
    ia_status st = ia_cid_parse(s, &cid);
    if (st)
        return cli_fail("cid inspect", st);
    const char *codec = ia_codec_name(cid.codec), *mh = ia_multihash_name(cid.mh_code);
    bool v0_text = cid.version == 0;
    printf("CID:        %s\n", s);
    printf("Version:    %d\n", cid.version);
    if (v0_text)
        printf("Multibase:  base58btc (implicit)\n");
    else
        printf("Multibase:  %s (%c)\n", base_name(input_base(s)), s[0]);
    printf("Multicodec: %s (0x%llx%s)\n", codec ? codec : "unknown", (unsigned long long)cid.codec,
           v0_text ? ", implicit" : "");
    printf("Multihash:  %s (0x%llx)\n", mh ? mh : "unknown", (unsigned long long)cid.mh_code);
    printf("  Length:   %u bytes\n", cid.digest_len);
    printf("  Digest:   ");
    for (uint32_t i = 0; i < cid.digest_len; i++)
        printf("%02x", cid.digest[i]);
    printf("\n");
    if (ia_cid_convert(&cid, 0, &other) == IA_OK &&
        ia_cid_format(&other, IA_BASE58BTC, text, sizeof text) == IA_OK)
        printf("CIDv0:      %s\n", text);
    else
        printf("CIDv0:      not possible (CIDv0 needs dag-pb and sha2-256)\n");
    ia_cid_convert(&cid, 1, &other);
    if (ia_cid_format(&other, IA_BASE32, text, sizeof text) == IA_OK)
        printf("CIDv1:      %s\n", text);
    return 0;
}

static int format_one(const char *s, int version, int base) {
    ia_cid cid, out;
    char text[IA_CID_MAX_STRING];
    ia_status st = ia_cid_parse(s, &cid);
    if (st)
        return cli_fail("cid format", st);
    int v = version >= 0 ? version : cid.version;
    if ((st = ia_cid_convert(&cid, v, &out)))
        return cli_fail("cid format", st);
    ia_multibase b = base >= 0 ? (ia_multibase)base : cid.version == 0 ? IA_BASE32 : input_base(s);
    if (v == 0 && base >= 0 && b != IA_BASE58BTC) {
        fprintf(stderr,
                "ipfs-accelerate cid format: a CIDv0 is always base58btc; add --v1 to write "
                "%s\n",
                base_name(b));
        return 1;
    }
    if ((st = ia_cid_format(&out, b, text, sizeof text)))
        return cli_fail("cid format", st);
    printf("%s\n", text);
    return 0;
}

int cmd_cid(int argc, char **argv) {
    static const struct option options[] = {
        {"v0", no_argument, NULL, '0'},
        {"v1", no_argument, NULL, '1'},
        {"cid-version", required_argument, NULL, 'v'},
        {"base", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(cid_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int version = -1, base = -1, c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "v:b:h", options, NULL)) != -1) {
        switch (c) {
        case '0':
            version = 0;
            break;
        case '1':
            version = 1;
            break;
        case 'v':
            if (cli_parse_int("--cid-version", optarg, 0, 1, &v))
                return cli_usage_error("cid", "%s", ia_error_message());
            version = (int)v;
            break;
        case 'b': {
            size_t i;
            for (i = 0; i < sizeof bases / sizeof bases[0]; i++)
                if (strcmp(optarg, bases[i].name) == 0)
                    break;
            if (i == sizeof bases / sizeof bases[0])
                return cli_usage_error("cid",
                                       "--base: '%s' is not base32, base58btc, base16 or "
                                       "base36",
                                       optarg);
            base = (int)bases[i].base;
            break;
        }
        case 'h':
            fputs(cid_usage, stdout);
            return 0;
        default:
            return cli_usage_error("cid", "bad option");
        }
    }
    int first = optind + 1, rc = 0;
    if (first >= argc)
        return cli_usage_error("cid", "%s: no CID given", sub);
    if (strcmp(sub, "inspect") == 0) {
        if (version >= 0 || base >= 0)
            return cli_usage_error("cid", "inspect takes no options");
        for (int i = first; i < argc; i++) {
            if (i > first)
                printf("\n");
            rc |= inspect(argv[i]);
        }
    } else if (strcmp(sub, "format") == 0 || strcmp(sub, "base32") == 0) {
        if (strcmp(sub, "base32") == 0) {
            version = 1;
            base = IA_BASE32;
        }
        for (int i = first; i < argc; i++)
            rc |= format_one(argv[i], version, base);
    } else {
        return cli_usage_error("cid", "unknown subcommand '%s' (inspect, format, base32)", sub);
    }
    return rc;
}
