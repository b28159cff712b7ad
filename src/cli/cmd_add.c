/*
 * `ipfs-accelerate add`: files and directories into the local store, with
 * the same CIDs Kubo's `ipfs add` gives (same flags, same defaults: CIDv0,
 * 256 KiB chunks, 174 links per node, raw leaves with CIDv1).
 *
 * Prints "added <cid> <path>" per file and directory (-Q: only the last
 * root, -q: only CIDs). A profile sets every import parameter at once;
 * flags given explicitly override it whatever their order. PATH "-" or no
 * PATH reads stdin.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char add_usage[] =
    "usage: ipfs-accelerate add [options] PATH...\n"
    "\n"
    "Adds files (and with -r directories) to the local store and prints their CIDs;\n"
    "the CIDs are the ones Kubo's `ipfs add` gives with the same options.\n"
    "\n"
    "  -r, --recursive        add directories and their contents\n"
    "  -Q, --quieter          print only the final root CID\n"
    "  -q, --quiet            print only CIDs, one per line\n"
    "  -n, --only-hash        compute CIDs without writing anything\n"
    "  -H, --hidden           include files whose names start with '.'\n"
    "  --cid-version 0|1      CID version (default 0)\n"
    "  --raw-leaves[=BOOL]    leaves as raw blocks (default: on for CIDv1 and --nocopy)\n"
    "  --chunker size-N       fixed-size chunks of N bytes (default size-262144, max 1 MiB)\n"
    "  --max-file-links N     links per file node (default 174)\n"
    "  --profile NAME         unixfs-v0-2015 (Kubo's default) or unixfs-v1-2025 (IPIP-499:\n"
    "                         CIDv1, raw leaves, 1 MiB chunks, 1024 links)\n"
    "  --nocopy               store references to the file's bytes instead of copies\n"
    "  --pin=BOOL             pin the root (default true)\n"
    "  --repo DIR             the store (default $IPFS_ACCELERATE_HOME or\n"
    "                         ~/.local/share/ipfs-accelerate)\n"
    "  --threads N            hashing threads (default: physical cores)\n";

typedef struct add_out {
    int quiet; /* 0 normal, 1 -q, 2 -Q */
} add_out;

static void print_added(void *ctx, const char *path, const ia_cid *cid, uint64_t size) {
    add_out *o = ctx;
    char text[IA_CID_MAX_STRING];
    (void)size;
    if (o->quiet == 2 || ia_cid_format(cid, IA_BASE32, text, sizeof text) != IA_OK)
        return;
    if (o->quiet == 1)
        printf("%s\n", text);
    else
        printf("added %s %s\n", text, path);
}

