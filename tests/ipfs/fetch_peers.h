/*
 * Peers for the fetch tests (test_fetch.c, test_fetch_get.c): this test
 * binary re-executed as a minimal trustless responder with fault modes (see
 * test_fetch.c's opening comment), and helpers that build a source DAG,
 * start and stop responders and check results. Include once per test file,
 * after _GNU_SOURCE.
 */
#ifndef IA_TEST_FETCH_PEERS_H
#define IA_TEST_FETCH_PEERS_H

#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_fs.h"

/* ---- the responder (runs in a child process) ------------------------------------------ */

typedef struct responder {
    ia_blockstore *bs;
    pthread_mutex_t lock; /* guards bs, count and nonempty */
    int log_fd;
    char mode[16];
    long arg;
    long count;
    long nonempty; /* non-empty blocks answered ("corrupt N" spoils the Nth) */
} responder;

static responder R;

typedef struct half_body {
    uint8_t *data;
    size_t len, sent, cap;
} half_body;

static ia_status append_car(void *ctx, const void *data, size_t len) {
    half_body *b = ctx;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *more = realloc(b->data, cap);
        if (!more)
            return IA_ENOMEM;
        b->data = more;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return IA_OK;
}

/* Sends half of the block, then dies on the next call: a peer killed mid-transfer. */
static ssize_t half_then_die(void *cls, uint64_t pos, char *buf, size_t max) {
    half_body *h = cls;
    if (h->sent >= h->len / 2)
        _exit(1);
    size_t n = h->len / 2 - h->sent;
    n = n < max ? n : max;
    memcpy(buf, h->data + h->sent, n);
    h->sent += n;
    return (ssize_t)n;
}

