/* Tries to open a raw ICMP socket and says whether it could. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(void) {
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (s < 0) {
        printf("raw refused: %s\n", strerror(errno));
        return 1;
    }
    printf("raw allowed\n");
    return 0;
}
