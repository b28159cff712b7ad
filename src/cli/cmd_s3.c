/*
 * `ipfs-accelerate s3 put | get | ls | rm | mb`: objects in Amazon S3 or
 * any S3-compatible store (MinIO, Ceph, moto) through the SigV4 client in
 * backends/s3.c.
 *
 * Where and who come from the environment the AWS tools use: the endpoint
 * from --endpoint, IA_S3_ENDPOINT or AWS_ENDPOINT_URL (path-style URLs
 * then; AWS itself when none), the region from --region, AWS_REGION or
 * AWS_DEFAULT_REGION, and the keys from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the shared credentials file
 * (which must be mode 600). Keys are never taken from the command line,
 * where other users could read them in the process list, and never printed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ia/s3.h"

static const char s3_usage[] =
    "usage: ipfs-accelerate s3 put FILE s3://BUCKET/KEY [--multipart-threshold N] [--part-size N]\n"
    "       ipfs-accelerate s3 get s3://BUCKET/KEY [-o FILE] [--range A-B]\n"
    "       ipfs-accelerate s3 ls s3://BUCKET[/PREFIX] [--json]\n"
    "       ipfs-accelerate s3 rm s3://BUCKET/KEY\n"
    "       ipfs-accelerate s3 mb s3://BUCKET\n"
    "\n"
    "Objects in Amazon S3 or an S3-compatible store, every request signed with SigV4.\n"
    "\n"
    "  put                      upload FILE; files of the threshold size or more go up\n"
    "                           as a multipart upload, which is aborted if any part fails\n"
    "  get                      write the object (or a byte range) to FILE or stdout\n"
    "  ls                       list keys under the prefix: LAST_MODIFIED SIZE KEY\n"
    "  rm                       delete an object\n"
    "  mb                       create a bucket\n"
    "\n"
    "  --endpoint URL           an S3-compatible server, e.g. http://127.0.0.1:9000\n"
    "                           (default $IA_S3_ENDPOINT or $AWS_ENDPOINT_URL, else AWS)\n"
    "  --region NAME            default $AWS_REGION or $AWS_DEFAULT_REGION, else us-east-1\n"
    "  --multipart-threshold N  bytes (K, M, G suffixes are KiB, MiB, GiB; default 16M)\n"
    "  --part-size N            bytes per part (default 8M; AWS wants at least 5M)\n"
    "  -o, --output FILE        where get writes (default stdout)\n"
    "  --range A-B              bytes A to B inclusive; 'A-' to the end\n"
    "  --json                   ls prints a JSON array\n"
    "\n"
    "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or the\n"
    "profile $AWS_PROFILE (default 'default') of $AWS_SHARED_CREDENTIALS_FILE (default\n"
    "~/.aws/credentials), which must not be readable by group or others.\n";

enum { O_ENDPOINT = 256, O_REGION, O_THRESHOLD, O_PART, O_RANGE, O_JSON };

typedef struct s3_opts {
    const char *endpoint, *region, *output, *range;
    uint64_t threshold, part_size;
    uint64_t first, last; /* --range, parsed */
    bool json;
} s3_opts;

/* "8M" -> 8 MiB; K, M, G are powers of 1024. */
static ia_status parse_size(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > (UINT64_MAX >> shift))
        return ia_error_set(IA_EINVAL, "%s: '%s' is not a positive size (like 8388608 or 8M)", flag,
                            s);
    *out = (uint64_t)v << shift;
    return IA_OK;
}

static ia_status parse_range(const char *s, uint64_t *first, uint64_t *last) {
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        goto bad;
    *first = strtoull(s, &end, 10);
    if (errno || *end != '-')
        goto bad;
    if (!end[1]) {
        *last = UINT64_MAX;
        return IA_OK;
    }
    const char *b = end + 1;
    if (*b < '0' || *b > '9')
        goto bad;
    *last = strtoull(b, &end, 10);
    if (errno || *end || *last < *first)
        goto bad;
    return IA_OK;
bad:
    return ia_error_set(IA_EINVAL, "--range: '%s' is not A-B (A <= B) or A-", s);
}

static int parse(int argc, char **argv, s3_opts *o) {
    static const struct option options[] = {
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"region", required_argument, NULL, O_REGION},
        {"multipart-threshold", required_argument, NULL, O_THRESHOLD},
        {"part-size", required_argument, NULL, O_PART},
        {"range", required_argument, NULL, O_RANGE},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case O_ENDPOINT:
            o->endpoint = optarg;
            break;
        case O_REGION:
            o->region = optarg;
            break;
        case O_THRESHOLD:
            st = parse_size("--multipart-threshold", optarg, &o->threshold);
            break;
        case O_PART:
            st = parse_size("--part-size", optarg, &o->part_size);
            break;
        case O_RANGE:
            o->range = optarg;
            st = parse_range(optarg, &o->first, &o->last);
            break;
        case 'o':
            o->output = optarg;
            break;
        case O_JSON:
            o->json = true;
            break;
        case 'h':
            fputs(s3_usage, stdout);
            return 0;
        default:
            return cli_usage_error("s3", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("s3", "%s", ia_error_message());
    }
    return -1;
}

/* A client from the environment with the command line's overrides. */
static ia_status open_client(const s3_opts *o, ia_s3_client **out) {
    ia_s3_env env;
    ia_s3_config cfg;
    ia_status st = ia_s3_config_from_env(&env, &cfg);
    if (st)
        return st;
    if (o->endpoint)
        cfg.endpoint = o->endpoint;
    if (o->region)
        cfg.region = o->region;
    st = ia_s3_client_create(&cfg, out);
    ia_s3_env_free(&env);
    return st;
}