static void free_half(void *cls) {
    half_body *h = cls;
    free(h->data);
    free(h);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state) {
    struct MHD_Response *resp = NULL;
    unsigned code = 200;
    uint8_t *data = NULL;
    size_t len = 0;
    const char *format = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
    const char *scope = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dag-scope");
    bool car_peer = strncmp(R.mode, "car-", 4) == 0;
    bool car =
        car_peer && format && strcmp(format, "car") == 0 && scope && strcmp(scope, "all") == 0;
    ia_cid cid;
    if (strcmp(method, "GET") != 0 || strncmp(url, "/ipfs/", 6) != 0 || !format ||
        (strcmp(format, "raw") != 0 && !car) || ia_cid_parse(url + 6, &cid) != IA_OK) {
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        code = 400;
        goto send;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", url + 6);
    if (write(R.log_fd, line, (size_t)n) != n)
        _exit(3);
    pthread_mutex_lock(&R.lock);
    long count = ++R.count, nonempty = 0;
    ia_status st;
    if (car) {
        half_body whole = {0};
        st = ia_car_export(R.bs, &cid, 1, append_car, &whole, NULL);
        data = whole.data;
        len = whole.len;
        if (st == IA_OK && strcmp(R.mode, "car-corrupt") == 0 && len > 0)
            data[len - 1] ^= 0x5a;
    } else {
        st = ia_blockstore_get(R.bs, &cid, &data, &len);
        /* Counted apart: an empty block has no byte to flip, and which
         * request comes Nth depends on timing. */
        if (st == IA_OK && len > 0)
            nonempty = ++R.nonempty;
    }
    pthread_mutex_unlock(&R.lock);
    if (st != IA_OK) {
        free(data);
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        code = 404;
        goto send;
    }
    if (strcmp(R.mode, "slow") == 0)
        usleep((useconds_t)R.arg * 1000);
    if (strcmp(R.mode, "corrupt") == 0 && nonempty == R.arg)
        data[len / 2] ^= 0x5a;
    if (strcmp(R.mode, "oversize") == 0) {
        free(data);
        len = ((size_t)2 << 20) + 1;
        data = calloc(1, len);
    }
    if ((strcmp(R.mode, "die") == 0 && count > R.arg) || (car && strcmp(R.mode, "car-die") == 0)) {
        half_body *h = calloc(1, sizeof *h);
        h->data = data;
        h->len = len;
        resp = MHD_create_response_from_callback(len, 64 * 1024, half_then_die, h, free_half);
    } else {
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    }
    MHD_add_response_header(resp, "Content-Type",
                            car ? "application/vnd.ipld.car" : "application/vnd.ipld.raw");
send:;
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* IA_FETCH_RESPONDER="REPO LOG MODE ARG": serve, print the port, wait to be killed. */
__attribute__((constructor)) static void responder_main(void) {
    const char *spec = getenv("IA_FETCH_RESPONDER");
    if (!spec)
        return;
    char repo[4096], log[4096];
    if (sscanf(spec, "%4095s %4095s %15s %ld", repo, log, R.mode, &R.arg) != 4)
        _exit(2);
    pthread_mutex_init(&R.lock, NULL);
    R.log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (R.log_fd < 0 || ia_blockstore_open(repo, &R.bs) != IA_OK)
        _exit(2);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
    if (!d)
        _exit(2);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", (unsigned)info->port);
    fflush(stdout);
    for (;;)
        pause();
}

/* ---- helpers ---------------------------------------------------------------------------- */

static inline void write_file(const char *dir, const char *name, size_t n, unsigned seed) {
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint32_t x = seed * 2654435761u + 1;
    uint8_t buf[65536];
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        for (size_t i = 0; i < k; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (uint8_t)(x >> 24);
        }
        fwrite(buf, 1, k, f);
        n -= k;
    }
    fclose(f);
}

typedef struct peer_proc {
    pid_t pid;
    char url[64];
    char log[4200];
} peer_proc;

/* Starts a responder over repo with a fault mode; its log goes to dir/log-N. */
static inline peer_proc start_responder(const char *dir, const char *repo, const char *mode,
                                        long arg) {
    static int serial;
    peer_proc p = {.pid = -1};
    snprintf(p.log, sizeof p.log, "%s/log-%d", dir, serial++);
    char spec[9000];
    snprintf(spec, sizeof spec, "%s %s %s %ld", repo, p.log, mode, arg);
    int fds[2];
    if (pipe(fds) != 0)
        return p;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        setenv("IA_FETCH_RESPONDER", spec, 1);
        execl("/proc/self/exe", "responder", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[32] = "";
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    unsigned port = 0;
    if (n > 0 && sscanf(buf, "%u", &port) == 1 && port > 0) {
        p.pid = pid;
        snprintf(p.url, sizeof p.url, "http://127.0.0.1:%u", port);
    }
    return p;
}

static inline void stop_peer(peer_proc *p) {
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = -1;
}

/* Lines in a responder's log (requests it received). */
static inline int log_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static ia_status collect_visit(void *ctx, const ia_cid *cid, const uint8_t *d, size_t len) {
    ia_cid **list = ctx;
    size_t n = 0;
    while ((*list)[n].digest_len)
        n++;
    ia_cid *more = realloc(*list, (n + 2) * sizeof *more);
    more[n] = *cid;
    memset(&more[n + 1], 0, sizeof more[n + 1]);
    *list = more;
    return IA_OK;
}

/* The DAG's blocks in walk order; *n is their count. */
static inline ia_cid *dag_blocks(ia_blockstore *bs, const ia_cid *root, size_t *n) {
    ia_cid *list = calloc(1, sizeof *list);
    CHECK_OK(ia_dag_walk(bs, root, false, collect_visit, &list));
    *n = 0;
    while (list[*n].digest_len)
        (*n)++;
    return list;
}

/* A source: dir/top with a 20 MB file, small files and a subdirectory, added
 * as CIDv1 (raw leaves) in 64 KiB chunks to dir/src: a few hundred blocks. */
static inline ia_cid make_source(const char *dir, size_t big, ia_blockstore **src) {
    char top[4200], sub[4300], repo[4200];
    snprintf(top, sizeof top, "%s/top", dir);
    snprintf(sub, sizeof sub, "%s/top/sub", dir);
    snprintf(repo, sizeof repo, "%s/src", dir);
    mkdir(top, 0755);
    mkdir(sub, 0755);
    write_file(top, "big.bin", big, 1);
    write_file(top, "small.txt", 100, 2);
    write_file(sub, "mid.bin", 300000, 3);
    write_file(sub, "empty", 0, 4);
    ia_add_options o = ia_add_options_default();
    o.cid_version = 1;
    o.chunk_size = 65536;
    o.threads = 1;
    ia_cid root = {0};
    CHECK_OK(ia_blockstore_open(repo, src));
    CHECK_OK(ia_add_path(*src, top, &o, NULL, NULL, &root));
    return root;
}

static inline ia_fetch_options test_options(void) {
    ia_fetch_options o = ia_fetch_options_default();
    o.stall_timeout_s = 5;
    o.connect_timeout_s = 5;
    o.max_inflight = 4;
    return o;
}

/* Exports root from bs to dir/NAME and compares it with dir/top. */
static inline void check_same_as_source(ia_blockstore *bs, const ia_cid *root, const char *dir,
                                        const char *name) {
    char out[4200], cmd[9000];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    CHECK_OK(ia_unixfs_get(bs, root, out));
    snprintf(cmd, sizeof cmd, "diff -r %s/top %s >/dev/null", dir, out);
    CHECK_MSG(system(cmd) == 0, "%s differs from the source", out);
}

static inline bool report_has_note(const ia_fetch_report *r, const char *a, const char *b) {
    for (size_t i = 0; i < r->n_notes; i++)
        if (strstr(r->notes[i], a) && (!b || strstr(r->notes[i], b)))
            return true;
    return false;
}

static inline void print_notes(const ia_fetch_report *r) {
    for (size_t i = 0; i < r->n_notes; i++)
        fprintf(stderr, "    note: %s\n", r->notes[i]);
}

#endif /* IA_TEST_FETCH_PEERS_H */
