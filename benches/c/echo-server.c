/*
 * The raw baseline for benches/c/rpc-client.c: a unix-socket server that reads one ttrpc
 * frame (10-byte header, then the body its length announces) and answers with a fixed
 * reply of REPLY_BYTES plus a 10-byte header, one thread per connection. It parses nothing
 * else: the round trip of the same bytes with no protocol work.
 *
 *   cc -O2 -pthread -o echo-server benches/c/echo-server.c
 *   echo-server SOCKET_PATH REPLY_BYTES
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static size_t reply_len;

static int read_all(int fd, void *p, size_t n)
{
    uint8_t *q = p;
    while (n > 0) {
        ssize_t r = read(fd, q, n);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        q += r, n -= (size_t)r;
    }
    return 0;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap), *reply = calloc(1, reply_len + 10);
    uint32_t len = (uint32_t)reply_len;
    reply[0] = len >> 24, reply[1] = len >> 16, reply[2] = len >> 8, reply[3] = len;
    reply[8] = 2; /* RESPONSE */
    for (;;) {
        uint8_t h[10];
        if (read_all(fd, h, 10) < 0)
            break;
        size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
        if (n > cap) {
            cap = n;
            free(buf);
            buf = malloc(cap);
            if (!buf)
                break;
        }
        if (read_all(fd, buf, n) < 0)
            break;
        memcpy(reply + 4, h + 4, 4); /* the stream id */
        size_t off = 0;
        while (off < reply_len + 10) {
            ssize_t w = write(fd, reply + off, reply_len + 10 - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto out;
            off += (size_t)w;
        }
    }
out:
    close(fd);
    free(buf), free(reply);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET_PATH REPLY_BYTES\n", argv[0]);
        return 2;
    }
    reply_len = strtoul(argv[2], NULL, 10);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    unlink(argv[1]);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0) {
        perror("echo-server");
        return 1;
    }
    for (;;) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            return 1;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}
