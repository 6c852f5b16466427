// sse-trivial: the load tool's ceiling. Accepts SSE clients and, once --expect clients are
// connected and --warmup-ms passed, writes --events pre-made events at --rate to all of them,
// each "data:SEQ TS xxx\n\n" with a CLOCK_MONOTONIC timestamp, batched per 1 ms tick and
// chunk-framed, as fast as the kernel takes them. No Redis, no parsing: the floor a real broker
// can be compared with, measured by the same clients. Exits after the last event.
// --threads N writes each batch from N threads, each to its share of the clients, the way a
// server with N event loops does.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// The batch being written, shared with the writer threads; barriers start and end each batch.
static int *clients, count, threads = 1;
static char *batch;
static size_t length;
static long dropped;
static volatile int finished;
static pthread_barrier_t batch_ready, batch_written;

static void write_share(int share) {
    long short_writes = 0;
    for (int c = share; c < count; c += threads)
        if (clients[c] >= 0 && write(clients[c], batch, length) != (ssize_t)length) short_writes++;
    __atomic_add_fetch(&dropped, short_writes, __ATOMIC_RELAXED);
}

static void *writer(void *argument) {
    int share = (int)(long)argument;
    for (;;) {
        pthread_barrier_wait(&batch_ready);
        if (finished) return NULL;
        write_share(share);
        pthread_barrier_wait(&batch_written);
    }
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    int port = 0, expect = 1, size = 64, warmup_ms = 1000;
    long events = 1000;
    double rate = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--expect")) expect = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--events")) events = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup-ms")) warmup_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    signal(SIGPIPE, SIG_IGN);   // a client that left (or a port probe) must not end the run
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 4096)) {
        perror("listen");
        return 1;
    }
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    clients = calloc(20000, sizeof(int));
    const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    uint64_t ready_at = 0, started = 0, deadline = now_ns() + 300000000000ull;
    long sequence = 0;
    batch = malloc(4 << 20);
    if (threads < 1 || threads > 64) threads = 1;
    pthread_barrier_init(&batch_ready, NULL, (unsigned)threads);
    pthread_barrier_init(&batch_written, NULL, (unsigned)threads);
    pthread_t writers[64];
    for (long t = 1; t < threads; t++) pthread_create(&writers[t], NULL, writer, (void *)t);
    while (sequence < events && now_ns() < deadline) {
        struct epoll_event ready[256];
        int n = epoll_wait(epoll, ready, 256, 1);
        for (int k = 0; k < n; k++) {
            if (ready[k].data.fd == listener) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event client = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &client);
                }
            } else {
                // A client counts once it sent its request: a connection that only probes the
                // port (and closes) is dropped, never written to.
                int fd = ready[k].data.fd;
                char request[4096];
                ssize_t r = read(fd, request, sizeof request);
                if (r > 0 && count < 20000 && write(fd, head, sizeof head - 1) == (ssize_t)(sizeof head - 1)) {
                    clients[count++] = fd;
                } else if (r == 0) {
                    epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
                    close(fd);
                }
            }
        }
        uint64_t now = now_ns();
        if (!ready_at && count >= expect) ready_at = now + (uint64_t)warmup_ms * 1000000ull;
        if (!ready_at || now < ready_at) continue;
        if (!started) started = now;
        length = 0;
        while (sequence < events && started + (uint64_t)((double)sequence * 1e9 / rate) <= now && length < (4u << 20) - 8192) {
            char text[4096];
            int len = snprintf(text, sizeof text, "data:%ld %llu ", sequence, (unsigned long long)now_ns());
            while (len < size + 5 && len < (int)sizeof text - 3) text[len++] = 'x';
            text[len++] = '\n';
            text[len++] = '\n';
            length += (size_t)sprintf(batch + length, "%x\r\n", len);
            memcpy(batch + length, text, (size_t)len);
            length += (size_t)len;
            memcpy(batch + length, "\r\n", 2);
            length += 2;
            sequence++;
        }
        if (!length) continue;
        if (threads > 1) pthread_barrier_wait(&batch_ready);
        write_share(0);
        if (threads > 1) pthread_barrier_wait(&batch_written);
    }
    finished = 1;
    if (threads > 1) pthread_barrier_wait(&batch_ready);
    for (int t = 1; t < threads; t++) pthread_join(writers[t], NULL);
    fprintf(stderr, "sse-trivial: %ld events to %d clients, %ld short writes\n", sequence, count, dropped);
    sleep(2);
    return 0;
}
