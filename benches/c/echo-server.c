/*
 * The raw baseline for benches/c/rpc-client.c: a unix-socket server that reads one ttrpc
 * frame (10-byte header, then the body its length announces) and answers with a fixed
 * reply of REPLY_BYTES plus a 10-byte header, one thread per connection. It parses nothing
 * else: the round trip of the same bytes with no protocol work.
 *
 * With a third argument `vectored` it makes the agent's system calls instead: one recvmsg
 * with room for passed descriptors into a 64 KiB read-ahead buffer, and one writev of the
 * header and the reply, into which it copies the request's last 1 KiB as the agent copies
 * the write arguments. That sizes what the agent's way of reading and writing costs, apart
 * from its protocol work.
 *
 *   cc -O2 -pthread -o echo-server benches/c/echo-server.c
 *   echo-server SOCKET_PATH REPLY_BYTES [vectored]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static size_t reply_len;
static int vectored;

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

/* The frame's length from its header (the first 4 bytes, big-endian). */
static size_t frame_len(const uint8_t *h)
{
    return 10 + (((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3]);
}

static void *serve_vectored(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 1 << 16, have = 0;
    uint8_t *buf = malloc(cap), *reply = calloc(1, reply_len + 10);
    char cmsg[CMSG_SPACE(sizeof(int) * 253)];
    uint32_t len = (uint32_t)reply_len;
    reply[0] = len >> 24, reply[1] = len >> 16, reply[2] = len >> 8, reply[3] = len;
    reply[8] = 2; /* RESPONSE */
    for (;;) {
        while (have < 10 || have < frame_len(buf)) {
            if (have == cap || (have >= 10 && frame_len(buf) > cap))
                goto out; /* small frames only */
            struct iovec iov = {buf + have, cap - have};
            struct msghdr m = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cmsg, .msg_controllen = sizeof cmsg};
            ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        size_t n = frame_len(buf);
        memcpy(reply + 4, buf + 4, 4); /* the stream id */
        if (n >= 1024 + 10 && reply_len >= 1024 + 20)
            memcpy(reply + 20, buf + n - 1024, 1024);
        struct iovec out[2] = {{reply, 10}, {reply + 10, reply_len}};
        if (writev(fd, out, 2) < 0)
            goto out;
        memmove(buf, buf + n, have - n);
        have -= n;
    }
out:
    close(fd);
    free(buf), free(reply);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "vectored") == 0)) {
        fprintf(stderr, "usage: %s SOCKET_PATH REPLY_BYTES [vectored]\n", argv[0]);
        return 2;
    }
    reply_len = strtoul(argv[2], NULL, 10);
    vectored = argc == 4;
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
        if (pthread_create(&t, NULL, vectored ? serve_vectored : serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}
