/*
 * `ipfs-accelerate repo gc | verify | stat`: maintenance of the local store,
 * with Kubo's output formats; and the helpers every repo command shares
 * (opening --repo DIR or the default repo, parsing CID arguments, writing
 * to stdout).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"

ia_status cli_repo_open(const char *dir, ia_blockstore **out) {
    char *owned = NULL;
    if (!dir && !(dir = owned = ia_repo_default_path()))
        return IA_ENOMEM;
    ia_status st = ia_blockstore_open(dir, out);
    free(owned);
    return st;
}

ia_status cli_parse_cid(const char *arg, ia_cid *out) {
    ia_status st = ia_cid_parse(arg, out);
    if (st)
        ia_error_prefix("'%s' is not a CID", arg);
    return st;
}

ia_status cli_write_stream(void *ctx, const void *data, size_t len) {
    FILE *f = ctx;
    if (len && fwrite(data, 1, len, f) != len)
        return ia_error_set(IA_EIO, "cannot write the output: %s", strerror(errno));
    return IA_OK;
}

static const char repo_usage[] =
    "usage: ipfs-accelerate repo gc|verify|stat [--repo DIR]\n"
    "       ipfs-accelerate repo mirror [--pull] s3://BUCKET[/PREFIX] ... (repo mirror --help)\n"
    "\n"
    "  gc       remove every block not reachable from a pin (prints 'removed CID' per block)\n"
    "  verify   re-hash every block and --nocopy reference; report the bad ones\n"
    "  stat     NumObjects, RepoSize and RepoPath\n"
    "\n"
    "  --repo DIR   the store (default $IPFS_ACCELERATE_HOME or ~/.local/share/ipfs-accelerate)\n"
    "  --quiet      gc: print nothing per removed block\n";

static ia_status print_removed(void *ctx, const ia_cid *cid) {
    char text[IA_CID_MAX_STRING];
    if (!*(bool *)ctx && ia_cid_format(cid, IA_BASE32, text, sizeof text) == IA_OK)
        printf("removed %s\n", text);
    return IA_OK;
}

static void print_bad(void *ctx, const ia_cid *cid, ia_status st, const char *why) {
    char text[IA_CID_MAX_STRING];
    if (ia_cid_format(cid, IA_BASE32, text, sizeof text) != IA_OK)
        snprintf(text, sizeof text, "<CID>");
    printf("block %s was corrupt (%s)\n", text, why);
}

int cmd_repo(int argc, char **argv) {
    static const struct option options[] = {
        {"repo", required_argument, NULL, 'R'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *repo = NULL;
    bool quiet = false;
    int c;
    if (argc >= 2 && strcmp(argv[1], "mirror") == 0) /* its own options: cmd_repo_mirror.c */
        return cmd_repo_mirror(argc - 1, argv + 1);
    optind = 1;
    while ((c = getopt_long(argc, argv, "q", options, NULL)) != -1) {
        switch (c) {
        case 'R':
            repo = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            fputs(repo_usage, stdout);
            return 0;
        default:
            return cli_usage_error("repo", "bad option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("repo", "expected one of gc, verify, stat");
    const char *sub = argv[optind];
    if (strcmp(sub, "gc") && strcmp(sub, "verify") && strcmp(sub, "stat"))
        return cli_usage_error("repo", "unknown subcommand '%s'", sub);
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(repo, &bs);
    int rc = 1;
    if (st)
        goto done;
    if (strcmp(sub, "gc") == 0) {
        uint64_t removed = 0;
        if ((st = ia_repo_gc(bs, print_removed, &quiet, &removed)))
            goto done;
        rc = 0;
    } else if (strcmp(sub, "verify") == 0) {
        uint64_t checked = 0, bad = 0;
        if ((st = ia_repo_verify(bs, print_bad, NULL, &checked, &bad)))
            goto done;
        if (bad)
            printf("verify complete, %llu of %llu blocks were corrupt.\n", (unsigned long long)bad,
                   (unsigned long long)checked);
        else
            printf("verify complete, all blocks validated.\n");
        rc = bad ? 1 : 0;
    } else {
        ia_repo_stats stats;
        if ((st = ia_repo_stat(bs, &stats)))
            goto done;
        printf("NumObjects: %llu\nRepoSize:   %llu\nRepoPath:   %s\n",
               (unsigned long long)stats.num_objects, (unsigned long long)stats.repo_size,
               ia_blockstore_dir(bs));
        rc = 0;
    }
    if (fflush(stdout) != 0)
        rc = 1;
done:
    if (st)
        rc = cli_fail("repo", st);
    ia_blockstore_close(bs);
    return rc;
}
