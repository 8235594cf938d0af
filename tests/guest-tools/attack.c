/* What hostile guest root tries from inside, for the join tests. Built
 * static (gcc -static) and run in a guest with `vserver NAME exec`.
 *
 *   attack lease FILE         take a read lease on FILE: "lease ok" or "lease errno N"
 *   attack pid1               ptrace, /proc/1/{exe,environ,mem}: one line each
 *   attack tty OUTFILE SECS   in the background, for SECS seconds: become the
 *                             foreground of the terminal on fd 0, push input
 *                             into it (TIOCSTI), read what is typed on it, and
 *                             write what happened to OUTFILE, then "done"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int lease(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("open errno %d\n", errno); return 1; }
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) { printf("lease ok\n"); return 0; }
    printf("lease errno %d\n", errno);
    return 0;
}

static void result(const char *what, int ok) {
    printf("%s %s\n", what, ok ? "ok" : "denied");
}

static int pid1(void) {
    char buf[256];
    result("ptrace", ptrace(PTRACE_SEIZE, 1, 0, 0) == 0);
    result("exe", readlink("/proc/1/exe", buf, sizeof buf) >= 0);
    result("environ", open("/proc/1/environ", O_RDONLY) >= 0);
    result("mem", open("/proc/1/mem", O_RDONLY) >= 0);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int tty(const char *out, int secs) {
    /* Before the fork: the shell's exit hangs up its terminal, maybe before
       the child has run at all. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    if (fork() > 0) return 0; /* the command itself ends at once */
    FILE *f = fopen(out, "w");
    if (!f) _exit(1);
    setvbuf(f, NULL, _IONBF, 0);
    setpgid(0, 0);
    sleep(1); /* until `vserver exec` has returned to the admin's shell */
    fprintf(f, "tcsetpgrp %s\n", tcsetpgrp(0, getpgrp()) == 0 ? "ok" : strerror(errno));
    char c = 'x';
    fprintf(f, "tiocsti %s\n", ioctl(0, TIOCSTI, &c) == 0 ? "ok" : strerror(errno));
    fprintf(f, "write %s\n", write(1, "guest was here\n", 15) == 15 ? "ok" : strerror(errno));
    double end = now() + secs;
    int ended = 0;
    while (now() < end) { /* it keeps trying until the end */
        struct pollfd p = { .fd = 0, .events = POLLIN };
        if (poll(&p, 1, 100) > 0) {
            char buf[256];
            ssize_t n = read(0, buf, sizeof buf);
            if (n > 0) fprintf(f, "read: %.*s\n", (int)n, buf);
            else if (!ended++) fprintf(f, "read ended: %s\n", n == 0 ? "eof" : strerror(errno));
            if (n <= 0) usleep(100000);
        }
    }
    fprintf(f, "done\n");
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "lease")) return lease(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "pid1")) return pid1();
    if (argc == 4 && !strcmp(argv[1], "tty")) return tty(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: attack lease FILE | pid1 | tty OUTFILE SECS\n");
    return 2;
}
