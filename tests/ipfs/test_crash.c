/*
 * The store under failure: a write that fails part-way (the file-size limit
 * stands in for a full disk: write() returns EFBIG exactly where ENOSPC
 * would come) and a process killed with SIGKILL in the middle of `add`. In
 * both cases the store must never hold a block whose bytes do not match its
 * CID: `repo verify` passes, no temporary file is left behind as a block,
 * and adding the same file again completes and gives the same CID as
 * hashing it without a store.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

/* n pseudo-random bytes (incompressible, so every chunk is a distinct block). */
static void write_random(const char *path, size_t n, uint32_t seed) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    uint8_t buf[65536];
    uint32_t x = seed | 1;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        for (size_t i = 0; i < k; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        CHECK(fwrite(buf, 1, k, f) == k);
        done += k;
    }
    fclose(f);
}

/* Runs the CLI with args in a child whose file-size limit is `fsize` bytes
 * (SIGXFSZ ignored, so writes past it fail with EFBIG). */
static int run_limited(rlim_t fsize, const char *const *args, char **err_out) {
    const char *cli = getenv("IA_CLI");
    char err_path[] = "/tmp/ia_crash_err_XXXXXX";
    int err_fd = mkstemp(err_path);
    const char *argv[32];
    int n = 0;
    argv[n++] = cli;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {fsize, fsize};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, 1);
        dup2(err_fd, 2);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    close(err_fd);
    *err_out = run_slurp(err_path);
    remove(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Unfinished block writes (".put-*" files) under dir. */
static int leftover_temps(const char *dir) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -name '.put-*' | grep -q .", dir);
    return system(cmd) == 0;
}

static void check_store_sound(const char *repo) {
    run_result r = RUN("repo", "verify", "--repo", repo);
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, "all blocks validated") != NULL, "verify: %s %s", r.out, r.err);
    run_free(&r);
}

TEST(full_disk_mid_add_leaves_no_bad_block) {
    char *dir = temp_dir();
    char file[4200], repo[4200];
    snprintf(file, sizeof file, "%s/data.bin", dir);
    snprintf(repo, sizeof repo, "%s/repo", dir);
    write_random(file, 8u << 20, 7);

    run_result r = RUN("add", "-Q", "--only-hash", file);
    EXPECT(r, 0);
    char want[128];
    snprintf(want, sizeof want, "%s", r.out);
    run_free(&r);

    /* Blocks are 256 KiB: a limit of 100 KiB fails the very first block
     * write part-way, as a full disk would. */
    char *err = NULL;
    int code =
        run_limited(100 * 1024, (const char *[]){"add", "--repo", repo, "-Q", file, NULL}, &err);
    CHECK_MSG(code == 1, "add under a full disk exited %d: %s", code, err);
    const char *e = err ? err : "";
    CHECK_MSG(strchr(e, '\n') == strrchr(e, '\n') && strlen(e) > 0, "want one error line, got: %s",
              e);
    CHECK_MSG(strstr(e, "File too large") || strstr(e, "No space"), "the error names the cause: %s",
              e);
    free(err);
    CHECK(!leftover_temps(repo));
    check_store_sound(repo);

    /* with room again, the same add completes and gives the real CID */
    r = RUN("add", "--repo", repo, "-Q", file);
    EXPECT(r, 0);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s vs %s", r.out, want);
    run_free(&r);
    check_store_sound(repo);
    rm_rf(dir);
    free(dir);
}

TEST(killed_mid_add_leaves_no_bad_block) {
    char *dir = temp_dir();
    char file[4200], repo[4200];
    snprintf(file, sizeof file, "%s/data.bin", dir);
    snprintf(repo, sizeof repo, "%s/repo", dir);
    write_random(file, 64u << 20, 11);
    run_result r = RUN("add", "-Q", "--only-hash", file);
    char want[128];
    snprintf(want, sizeof want, "%s", r.out);
    run_free(&r);

    /* Kill at several points of the add: early, middle, late. */
    static const long delays_ms[] = {15, 60, 150};
    int killed = 0;
    for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int null_fd = open("/dev/null", O_WRONLY);
            dup2(null_fd, 1);
            dup2(null_fd, 2);
            execl(getenv("IA_CLI"), getenv("IA_CLI"), "add", "--repo", repo, "-Q", file,
                  (char *)NULL);
            _exit(127);
        }
        struct timespec ts = {0, delays_ms[i] * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        killed += WIFSIGNALED(status);
        check_store_sound(repo);
    }
    fprintf(stderr, "  %d of 3 adds were killed mid-way (the rest finished first)\n", killed);
    CHECK_MSG(!leftover_temps(repo), "verify removes what killed writers left");

    r = RUN("add", "--repo", repo, "-Q", file);
    EXPECT(r, 0);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s vs %s", r.out, want);
    run_free(&r);
    check_store_sound(repo);
    r = RUN("cat", "--repo", repo, want[0] ? strtok(want, "\n") : "");
    EXPECT(r, 0);
    run_free(&r);
    rm_rf(dir);
    free(dir);
}
