/* A hostile process inside a unified guest, for the copy-on-write tests.
 *
 *   cowattack fds SECONDS PATH...   open each PATH read-only, then for
 *       SECONDS keep trying to change the inodes behind those descriptors:
 *       fchmod, fchown, fsetxattr, and a reopen for writing through
 *       /proc/self/fd. The supervisor never sees these calls; only the
 *       immutable flag stops them, and it is only ever off while every guest
 *       is frozen. Prints "breaches N": how many of them succeeded.
 *   cowattack swap SECONDS A B      exchange two names as fast as possible
 *       (a directory of unified files and a look-alike), so that what the
 *       supervisor looked at is not what the kernel then finds.
 *   cowattack poke SECONDS PATH...  chmod, append to, touch the PATHs in a
 *       loop (through the supervisor; allowed, on private copies).
 *   cowattack setxattr PATH NAME VALUE
 *   cowattack getxattr PATH NAME    prints the value, or the error
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int fds_attack(double secs, int n, char **paths) {
    int fds[4096];
    int count = 0;
    for (int i = 0; i < n && count < 4096; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd >= 0) fds[count++] = fd;
    }
    long breaches = 0, tries = 0;
    double end = now() + secs;
    char proc[64];
    while (now() < end) {
        for (int i = 0; i < count; i++) {
            tries++;
            if (fchmod(fds[i], 04777) == 0) { breaches++; fprintf(stderr, "fchmod fd %d succeeded\n", fds[i]); }
            if (fchown(fds[i], 4242, 4242) == 0) { breaches++; fprintf(stderr, "fchown fd %d succeeded\n", fds[i]); }
            if (fsetxattr(fds[i], "user.pwned", "1", 1, 0) == 0) { breaches++; fprintf(stderr, "fsetxattr fd %d succeeded\n", fds[i]); }
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fds[i]);
            int w = open(proc, O_WRONLY | O_APPEND | O_NONBLOCK);
            if (w >= 0) {
                breaches++;
                fprintf(stderr, "reopen of fd %d for writing succeeded\n", fds[i]);
                if (write(w, "pwned\n", 6) > 0) breaches++;
                close(w);
            }
        }
    }
    printf("descriptors %d tries %ld breaches %ld\n", count, tries, breaches);
    return 0;
}

static int swap(double secs, const char *a, const char *b) {
    long n = 0;
    double end = now() + secs;
    while (now() < end) {
        if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) n++;
    }
    printf("swaps %ld\n", n);
    return 0;
}

static int poke(double secs, int n, char **paths) {
    long ok = 0, tries = 0;
    double end = now() + secs;
    while (now() < end) {
        for (int i = 0; i < n; i++) {
            tries++;
            if (chmod(paths[i], 0600) == 0) ok++;
            int fd = open(paths[i], O_WRONLY | O_APPEND);
            if (fd >= 0) { if (write(fd, "x", 1) == 1) ok++; close(fd); }
            if (utimensat(AT_FDCWD, paths[i], NULL, 0) == 0) ok++;
        }
    }
    printf("pokes %ld ok %ld\n", tries, ok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "fds")) return fds_attack(atof(argv[2]), argc - 3, argv + 3);
    if (argc == 5 && !strcmp(argv[1], "swap")) return swap(atof(argv[2]), argv[3], argv[4]);
    if (argc >= 4 && !strcmp(argv[1], "poke")) return poke(atof(argv[2]), argc - 3, argv + 3);
    if (argc == 5 && !strcmp(argv[1], "setxattr")) {
        if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) { perror("setxattr"); return 1; }
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "getxattr")) {
        char buf[256];
        ssize_t n = getxattr(argv[2], argv[3], buf, sizeof buf - 1);
        if (n < 0) { printf("error %s\n", strerror(errno)); return 1; }
        buf[n] = 0;
        printf("value %s\n", buf);
        return 0;
    }
    fprintf(stderr, "usage: cowattack fds|swap|poke|setxattr|getxattr ...\n");
    return 2;
}