static ia_status parse_bool(const char *flag, const char *s, bool *out) {
    if (!s || strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return ia_error_set(IA_EINVAL, "%s: '%s' is not true or false", flag, s);
    return IA_OK;
}

static ia_status parse_chunker(const char *s, size_t *out) {
    long v;
    if (strncmp(s, "size-", 5) != 0)
        return ia_error_set(IA_EINVAL, "--chunker: '%s' is not supported (only size-N)", s);
    if (cli_parse_int("--chunker", s + 5, 1, 1048576, &v))
        return ia_error_set(IA_EINVAL, "--chunker: '%s' needs N from 1 to 1048576 (1 MiB)", s);
    *out = (size_t)v;
    return IA_OK;
}

int cmd_add(int argc, char **argv) {
    enum { O_CIDV = 256, O_RAW, O_CHUNK, O_PROFILE, O_NOCOPY, O_PIN, O_REPO, O_THREADS, O_LINKS };
    static const struct option options[] = {
        {"recursive", no_argument, NULL, 'r'},
        {"quieter", no_argument, NULL, 'Q'},
        {"quiet", no_argument, NULL, 'q'},
        {"only-hash", no_argument, NULL, 'n'},
        {"hidden", no_argument, NULL, 'H'},
        {"cid-version", required_argument, NULL, O_CIDV},
        {"raw-leaves", optional_argument, NULL, O_RAW},
        {"chunker", required_argument, NULL, O_CHUNK},
        {"max-file-links", required_argument, NULL, O_LINKS},
        {"profile", required_argument, NULL, O_PROFILE},
        {"nocopy", no_argument, NULL, O_NOCOPY},
        {"pin", optional_argument, NULL, O_PIN},
        {"repo", required_argument, NULL, O_REPO},
        {"threads", required_argument, NULL, O_THREADS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ia_add_options opts = ia_add_options_default();
    const char *profile = NULL, *repo = NULL;
    bool recursive = false, raw_set = false, raw = false, pin = true, hidden = false;
    bool only_hash = false, nocopy = false;
    long cid_version = -1, threads = 0, max_links = 0, v;
    size_t chunk = 0;
    add_out out = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "rQqnHh", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case 'r':
            recursive = true;
            break;
        case 'Q':
            out.quiet = 2;
            break;
        case 'q':
            if (out.quiet == 0)
                out.quiet = 1;
            break;
        case 'n':
            only_hash = true;
            break;
        case 'H':
            hidden = true;
            break;
        case O_CIDV:
            st = cli_parse_int("--cid-version", optarg, 0, 1, &cid_version);
            break;
        case O_RAW:
            raw_set = true;
            st = parse_bool("--raw-leaves", optarg, &raw);
            break;
        case O_CHUNK:
            st = parse_chunker(optarg, &chunk);
            break;
        case O_LINKS:
            st = cli_parse_int("--max-file-links", optarg, 2, 65536, &max_links);
            break;
        case O_PROFILE:
            profile = optarg;
            break;
        case O_NOCOPY:
            nocopy = true;
            break;
        case O_PIN:
            st = parse_bool("--pin", optarg, &pin);
            break;
        case O_REPO:
            repo = optarg;
            break;
        case O_THREADS:
            st = cli_parse_int("--threads", optarg, 1, 256, &v);
            threads = v;
            break;
        case 'h':
            fputs(add_usage, stdout);
            return 0;
        default:
            return cli_usage_error("add", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("add", "%s", ia_error_message());
    }
    if (profile && ia_add_options_profile(&opts, profile))
        return cli_usage_error("add", "--profile: %s", ia_error_message());
    if (cid_version >= 0) {
        opts.cid_version = (int)cid_version;
        if (!profile)
            opts.raw_leaves = -1; /* follows the version, as in Kubo */
        else if (!raw_set)
            opts.raw_leaves = cid_version == 1 ? 1 : opts.raw_leaves;
    }
    if (raw_set)
        opts.raw_leaves = raw;
    if (nocopy) {
        if (raw_set && !raw)
            return cli_usage_error("add", "--nocopy needs --raw-leaves (leaves must be the "
                                          "file's own bytes)");
        opts.raw_leaves = 1;
    }
    if (chunk)
        opts.chunk_size = chunk;
    if (max_links)
        opts.max_links = (size_t)max_links;
    opts.only_hash = only_hash;
    opts.nocopy = nocopy;
    opts.pin = pin;
    opts.hidden = hidden;
    opts.threads = (int)threads;

    /* Check every argument before writing anything. */
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        if (strcmp(argv[i], "-") == 0)
            continue;
        if (lstat(argv[i], &sb) != 0) {
            fprintf(stderr, "ipfs-accelerate add: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(sb.st_mode) && !recursive) {
            fprintf(stderr, "ipfs-accelerate add: %s is a directory; use -r to add it\n", argv[i]);
            return 1;
        }
    }

    ia_blockstore *bs = NULL;
    char *repo_owned = NULL;
    ia_cid *roots = NULL;
    size_t n_roots = 0;
    ia_status st = IA_OK;
    int rc = 1;
    if (!only_hash) {
        if (!repo && !(repo = repo_owned = ia_repo_default_path())) {
            st = IA_ENOMEM;
            goto done;
        }
        if ((st = ia_blockstore_open(repo, &bs)))
            goto done;
    }
    ia_cid root, last;
    bool any = false;
    if (!(roots = ia_malloc_array(argc > optind ? (size_t)(argc - optind) : 1, sizeof *roots))) {
        st = IA_ENOMEM;
        goto done;
    }
    if (optind >= argc || (argc - optind == 1 && strcmp(argv[optind], "-") == 0)) {
        if (isatty(STDIN_FILENO))
            fprintf(stderr, "ipfs-accelerate add: reading stdin (give PATH to add files)\n");
        if ((st = ia_add_fd(bs, STDIN_FILENO, &opts, &root)))
            goto done;
        char text[IA_CID_MAX_STRING];
        if ((st = ia_cid_format(&root, IA_BASE32, text, sizeof text)))
            goto done;
        print_added(&out, text, &root, 0);
        roots[n_roots++] = root;
        last = root;
        any = true;
    } else {
        for (int i = optind; i < argc; i++) {
            if ((st = ia_add_path(bs, argv[i], &opts, print_added, &out, &root)))
                goto done;
            roots[n_roots++] = root;
            last = root;
            any = true;
        }
    }
    if (any && out.quiet == 2) {
        char text[IA_CID_MAX_STRING];
        if ((st = ia_cid_format(&last, IA_BASE32, text, sizeof text)))
            goto done;
        printf("%s\n", text);
    }
    /* Kubo pins what it adds, recursively: each argument's root. */
    for (size_t i = 0; bs && pin && i < n_roots; i++)
        if ((st = ia_pin_add(bs, &roots[i], IA_PIN_RECURSIVE)))
            goto done;
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (st != IA_OK)
        rc = cli_fail("add", st);
    ia_blockstore_close(bs);
    free(roots);
    free(repo_owned);
    return rc;
}
