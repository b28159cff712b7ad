/*
 * `ipfs-accelerate car export | import`: CAR archives, the format Kubo's
 * `dag export` / `dag import` use. export writes a CARv1 holding a DAG
 * (depth first, each block once); import reads a CARv1 or CARv2, verifies
 * every block, stores it and pins the roots (like Kubo, unless
 * --pin-roots=false).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char car_usage[] =
    "usage: ipfs-accelerate car export CID... -o FILE.car | import FILE.car... [--repo DIR]\n"
    "\n"
    "  export CID...    write a CARv1 of the DAGs under the CIDs ('-o -' for stdout)\n"
    "  import FILE...   read CARv1 or CARv2 files into the store and pin their roots\n"
    "\n"
    "  -o, --output FILE       export: where to write (required)\n"
    "  --pin-roots=BOOL        import: pin each root recursively (default true)\n"
    "  --repo DIR              the store (default $IPFS_ACCELERATE_HOME or\n"
    "                          ~/.local/share/ipfs-accelerate)\n";

static ia_status car_export(ia_blockstore *bs, char **args, int n, const char *output) {
    ia_cid *roots = ia_malloc_array((size_t)n, sizeof *roots);
    ia_status st = roots ? IA_OK : IA_ENOMEM;
    for (int i = 0; st == IA_OK && i < n; i++)
        st = ia_unixfs_resolve(bs, args[i], &roots[i]);
    bool to_stdout = strcmp(output, "-") == 0;
    FILE *f = NULL;
    if (st == IA_OK && !(f = to_stdout ? stdout : fopen(output, "wb")))
        st = ia_error_set(IA_EIO, "%s: cannot create: %s", output, strerror(errno));
    uint64_t blocks = 0;
    if (st == IA_OK)
        st = ia_car_export(bs, roots, (size_t)n, cli_write_stream, f, &blocks);
    if (f && !to_stdout && fclose(f) != 0 && st == IA_OK)
        st = ia_error_set(IA_EIO, "%s: cannot write: %s", output, strerror(errno));
    if (f && !to_stdout && st)
        unlink(output); /* no half-written archive */
    if (st == IA_OK && !to_stdout)
        fprintf(stderr, "exported %llu blocks to %s\n", (unsigned long long)blocks, output);
    free(roots);
    return st;
}

static ia_status car_import(ia_blockstore *bs, const char *path, bool pin_roots) {
    ia_car_info info;
    ia_status st = ia_car_import_file(bs, path, &info);
    if (st)
        return st;
    printf("imported %llu blocks from %s (CARv%d)\n", (unsigned long long)info.n_blocks, path,
           info.version);
    for (size_t i = 0; pin_roots && st == IA_OK && i < info.n_roots; i++) {
        char text[IA_CID_MAX_STRING];
        if (!(st = ia_cid_format(&info.roots[i], IA_BASE32, text, sizeof text)) &&
            !(st = ia_pin_add(bs, &info.roots[i], IA_PIN_RECURSIVE)))
            printf("Pinned root %s success\n", text);
        else
            ia_error_prefix("%s: root %zu", path, i);
    }
    ia_car_info_free(&info);
    return st;
}

int cmd_car(int argc, char **argv) {
    static const struct option options[] = {
        {"repo", required_argument, NULL, 'R'},
        {"output", required_argument, NULL, 'o'},
        {"pin-roots", optional_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *repo = NULL, *output = NULL;
    bool pin_roots = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
        switch (c) {
        case 'R':
            repo = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'p':
            if (!optarg || strcmp(optarg, "true") == 0)
                pin_roots = true;
            else if (strcmp(optarg, "false") == 0)
                pin_roots = false;
            else
                return cli_usage_error("car", "--pin-roots: '%s' is not true or false", optarg);
            break;
        case 'h':
            fputs(car_usage, stdout);
            return 0;
        default:
            return cli_usage_error("car", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("car", "expected export or import");
    const char *sub = argv[optind++];
    bool export = strcmp(sub, "export") == 0;
    if (!export && strcmp(sub, "import") != 0)
        return cli_usage_error("car", "unknown subcommand '%s'", sub);
    if (optind >= argc)
        return cli_usage_error("car", export ? "export takes one or more CIDs"
                                             : "import takes one or more CAR files");
    if (export && !output)
        return cli_usage_error("car", "export needs -o FILE.car");
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(repo, &bs);
    if (st == IA_OK && export)
        st = car_export(bs, argv + optind, argc - optind, output);
    for (int i = optind; !export && st == IA_OK && i < argc; i++)
        st = car_import(bs, argv[i], pin_roots);
    if (st == IA_OK && fflush(stdout) != 0)
        st = ia_error_set(IA_EIO, "cannot write to stdout");
    int rc = st ? cli_fail("car", st) : 0;
    ia_blockstore_close(bs);
    return rc;
}