static ia_status write_out(void *ctx, const void *data, size_t len) {
    FILE *f = ctx;
    if (fwrite(data, 1, len, f) != len)
        return ia_error_set(IA_EIO, "write failed: %s", strerror(errno));
    return IA_OK;
}

static ia_status do_put(ia_s3_client *c, const s3_opts *o, const char *file, const char *bucket,
                        const char *key) {
    ia_s3_put_options po = {o->threshold, o->part_size};
    ia_s3_put_report rep;
    ia_status st = ia_s3_object_put_file(c, bucket, key, file, &po, &rep);
    if (st)
        return st;
    if (rep.multipart)
        printf("s3://%s/%s\t%s\t%u parts\n", bucket, key, rep.etag, rep.parts);
    else
        printf("s3://%s/%s\tuploaded\n", bucket, key);
    return IA_OK;
}

static ia_status do_get(ia_s3_client *c, const s3_opts *o, const char *bucket, const char *key) {
    ia_status st;
    FILE *f = stdout;
    if (o->output && !(f = fopen(o->output, "wb")))
        return ia_error_set(IA_EIO, "%s: %s", o->output, strerror(errno));
    st = ia_s3_object_get(c, bucket, key, o->range != NULL, o->first, o->last, write_out, f, NULL);
    if (f != stdout) {
        if (fclose(f) != 0 && st == IA_OK)
            st = ia_error_set(IA_EIO, "%s: %s", o->output, strerror(errno));
        if (st)
            remove(o->output); /* no half-written file left behind */
    } else if (st == IA_OK && fflush(stdout) != 0) {
        st = ia_error_set(IA_EIO, "cannot write to stdout");
    }
    return st;
}

typedef struct ls_state {
    bool json;
    size_t n;
} ls_state;

static ia_status print_entry(void *ctx, const ia_s3_list_entry *e) {
    ls_state *s = ctx;
    if (s->json) {
        fputs(s->n ? ",\n  {\"key\": " : "\n  {\"key\": ", stdout);
        cli_write_string(stdout, e->key);
        printf(", \"size\": %llu, \"etag\": ", (unsigned long long)e->info.size);
        cli_write_string(stdout, e->info.etag);
        fputs(", \"last_modified\": ", stdout);
        cli_write_string(stdout, e->info.last_modified);
        fputc('}', stdout);
    } else {
        printf("%-24s %12llu %s\n", e->info.last_modified, (unsigned long long)e->info.size,
               e->key);
    }
    s->n++;
    return IA_OK;
}

static ia_status do_ls(ia_s3_client *c, const s3_opts *o, const char *bucket, const char *prefix) {
    ls_state s = {o->json, 0};
    if (o->json)
        fputc('[', stdout);
    ia_status st = ia_s3_list(c, bucket, prefix, 1000, print_entry, &s);
    if (o->json)
        fputs(s.n ? "\n]\n" : "]\n", stdout);
    return st;
}

int cmd_s3(int argc, char **argv) {
    s3_opts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("s3", "expected put, get, ls, rm or mb");
    const char *verb = argv[optind];
    char **args = argv + optind + 1;
    int n = argc - optind - 1;
    static const struct {
        const char *verb;
        int n_args;
        bool need_key, no_key;
    } verbs[] = {
        {"put", 2, true, false}, {"get", 1, true, false}, {"ls", 1, false, false},
        {"rm", 1, true, false},  {"mb", 1, false, true},
    };
    size_t v = 0;
    while (v < sizeof verbs / sizeof verbs[0] && strcmp(verbs[v].verb, verb) != 0)
        v++;
    if (v == sizeof verbs / sizeof verbs[0])
        return cli_usage_error("s3", "'%s' is not put, get, ls, rm or mb", verb);
    if (n != verbs[v].n_args)
        return cli_usage_error("s3", "s3 %s takes %d argument%s", verb, verbs[v].n_args,
                               verbs[v].n_args == 1 ? "" : "s");
    if ((o.output || o.range) && strcmp(verb, "get") != 0)
        return cli_usage_error("s3", "-o and --range are get options");
    if ((o.threshold || o.part_size) && strcmp(verb, "put") != 0)
        return cli_usage_error("s3", "--multipart-threshold and --part-size are put options");
    if (o.json && strcmp(verb, "ls") != 0)
        return cli_usage_error("s3", "--json is an ls option");

    const char *url = args[verbs[v].n_args - 1];
    char *bucket = NULL, *key = NULL;
    ia_s3_client *c = NULL;
    ia_status st = ia_s3_url_parse(url, &bucket, &key);
    if (st)
        return cli_usage_error("s3", "%s", ia_error_message());
    if (verbs[v].need_key && !*key) {
        rc = cli_usage_error("s3", "'%s' names no object key", url);
        goto done;
    }
    if (verbs[v].no_key && *key) {
        rc = cli_usage_error("s3", "'%s': mb takes a bucket, not a key", url);
        goto done;
    }
    if (!(st = open_client(&o, &c))) {
        if (strcmp(verb, "put") == 0)
            st = do_put(c, &o, args[0], bucket, key);
        else if (strcmp(verb, "get") == 0)
            st = do_get(c, &o, bucket, key);
        else if (strcmp(verb, "ls") == 0)
            st = do_ls(c, &o, bucket, key);
        else if (strcmp(verb, "rm") == 0)
            st = ia_s3_object_delete(c, bucket, key);
        else
            st = ia_s3_bucket_create(c, bucket);
    }
    rc = st ? cli_fail("s3", st) : 0;
done:
    ia_s3_client_destroy(c);
    free(bucket);
    free(key);
    return rc;
}
