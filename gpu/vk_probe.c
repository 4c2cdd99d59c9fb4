/* vk_probe.c — finding a discrete GPU for `--backend auto` without loading
 * Vulkan into this process when there is none. */
#include "strata_vk.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* how long the child may take to list the devices */
#define PROBE_TIMEOUT_MS 15000

/* Under AddressSanitizer or ThreadSanitizer the child of a fork() from a
 * multithreaded process can deadlock in the sanitizer's allocator (a lock
 * another thread held at the fork: seen in the sanitized tui_e2e, the
 * store's prefetch threads allocating while the session was created), so
 * those builds probe in this process. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PROBE_IN_PROCESS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PROBE_IN_PROCESS 1
#endif
#endif

/* `--backend auto` on a machine without a discrete GPU must cost the CPU
 * path nothing: loading the Vulkan loader and a software driver (lavapipe
 * pulls in LLVM) would add ~50 MiB to the process for good. So the probe runs
 * in a short-lived child process, and this process only loads Vulkan when the
 * child found a device. */
int st_vk_probe_device(int dev, st_error *err) {
#ifdef PROBE_IN_PROCESS
    return st_vk_pick_device(dev, dev < 0, err);
#endif
    int fd[2];
    if (pipe(fd) != 0) return st_vk_pick_device(dev, dev < 0, err);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return st_vk_pick_device(dev, dev < 0, err);
    }
    if (pid == 0) {
        close(fd[0]);
        st_error e = {0};
        int r = st_vk_pick_device(dev, dev < 0, &e);
        struct { int r; st_error e; } msg = {r, e};
        ssize_t w = write(fd[1], &msg, sizeof msg);
        (void)w;
        _exit(0);
    }
    close(fd[1]);
    struct { int r; st_error e; } msg;
    size_t got = 0;
    bool timed_out = false;
    while (got < sizeof msg) {
        /* a child that hangs (a driver, or a lock inherited from another
         * thread at the fork) must not hang the caller */
        struct pollfd pf = {fd[0], POLLIN, 0};
        int pr = poll(&pf, 1, PROBE_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        ssize_t n = read(fd[0], (char *)&msg + got, sizeof msg - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got != sizeof msg) {
        if (timed_out)
            st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: the device probe did not answer within %d s", PROBE_TIMEOUT_MS / 1000);
        else
            st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: the device probe failed (the driver crashed while listing devices)");
        return -1;
    }
    if (msg.r < 0 && err) *err = msg.e;
    return msg.r;
}

