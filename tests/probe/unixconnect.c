/* Connects to a unix socket and says what happened: an abstract name when
 * the argument starts with '@' (as ss(8) prints them), else a path. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len;
    if (argv[1][0] == '@') {
        size_t n = strlen(argv[1] + 1);
        memcpy(a.sun_path + 1, argv[1] + 1, n);
        len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
    } else {
        strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
        len = sizeof a;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, len) != 0) {
        printf("refused: %s\n", strerror(errno));
        return 1;
    }
    printf("connected\n");
    return 0;
}
