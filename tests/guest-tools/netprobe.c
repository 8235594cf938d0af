/* Socket probe run inside a guest (static, no libc needed in the guest).
 *   netprobe bind ADDR PORT      bind; print "ok LOCAL:PORT" or "err ERRNO"
 *   netprobe serve PORT          bind 0.0.0.0:PORT, print the local address,
 *                                accept one connection, send "guest", exit
 *   netprobe serve-on ADDR PORT  the same on ADDR
 *   netprobe connect ADDR PORT   connect; print "ok LOCAL" then what came back
 *   netprobe ping x              open an ICMP datagram socket; "ok" or "err ERRNO"
 *   netprobe unix-serve NAME     listen on the abstract unix socket @NAME, print
 *                                "listening", accept one connection, send "guest"
 *   netprobe unix-connect NAME   connect to @NAME; "ok" then what came back, or "err ERRNO"
 * IPv4 only; that is all the tests need. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_in addr_of(const char *ip, const char *port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(port));
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void print_local(int fd, const char *prefix) {
    struct sockaddr_in l; socklen_t len = sizeof l;
    getsockname(fd, (struct sockaddr *)&l, &len);
    printf("%s %s:%d\n", prefix, inet_ntoa(l.sin_addr), ntohs(l.sin_port));
    fflush(stdout);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n > sizeof a->sun_path - 1) n = sizeof a->sun_path - 1;
    memcpy(a->sun_path + 1, name, n); /* sun_path[0] == 0: abstract */
    return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static int unix_probe(const char *cmd, const char *name) {
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (!strcmp(cmd, "unix-serve")) {
        if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 4) != 0) { printf("err %d\n", errno); return 1; }
        printf("listening\n");
        fflush(stdout);
        int c = accept(fd, NULL, NULL);
        if (c < 0) return 1;
        write(c, "guest", 5);
        close(c);
        return 0;
    }
    if (connect(fd, (struct sockaddr *)&a, len) != 0) { printf("err %d\n", errno); return 1; }
    printf("ok\n");
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0) printf("%s\n", buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    if (!strcmp(argv[1], "unix-serve") || !strcmp(argv[1], "unix-connect")) return unix_probe(argv[1], argv[2]);
    if (!strcmp(argv[1], "ping")) {
        int p = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
        if (p < 0) { printf("err %d\n", errno); return 1; }
        printf("ok\n");
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!strcmp(argv[1], "bind") && argc == 4) {
        struct sockaddr_in a = addr_of(argv[2], argv[3]);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { printf("err %d\n", errno); return 1; }
        print_local(fd, "ok");
        return 0;
    }
    if (!strcmp(argv[1], "serve") || (!strcmp(argv[1], "serve-on") && argc == 4)) {
        int on = !strcmp(argv[1], "serve-on");
        struct sockaddr_in a = on ? addr_of(argv[2], argv[3]) : addr_of("0.0.0.0", argv[2]);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0) { printf("err %d\n", errno); return 1; }
        print_local(fd, "listening");
        int c = accept(fd, NULL, NULL);
        if (c < 0) return 1;
        write(c, "guest", 5);
        close(c);
        return 0;
    }
    if (!strcmp(argv[1], "connect") && argc == 4) {
        struct sockaddr_in a = addr_of(argv[2], argv[3]);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { printf("err %d\n", errno); return 1; }
        print_local(fd, "ok");
        char buf[64] = {0};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) printf("%s\n", buf);
        return 0;
    }
    return 2;
}
