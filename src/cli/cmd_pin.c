/*
 * `ipfs-accelerate pin add|rm|ls`: pins keep DAGs from `repo gc`. Output as
 * Kubo prints it: "pinned CID recursively", "unpinned CID", and "CID TYPE"
 * per line for ls.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char pin_usage[] =
    "usage: ipfs-accelerate pin add CID... | rm CID... | ls [CID...] [--repo DIR]\n"
    "\n"
    "  add CID...       pin (recursively unless --recursive=false; the whole DAG must be here)\n"
    "  rm CID...        remove pins\n"
    "  ls [CID...]      list pins as 'CID TYPE' (types: direct, recursive, indirect)\n"
    "\n"
    "  --repo DIR          the store (default $IPFS_ACCELERATE_HOME or\n"
    "                      ~/.local/share/ipfs-accelerate)\n"
    "  --recursive=BOOL    add: pin the whole DAG (default true) or just the block\n"
    "  --type TYPE         ls: all (default), direct, recursive or indirect\n"
    "  -q, --quiet         ls: print CIDs only\n";

typedef struct ls_ctx {
    bool quiet;
} ls_ctx;

static ia_status print_pin(void *ctx, const ia_cid *cid, ia_pin_type type) {
    char text[IA_CID_MAX_STRING];
    ia_status st = ia_cid_format(cid, IA_BASE32, text, sizeof text);
    if (st)
        return st;
    if (((ls_ctx *)ctx)->quiet)
        printf("%s\n", text);
    else
        printf("%s %s\n", text, ia_pin_type_name(type));
    return IA_OK;
}

static ia_status pin_one(ia_blockstore *bs, const char *sub, const char *arg, bool recursive,
                         ls_ctx *ls) {
    ia_cid cid;
    ia_status st = cli_parse_cid(arg, &cid);
    if (st)
        return st;
    if (strcmp(sub, "add") == 0) {
        if (!(st = ia_pin_add(bs, &cid, recursive ? IA_PIN_RECURSIVE : IA_PIN_DIRECT)))
            printf("pinned %s %s\n", arg, recursive ? "recursively" : "directly");
    } else if (strcmp(sub, "rm") == 0) {
        if (!(st = ia_pin_remove(bs, &cid)))
            printf("unpinned %s\n", arg);
    } else {
        ia_pin_type type;
        if ((st = ia_pin_get(bs, &cid, &type)) == IA_OK)
            st = print_pin(ls, &cid, type);
    }
    return st;
}

int cmd_pin(int argc, char **argv) {
    static const struct option options[] = {
        {"repo", required_argument, NULL, 'R'}, {"recursive", optional_argument, NULL, 'r'},
        {"type", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *repo = NULL;
    bool recursive = true;
    ia_pin_type type = IA_PIN_ALL;
    ls_ctx ls = {false};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "q", options, NULL)) != -1) {
        switch (c) {
        case 'R':
            repo = optarg;
            break;
        case 'r':
            if (!optarg || strcmp(optarg, "true") == 0)
                recursive = true;
            else if (strcmp(optarg, "false") == 0)
                recursive = false;
            else
                return cli_usage_error("pin", "--recursive: '%s' is not true or false", optarg);
            break;
        case 't': {
            static const ia_pin_type types[] = {IA_PIN_ALL, IA_PIN_DIRECT, IA_PIN_RECURSIVE,
                                                IA_PIN_INDIRECT};
            size_t i = 0;
            while (i < 4 && strcmp(optarg, ia_pin_type_name(types[i])) != 0)
                i++;
            if (i == 4)
                return cli_usage_error(
                    "pin", "--type: '%s' is not all, direct, recursive or indirect", optarg);
            type = types[i];
            break;
        }
        case 'q':
            ls.quiet = true;
            break;
        case 'h':
            fputs(pin_usage, stdout);
            return 0;
        default:
            return cli_usage_error("pin", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("pin", "expected add, rm or ls");
    const char *sub = argv[optind++];
    if (strcmp(sub, "add") && strcmp(sub, "rm") && strcmp(sub, "ls"))
        return cli_usage_error("pin", "unknown subcommand '%s'", sub);
    if (strcmp(sub, "ls") && optind >= argc)
        return cli_usage_error("pin", "%s takes one or more CIDs", sub);
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(repo, &bs);
    int rc = 0;
    if (st == IA_OK && strcmp(sub, "ls") == 0 && optind >= argc)
        st = ia_pin_list(bs, type, print_pin, &ls);
    for (int i = optind; st == IA_OK && i < argc; i++)
        st = pin_one(bs, sub, argv[i], recursive, &ls);
    if (st)
        rc = cli_fail("pin", st);
    else if (fflush(stdout) != 0)
        rc = cli_fail("pin", ia_error_set(IA_EIO, "cannot write to stdout"));
    ia_blockstore_close(bs);
    return rc;
}
