/* vk_probe.c — finding a discrete GPU for `--backend auto` without loading
 * Vulkan into this process when there is none. */
#include "strata_vk.h"

#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* `--backend auto` on a machine without a discrete GPU must cost the CPU
 * path nothing: loading the Vulkan loader and a software driver (lavapipe
 * pulls in LLVM) would add ~50 MiB to the process for good. So the probe runs
 * in a short-lived child process, and this process only loads Vulkan when the
 * child found a device. */
int st_vk_probe_device(int dev, st_error *err) {
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
    while (got < sizeof msg) {
        ssize_t n = read(fd[0], (char *)&msg + got, sizeof msg - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got != sizeof msg) {
        st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: the device probe failed (the driver crashed while listing devices)");
        return -1;
    }
    if (msg.r < 0 && err) *err = msg.e;
    return msg.r;
}

