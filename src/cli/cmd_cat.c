/*
 * `ipfs-accelerate cat | get | ls`: reading UnixFS data back out of the
 * local store. cat streams a file (or a byte range of it) to stdout, get
 * writes a file or directory tree to disk, ls lists a directory as Kubo
 * does ("CID SIZE NAME", columns aligned, directories as "-" and "name/").
 * Arguments are CID, CID/path or /ipfs/CID/path.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char cat_usage[] =
    "usage: ipfs-accelerate cat CID[/path] [--offset N] [--length N] [--verify] [--repo DIR]\n"
    "\n"
    "Writes the file's bytes to stdout. Blocks were verified when they were stored\n"
    "and are trusted, as Kubo trusts its store; --nocopy references are always\n"
    "re-hashed, so a changed source file is reported, never served.\n"
    "\n"
    "  --offset N    start at byte N (default 0)\n"
    "  --length N    write at most N bytes (default: to the end)\n"
    "  --verify      re-hash every block against its CID while reading (a block\n"
    "                that rotted on disk is then an error)\n"
    "  --repo DIR    the store (default $IPFS_ACCELERATE_HOME or\n"
    "                ~/.local/share/ipfs-accelerate)\n";

static const char get_usage[] =
    "usage: ipfs-accelerate get CID[/path] [-o OUT] [--verify] [--repo DIR]\n"
    "       ipfs-accelerate get CID --from URL[,URL...] [-o OUT] [--pin=BOOL] [--store=BOOL]\n"
    "                           [--repo DIR]\n"
    "\n"
    "Writes a file, symlink or directory tree to OUT (default: the last path component,\n"
    "or the CID), which must not exist.\n"
    "\n"
    "  -o, --output OUT   where to write\n"
    "  --verify           re-hash every block read from the store (fetched blocks\n"
    "                     are always verified on arrival)\n"
    "  --from URLS        first fetch the DAG from these trustless gateways (comma-\n"
    "                     separated, e.g. http://127.0.0.1:8080), several at once, every\n"
    "                     block verified before its bytes are written to OUT (which\n"
    "                     appears only once complete); blocks already in the store are\n"
    "                     not fetched, and fetched ones are kept: leaves as references\n"
    "                     into OUT (as add --nocopy keeps them), other nodes as blocks\n"
    "  --pin=BOOL         with --from: pin the root recursively (default true)\n"
    "  --store=BOOL       with --from: keep the fetched DAG in the store (default true;\n"
    "                     false: a plain verified download that leaves the store alone)\n"
    "  --repo DIR         the store (default $IPFS_ACCELERATE_HOME or\n"
    "                     ~/.local/share/ipfs-accelerate)\n";

static const char ls_usage[] =
    "usage: ipfs-accelerate ls CID[/path]... [--repo DIR]\n"
    "\n"
    "Lists directory entries as 'CID SIZE NAME' (size '-' and a trailing '/' for\n"
    "directories), plain and HAMT-sharded directories alike.\n"
    "\n"
    "  --repo DIR    the store (default $IPFS_ACCELERATE_HOME or\n"
    "                ~/.local/share/ipfs-accelerate)\n";

enum { O_REPO = 256, O_OFFSET, O_LENGTH, O_FROM, O_PIN, O_VERIFY, O_STORE };

/* Shared option parsing: --repo, cat's range, get's output. */
typedef struct read_opts {
    const char *repo, *output, *from;
    long long offset, length;
    bool no_pin;   /* get --from --pin=false */
    bool no_store; /* get --from --store=false */
    bool verify;   /* cat/get --verify: hash on read */
} read_opts;

