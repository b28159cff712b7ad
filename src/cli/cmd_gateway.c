/*
 * `ipfs-accelerate gateway`: serves the local store as an IPFS Trustless
 * Gateway (raw blocks and CAR streams over HTTP; see docs/HTTP_API.md) until
 * SIGINT or SIGTERM. The first line it prints, to stdout and flushed, is
 * "gateway listening on http://HOST:PORT", so scripts and tests that ask for
 * port 0 can read back the port it got.
 *
 * Signals: SIGINT and SIGTERM are blocked before the server's threads start
 * (they inherit the mask) and the main thread waits for them with sigwait,
 * so shutdown runs in ordinary code: stop the server, close the store.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/ipfs.h"

static const char gateway_usage[] =
    "usage: ipfs-accelerate gateway [--listen HOST:PORT] [--repo DIR] [--deserialized]\n"
    "\n"
    "Serves the store as an IPFS Trustless Gateway: GET/HEAD /ipfs/{cid}[/path] with\n"
    "?format=raw (one verified block) or ?format=car (a CARv1 stream; dag-scope=\n"
    "block|entity|all, entity-bytes=FROM:TO), or the matching Accept header. Runs\n"
    "until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen ADDR      address to listen on (default 127.0.0.1:8081; port 0 picks\n"
    "                     a free one, printed on the first line)\n"
    "  --repo DIR         the store (default $IPFS_ACCELERATE_HOME or\n"
    "                     ~/.local/share/ipfs-accelerate)\n"
    "  --deserialized     also answer plain GETs of UnixFS files with their bytes\n"
    "  --max-connections N  concurrent connections (default 256)\n";

enum { O_LISTEN = 256, O_REPO, O_DESER, O_MAXCONN };

int cmd_gateway(int argc, char **argv) {
    static const struct option options[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"repo", required_argument, NULL, O_REPO},
        {"deserialized", no_argument, NULL, O_DESER},
        {"max-connections", required_argument, NULL, O_MAXCONN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:8081", *repo = NULL;
    ia_gateway_options opts = ia_gateway_options_default();
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_REPO:
            repo = optarg;
            break;
        case O_DESER:
            opts.deserialized = true;
            break;
        case O_MAXCONN:
            if (cli_parse_int("--max-connections", optarg, 1, 65536, &v) != IA_OK)
                return cli_usage_error("gateway", "%s", ia_error_message());
            opts.max_connections = (unsigned)v;
            break;
        case 'h':
            fputs(gateway_usage, stdout);
            return 0;
        default:
            return cli_usage_error("gateway", "bad option");
        }
    }
    if (optind != argc)
        return cli_usage_error("gateway", "unexpected argument '%s'", argv[optind]);

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    /* A shell starts background jobs with SIGINT ignored, and an ignored
     * signal is discarded rather than left pending for sigwait. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);

    ia_blockstore *bs = NULL;
    ia_gateway *gw = NULL;
    ia_status st = cli_repo_open(repo, &bs);
    if (st == IA_OK)
        st = ia_gateway_start(bs, listen, &opts, &gw);
    if (st) {
        int rc = cli_fail("gateway", st);
        ia_blockstore_close(bs);
        return rc;
    }
    /* The host as given (or the default), with the port actually bound. */
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(listen, ':');
    if (colon && colon > listen)
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    printf("gateway listening on http://%s:%u\n", host, (unsigned)ia_gateway_port(gw));
    fflush(stdout);
    ia_log(IA_LOG_INFO, "gateway: serving %s", ia_blockstore_dir(bs));

    int sig = 0;
    sigwait(&stop_signals, &sig);
    ia_log(IA_LOG_INFO, "gateway: %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ia_gateway_stop(gw);
    ia_blockstore_close(bs);
    return 0;
}
