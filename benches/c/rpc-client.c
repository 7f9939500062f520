/*
 * An independent ttrpc client for the RPC benchmarks (issue 17), written against the wire
 * format (docs/wire.md), not against our crates: image classification as a Genop with one
 * pre-encoded request per call, sent with one writev, the whole response read before the
 * next call (with one read where the server wrote it whole: frames are taken from what a read
 * brought, as a buffered client does, so that both modes make the same system calls). Against the agent (`agent` mode) it first creates a session; against the raw
 * echo server (`raw` mode, benches/c/echo-server.c) it sends the same bytes and reads a
 * reply of the size the agent answers with, so both modes move the same bytes.
 *
 *   cc -O2 -pthread -o rpc-client benches/c/rpc-client.c
 *   rpc-client agent|raw SOCKET_PATH IMAGE_BYTES CALLS CONNECTIONS [REPLY_BYTES]
 *
 * Prints one line: mode, connections, calls per connection, p50 and p99 latency (us) over
 * all calls, aggregate calls/s, and the reply size (frame body bytes).
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
#include <time.h>
#include <unistd.h>

#define SERVICE "vaccel.sync.agent.AgentService"
#define OUT_BYTES 512 /* each of the two write arguments */
#define WARMUP 50

struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void die(const char *what)
{
    fprintf(stderr, "rpc-client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("realloc");
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    put(b, tmp, n);
}

static void key(struct buf *b, unsigned field, unsigned wire) { varint(b, (field << 3) | wire); }

static void bytes_field(struct buf *b, unsigned field, const void *p, size_t n)
{
    key(b, field, 2);
    varint(b, n);
    put(b, p, n);
}

/* vaccel.genop.Arg{buf, size, arg_type} */
static void genop_arg(struct buf *b, unsigned field, const void *p, size_t n, unsigned type)
{
    struct buf a = {0};
    bytes_field(&a, 1, p, n);
    key(&a, 2, 0);
    varint(&a, n);
    key(&a, 3, 0);
    varint(&a, type);
    bytes_field(b, field, a.p, a.len);
    free(a.p);
}

/* grpc.Request{service, method, payload} in a REQUEST frame: header in h, body in body. */
static void request(struct buf *body, uint8_t h[10], const char *method, const struct buf *payload,
                    uint32_t stream_id)
{
    bytes_field(body, 1, SERVICE, strlen(SERVICE));
    bytes_field(body, 2, method, strlen(method));
    bytes_field(body, 3, payload->p, payload->len);
    uint32_t len = (uint32_t)body->len;
    h[0] = len >> 24, h[1] = len >> 16, h[2] = len >> 8, h[3] = len;
    h[4] = stream_id >> 24, h[5] = stream_id >> 16, h[6] = stream_id >> 8, h[7] = stream_id;
    h[8] = 1; /* REQUEST */
    h[9] = 0;
}

static void writev_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("writev");
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

/* Bytes read and not yet taken: [start, end) of p. */
struct rbuf {
    uint8_t *p;
    size_t cap, start, end;
};

/* Makes at least n bytes available from r->start, reading as much as the socket has. */
static void fill(int fd, struct rbuf *r, size_t n)
{
    if (r->end - r->start >= n)
        return;
    memmove(r->p, r->p + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    if (n > r->cap) {
        r->cap = n;
        r->p = realloc(r->p, n);
        if (!r->p)
            die("realloc");
    }
    while (r->end < n) {
        ssize_t got = read(fd, r->p + r->end, r->cap - r->end);
        if (got == 0) {
            errno = ECONNRESET;
            die("read");
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        r->end += (size_t)got;
    }
}

/* Takes one frame from the connection; returns its body length, the body in *body. */
static size_t read_frame(int fd, struct rbuf *r, const uint8_t **body)
{
    fill(fd, r, 10);
    const uint8_t *h = r->p + r->start;
    size_t len = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    fill(fd, r, 10 + len);
    *body = r->p + r->start + 10;
    r->start += 10 + len;
    return len;
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    return fd;
}

/* CreateSession and the session id from its response (grpc.Response.payload, field 2:
 * CreateResponse.session_id, field 1). */
static uint64_t create_session(int fd, struct rbuf *rx)
{
    struct buf payload = {0}, body = {0};
    uint8_t h[10];
    key(&payload, 1, 0);
    varint(&payload, 0); /* flags = 0, spelled out so the payload is not empty */
    request(&body, h, "CreateSession", &payload, 1);
    struct iovec iov[2] = {{h, 10}, {body.p, body.len}};
    writev_all(fd, iov, 2);
    const uint8_t *p;
    size_t n = read_frame(fd, rx, &p);
    free(payload.p), free(body.p);
    /* Walk grpc.Response for field 2, then CreateResponse for field 1. */
    const uint8_t *end = p + n;
    while (p < end) {
        unsigned k = *p++;
        uint64_t len = 0;
        int shift = 0;
        while (p < end) {
            uint8_t c = *p++;
            len |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80))
                break;
        }
        if (k == 0x12 && p + len <= end && len >= 2 && p[0] == 0x08) {
            uint64_t id = 0;
            shift = 0;
            for (const uint8_t *q = p + 1; q < p + len; q++) {
                id |= (uint64_t)(*q & 0x7f) << shift;
                shift += 7;
                if (!(*q & 0x80))
                    break;
            }
            return id;
        }
        p += len;
    }
    fprintf(stderr, "rpc-client: no session id in the CreateSession response\n");
    exit(1);
}

struct job {
    int agent;
    const char *path;
    size_t image, calls, reply;
    pthread_barrier_t *start;
    double *lat;
    size_t replied;
};

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void *client(void *arg)
{
    struct job *j = arg;
    int fd = connect_to(j->path);
    struct rbuf rx = {malloc(64 << 10), 64 << 10, 0, 0};
    if (!rx.p)
        die("malloc");
    uint64_t session = j->agent ? create_session(fd, &rx) : 1;
    uint8_t op = 3; /* VACCEL_OP_IMAGE_CLASSIFY */
    uint8_t *image = malloc(j->image), *out = calloc(1, OUT_BYTES);
    memset(image, 0x5a, j->image);
    struct buf payload = {0}, body = {0};
    key(&payload, 1, 0);
    varint(&payload, session);
    genop_arg(&payload, 2, &op, 1, 9 /* UINT8 */);
    genop_arg(&payload, 2, image, j->image, 28 /* BUFFER */);
    genop_arg(&payload, 3, out, OUT_BYTES, 26 /* UCHAR_ARRAY */);
    genop_arg(&payload, 3, out, OUT_BYTES, 26);
    uint8_t h[10];
    request(&body, h, "Genop", &payload, 3);
    pthread_barrier_wait(j->start);
    for (size_t i = 0; i < j->calls + WARMUP; i++) {
        struct iovec iov[2] = {{h, 10}, {body.p, body.len}};
        double t = now_us();
        writev_all(fd, iov, 2);
        if (j->agent) {
            const uint8_t *reply;
            j->replied = read_frame(fd, &rx, &reply);
        } else {
            /* The echo server's reply: the agent's size, taken whole as the agent's frame is. */
            fill(fd, &rx, j->reply + 10);
            rx.start += j->reply + 10;
            j->replied = j->reply;
        }
        if (i >= WARMUP)
            j->lat[i - WARMUP] = now_us() - t;
    }
    close(fd);
    free(payload.p), free(body.p), free(rx.p), free(image), free(out);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s agent|raw SOCKET_PATH IMAGE_BYTES CALLS CONNECTIONS [REPLY_BYTES]\n",
                argv[0]);
        return 2;
    }
    int agent = strcmp(argv[1], "agent") == 0;
    size_t image = strtoul(argv[3], NULL, 10), calls = strtoul(argv[4], NULL, 10);
    size_t conns = strtoul(argv[5], NULL, 10), reply = argc > 6 ? strtoul(argv[6], NULL, 10) : 0;
    if (!agent && reply == 0) {
        fprintf(stderr, "rpc-client: raw mode needs REPLY_BYTES (agent mode prints them)\n");
        return 2;
    }
    if (conns == 0 || calls == 0 || image == 0)
        return 2;
    double *lat = calloc(conns * calls, sizeof *lat);
    struct job *jobs = calloc(conns, sizeof *jobs);
    pthread_t *th = calloc(conns, sizeof *th);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)conns + 1);
    for (size_t i = 0; i < conns; i++) {
        jobs[i] = (struct job){agent, argv[2], image, calls, reply, &start, lat + i * calls, 0};
        if (pthread_create(&th[i], NULL, client, &jobs[i]) != 0)
            die("pthread_create");
    }
    pthread_barrier_wait(&start);
    double t0 = now_us();
    for (size_t i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    double wall = now_us() - t0;
    size_t n = conns * calls;
    qsort(lat, n, sizeof *lat, cmp);
    printf("%s connections=%zu calls=%zu p50_us=%.1f p99_us=%.1f calls_per_s=%.0f reply_bytes=%zu\n",
           argv[1], conns, calls, lat[n / 2], lat[(size_t)((double)(n - 1) * 0.99)],
           (double)(n + conns * WARMUP) / wall * 1e6, jobs[0].replied);
    return 0;
}