static int parse_opts(const char *cmd, const char *usage, int argc, char **argv, read_opts *o) {
    static const struct option options[] = {
        {"repo", required_argument, NULL, O_REPO},
        {"offset", required_argument, NULL, O_OFFSET},
        {"length", required_argument, NULL, O_LENGTH},
        {"output", required_argument, NULL, 'o'},
        {"from", required_argument, NULL, O_FROM},
        {"pin", optional_argument, NULL, O_PIN},
        {"verify", no_argument, NULL, O_VERIFY},
        {"store", optional_argument, NULL, O_STORE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->length = -1;
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, strcmp(cmd, "get") == 0 ? "o:" : "", options, NULL)) !=
           -1) {
        ia_status st = IA_OK;
        switch (c) {
        case O_REPO:
            o->repo = optarg;
            break;
        case O_OFFSET:
        case O_LENGTH:
            if (strcmp(cmd, "cat") != 0)
                return cli_usage_error(cmd, "--offset and --length are cat options");
            st =
                cli_parse_int(c == O_OFFSET ? "--offset" : "--length", optarg, 0, __LONG_MAX__, &v);
            if (c == O_OFFSET)
                o->offset = v;
            else
                o->length = v;
            break;
        case 'o':
            if (strcmp(cmd, "get") != 0)
                return cli_usage_error(cmd, "--output is a get option");
            o->output = optarg;
            break;
        case O_FROM:
            if (strcmp(cmd, "get") != 0)
                return cli_usage_error(cmd, "--from is a get option");
            o->from = optarg;
            break;
        case O_PIN:
        case O_STORE: {
            const char *name = c == O_PIN ? "--pin" : "--store";
            bool *off = c == O_PIN ? &o->no_pin : &o->no_store;
            if (strcmp(cmd, "get") != 0)
                return cli_usage_error(cmd, "%s is a get --from option", name);
            if (!optarg || strcmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0)
                *off = false;
            else if (strcmp(optarg, "false") == 0 || strcmp(optarg, "0") == 0)
                *off = true;
            else
                return cli_usage_error(cmd, "%s: '%s' is not true or false", name, optarg);
            break;
        }
        case O_VERIFY:
            if (strcmp(cmd, "ls") == 0)
                return cli_usage_error(cmd, "--verify is a cat and get option");
            o->verify = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return cli_usage_error(cmd, "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error(cmd, "%s", ia_error_message());
    }
    return -1; /* go on */
}

/* Blocks go straight to fd 1 with write(2): they are already large, and a
 * stdio copy of every byte would cost as much as reading them. */
static ia_status write_stdout(void *ctx, const void *data, size_t len) {
    (void)ctx;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ia_error_set(IA_EIO, "cannot write to stdout: %s",
                                n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (size_t)n;
    }
    return IA_OK;
}

int cmd_cat(int argc, char **argv) {
    read_opts o;
    int rc = parse_opts("cat", cat_usage, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("cat", "expected CID[/path]");
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(o.repo, &bs);
    if (st == IA_OK)
        ia_blockstore_set_hash_on_read(bs, o.verify);
    if (st == IA_OK && fflush(stdout) != 0)
        st = ia_error_set(IA_EIO, "cannot write to stdout");
    for (int i = optind; st == IA_OK && i < argc; i++) {
        ia_cid cid;
        if (!(st = ia_unixfs_resolve(bs, argv[i], &cid)))
            st = ia_unixfs_cat(bs, &cid, (uint64_t)o.offset,
                               o.length < 0 ? UINT64_MAX : (uint64_t)o.length, write_stdout, NULL);
    }
    rc = st ? cli_fail("cat", st) : 0;
    ia_blockstore_close(bs);
    return rc;
}

/* ---- get --from: fetch from trustless gateways, then export ------------------- */

/* Splits "URL,URL,..." into malloc'd strings (*peers and each string owned
 * by the caller); empty items are a usage error. */
static ia_status split_peers(const char *list, char ***peers, size_t *n) {
    *peers = NULL;
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return ia_error_set(IA_EINVAL, "--from: empty URL in '%s'", list);
        char **more = ia_realloc_array(*peers, *n + 1, sizeof *more);
        if (!more)
            return IA_ENOMEM;
        *peers = more;
        if (!(more[*n] = ia_strndup(p, len)))
            return IA_ENOMEM;
        (*n)++;
        if (!comma)
            return IA_OK;
        p = comma + 1;
    }
}

/* "12.3 MB": decimal units, as transfer rates are usually quoted. */
static void human_bytes(double v, char *buf, size_t cap) {
    const char *units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_report(const char *root, const ia_fetch_report *r) {
    char total[32], rate[32], b[32];
    human_bytes((double)r->bytes_fetched, total, sizeof total);
    human_bytes(r->seconds > 0 ? (double)r->bytes_fetched / r->seconds : 0, rate, sizeof rate);
    fprintf(stderr,
            "fetched %s: %llu blocks (%llu already here, %llu fetched, %s in %.2f s, %s/s), "
            "%llu retries\n",
            root, (unsigned long long)r->blocks, (unsigned long long)r->blocks_present,
            (unsigned long long)r->blocks_fetched, total, r->seconds, rate,
            (unsigned long long)r->retries);
    for (size_t i = 0; i < r->n_peers; i++) {
        const ia_fetch_peer_stats *p = &r->peers[i];
        human_bytes((double)p->bytes, b, sizeof b);
        fprintf(stderr,
                "  peer %s: %llu blocks, %s, %llu requests, %llu failed, %llu not found%s%s\n",
                p->url, (unsigned long long)p->blocks, b, (unsigned long long)p->requests,
                (unsigned long long)(p->failures + p->corrupt), (unsigned long long)p->not_found,
                p->dropped ? "; dropped: " : "", p->dropped && p->why ? p->why : "");
    }
    for (size_t i = 0; i < r->n_notes; i++)
        fprintf(stderr, "%s\n", r->notes[i]);
}

static int get_from(const read_opts *o, const char *arg) {
    const char *text = strncmp(arg, "/ipfs/", 6) == 0 ? arg + 6 : arg;
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '/')
        len--;
    if (memchr(text, '/', len))
        return cli_usage_error("get",
                               "--from takes a bare CID, not the path '%s' (fetch the CID, "
                               "then get CID/path from the store)",
                               arg);
    char *cid_text = ia_strndup(text, len), **peers = NULL;
    size_t n_peers = 0;
    ia_blockstore *bs = NULL;
    ia_fetch_report report = {0};
    ia_cid cid;
    ia_status st = cid_text ? IA_OK : IA_ENOMEM;
    int rc = 1;
    if (st == IA_OK && (st = cli_parse_cid(cid_text, &cid)) != IA_OK) {
        rc = cli_usage_error("get", "%s", ia_error_message());
        goto done;
    }
    if (st == IA_OK && (st = split_peers(o->from, &peers, &n_peers)) == IA_EINVAL) {
        rc = cli_usage_error("get", "%s", ia_error_message());
        goto done;
    }
    const char *out = o->output ? o->output : cid_text;
    struct stat sb;
    if (st == IA_OK && lstat(out, &sb) == 0)
        st = ia_error_set(IA_EINVAL, "%s already exists; remove it or choose another -o", out);
    if (st == IA_OK && !o->no_store && (st = cli_repo_open(o->repo, &bs)) == IA_OK)
        ia_blockstore_set_hash_on_read(bs, o->verify);
    if (st == IA_OK) {
        /* Every block is verified before its bytes are written, straight to
         * their place in OUT; OUT appears once complete. */
        fprintf(stderr, "Saving file(s) to %s\n", out);
        st = ia_fetch_get(bs, &cid, out, (const char *const *)peers, n_peers, NULL, &report);
        if (st == IA_EINVAL && report.n_peers == 0 && !ia_file_exists(out) &&
            !strstr(ia_error_message(), "already exists")) { /* a malformed URL */
            rc = cli_usage_error("get", "--from: %s", ia_error_message());
            goto done;
        }
        if (report.n_peers > 0)
            print_report(cid_text, &report);
    }
    if (st == IA_OK && bs && !o->no_pin)
        st = ia_pin_add(bs, &cid, IA_PIN_RECURSIVE);
    rc = st ? cli_fail("get", st) : 0;
done:
    ia_fetch_report_free(&report);
    ia_blockstore_close(bs);
    for (size_t i = 0; i < n_peers; i++)
        free(peers[i]);
    free(peers);
    free(cid_text);
    return rc;
}

int cmd_get(int argc, char **argv) {
    read_opts o;
    int rc = parse_opts("get", get_usage, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return cli_usage_error("get", "expected one CID[/path]");
    if (o.from)
        return get_from(&o, argv[optind]);
    const char *arg = argv[optind];
    char *out = NULL;
    if (o.output) {
        out = ia_strdup(o.output);
    } else { /* the last path component, as Kubo names it */
        const char *p = arg;
        if (strncmp(p, "/ipfs/", 6) == 0)
            p += 6;
        size_t len = strlen(p);
        while (len > 0 && p[len - 1] == '/')
            len--;
        const char *start = p + len;
        while (start > p && start[-1] != '/')
            start--;
        out = ia_strndup(start, (size_t)(p + len - start));
    }
    ia_blockstore *bs = NULL;
    ia_status st = out ? cli_repo_open(o.repo, &bs) : IA_ENOMEM;
    ia_cid cid;
    if (st == IA_OK)
        ia_blockstore_set_hash_on_read(bs, o.verify);
    if (st == IA_OK && !(st = ia_unixfs_resolve(bs, arg, &cid))) {
        fprintf(stderr, "Saving file(s) to %s\n", out);
        st = ia_unixfs_get(bs, &cid, out);
    }
    rc = st ? cli_fail("get", st) : 0;
    ia_blockstore_close(bs);
    free(out);
    return rc;
}

/* Rows are collected first so that the columns can be aligned like Go's
 * tabwriter (padding 1) aligns Kubo's. */
typedef struct ls_rows {
    char **cid, **size, **name;
    size_t n, cap;
} ls_rows;

static ia_status add_row(void *ctx, const ia_ls_entry *e) {
    ls_rows *r = ctx;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        char **a = ia_realloc_array(r->cid, cap, sizeof *a);
        if (a)
            r->cid = a;
        char **b = a ? ia_realloc_array(r->size, cap, sizeof *b) : NULL;
        if (b)
            r->size = b;
        char **d = b ? ia_realloc_array(r->name, cap, sizeof *d) : NULL;
        if (!d)
            return IA_ENOMEM;
        r->name = d;
        r->cap = cap;
    }
    char text[IA_CID_MAX_STRING], size[32];
    ia_status st = ia_cid_format(&e->cid, IA_BASE32, text, sizeof text);
    if (st)
        return st;
    bool dir = e->type == IA_UNIXFS_DIRECTORY || e->type == IA_UNIXFS_HAMT_SHARD;
    if (dir)
        snprintf(size, sizeof size, "-");
    else
        snprintf(size, sizeof size, "%llu", (unsigned long long)e->size);
    size_t nlen = strlen(e->name);
    char *name = ia_malloc(nlen + 2);
    char *c = ia_strdup(text), *s = ia_strdup(size);
    if (!name || !c || !s) {
        free(name);
        free(c);
        free(s);
        return IA_ENOMEM;
    }
    memcpy(name, e->name, nlen);
    name[nlen] = '/';
    name[nlen + dir] = '\0';
    r->cid[r->n] = c;
    r->size[r->n] = s;
    r->name[r->n++] = name;
    return IA_OK;
}

static void print_rows(const ls_rows *r) {
    int wc = 0, ws = 0;
    for (size_t i = 0; i < r->n; i++) {
        int a = (int)strlen(r->cid[i]), b = (int)strlen(r->size[i]);
        wc = a > wc ? a : wc;
        ws = b > ws ? b : ws;
    }
    for (size_t i = 0; i < r->n; i++)
        printf("%-*s %-*s %s\n", wc, r->cid[i], ws, r->size[i], r->name[i]);
}

static void free_rows(ls_rows *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->cid[i]);
        free(r->size[i]);
        free(r->name[i]);
    }
    free(r->cid);
    free(r->size);
    free(r->name);
    memset(r, 0, sizeof *r);
}

int cmd_ls(int argc, char **argv) {
    read_opts o;
    int rc = parse_opts("ls", ls_usage, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("ls", "expected CID[/path]");
    ia_blockstore *bs = NULL;
    ia_status st = cli_repo_open(o.repo, &bs);
    for (int i = optind; st == IA_OK && i < argc; i++) {
        ia_cid cid;
        ls_rows rows = {0};
        if (!(st = ia_unixfs_resolve(bs, argv[i], &cid)) &&
            !(st = ia_unixfs_ls(bs, &cid, add_row, &rows))) {
            if (argc - optind > 1)
                printf("%s%s:\n", i > optind ? "\n" : "", argv[i]);
            print_rows(&rows);
        }
        free_rows(&rows);
    }
    if (st == IA_OK && fflush(stdout) != 0)
        st = ia_error_set(IA_EIO, "cannot write to stdout");
    rc = st ? cli_fail("ls", st) : 0;
    ia_blockstore_close(bs);
    return rc;
}
