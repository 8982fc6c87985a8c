/* One ICMP echo through an unprivileged ping socket (SOCK_DGRAM,
 * IPPROTO_ICMP), as iputils' ping does without CAP_NET_RAW. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (s < 0) {
        printf("ping refused: %s\n", strerror(errno));
        return 1;
    }
    struct timeval tv = {.tv_sec = 3};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    struct icmphdr req = {.type = ICMP_ECHO, .un.echo.sequence = htons(1)};
    if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        printf("ping send: %s\n", strerror(errno));
        return 1;
    }
    char buf[256];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < (ssize_t)sizeof(struct icmphdr) || ((struct icmphdr *)buf)->type != ICMP_ECHOREPLY) {
        printf("ping no reply: %s\n", strerror(errno));
        return 1;
    }
    printf("ping ok\n");
    return 0;
}
