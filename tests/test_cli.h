/*
 * Running the real CLI from a test: run_cli() forks $IA_CLI with the given
 * arguments (stdin from a file or /dev/null), waits, and returns its exit
 * status with everything it wrote to stdout and stderr. Include after test.h.
 */
#ifndef IA_TEST_CLI_H
#define IA_TEST_CLI_H

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct run_result {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} run_result;

static char *run_slurp(const char *path) {
    char *text = NULL;
    size_t len;
    if (ia_file_read_all(path, 256 << 20, &text, &len) != IA_OK)
        return ia_strdup("");
    return text;
}

/* Runs $IA_CLI with args (NULL-terminated) and stdin from `in` (NULL: /dev/null). */
static run_result run_cli_input(const char *in, const char *const *args) {
    const char *cli = getenv("IA_CLI");
    run_result r = {-1, NULL, NULL};
    char out_path[] = "/tmp/ia_cli_out_XXXXXX", err_path[] = "/tmp/ia_cli_err_XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    const char *argv[64];
    int n = 0;
    argv[n++] = cli ? cli : "ipfs-accelerate";
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(in ? in : "/dev/null", O_RDONLY);
        dup2(fd, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(out_fd);
    close(err_fd);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = run_slurp(out_path);
    r.err = run_slurp(err_path);
    remove(out_path);
    remove(err_path);
    return r;
}

static inline run_result run_cli(const char *const *args) { return run_cli_input(NULL, args); }

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

#define RUN(...) run_cli((const char *[]){__VA_ARGS__, NULL})
#define EXPECT(r, code)                                                                       \
    CHECK_MSG((r).status == (code), "exit %d, wanted %d; stdout: %s; stderr: %s", (r).status, \
              (code), (r).out, (r).err)

#endif /* IA_TEST_CLI_H */
