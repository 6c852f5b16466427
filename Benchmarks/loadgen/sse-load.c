// sse-load: the project's load tool. Opens N SSE connections (source addresses spread over
// 127.0.0.x), publishes M events at rate R (Redis PUBLISH, or HTTP POST for Nchan), each carrying
// a sequence number and a CLOCK_MONOTONIC publish timestamp, and reports deliveries per second,
// publish-to-receive latency percentiles, lost, duplicated and reordered events per connection, and the
// server's RSS and CPU. One JSON object on stdout. Loopback only; every loop is bounded.
//
// With --processes P the connections are shared out over P reader processes (connection i goes
// to process i % P), so one run can hold more streams than one process may open files; the
// parent publishes once every reader is connected and sums their counts and histograms.
//
// Per event it also notes when the first and the last of its clients got it, which splits the
// latency into the way to the server's first write (for a broker: Redis and its hand-offs) and
// the fan-out to every client.
//
// With --resume-ports P2,P3 it resumes as EventSource does (S5, the reconnect storm): each
// connection keeps the id of the last event it got; when its connection ends (EOF or reset: the
// node was killed) it waits the reconnection time (the server's `retry:` if it sent one, else
// --retry-ms) plus a uniform 0..--retry-jitter-ms, then connects to the next port of the list
// (round robin) with `Last-Event-ID`, and counts loss and duplicates across the reconnect by the
// payload's sequence as before. With --kill-pids the parent SIGKILLs those pids --kill-after-ms
// after publishing starts and measures the storm: from the kill until every closed connection
// got its first new event after reconnecting (its resume), the CPU of --pids (the surviving
// servers) and --redis-pids over that window. Every attempt has a deadline, every connection a
// bounded number of attempts.
//
// With --tls, --h2 or --h2c the streams go over HTTP/1.1 over TLS, HTTP/2 over TLS (--streams-per-conn
// streams per TCP connection) or HTTP/2 with prior knowledge, each stream counted as above: see
// sse-load-tls.c, included below (link with -lssl -lcrypto -lnghttp2). Plain HTTP/1.1 keeps its own loops.
//
// For a Redis Cluster (C1): --publish-command SPUBLISH publishes with sharded pub/sub instead of
// PUBLISH, and --channel-ports P0,P1,... names the Redis port each channel's events go to (channel
// k to the k-th port: its slot's master), one pipelined connection per distinct port. With
// --redis-pids the JSON also gives each of those pids' CPU over the publish window
// ("redis_cpu_window_seconds", in the order given).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, PLAIN };

// Events below the next expected one that may still arrive late (out of order, as concurrent
// publishes on different connections may) and count as reordered, not lost and duplicated.
enum { WINDOW = 1024 };

// A connection's place in a resume (--resume-ports): LIVE until it ends, then WAITING out the
// reconnection time, CONNECTING, REQUESTED (request sent, head awaited), AWAITING (200 received,
// its first new event awaited: the resume), LIVE again; GAVE_UP after MAX_ATTEMPTS.
enum { LIVE, WAITING, CONNECTING, REQUESTED, AWAITING, GAVE_UP };
enum { MAX_ATTEMPTS = 10, ID_CAP = 128 };

typedef struct {
    int fd, state, chunked, connected, closed;
    long chunk_left;
    int channel;
    int global;         // the connection's number in the whole run
    long next;          // next expected sequence number
    long received, lost, dups, reordered;
    unsigned char seen[WINDOW / 8];   // which of the last WINDOW events of this connection arrived
    char head[1024];
    int head_len;
    char line[512];
    int line_len;
    char size[32];
    int size_len;
    // The event being read: its data line's sequence and timestamp (-1: none yet), its type.
    long pending_seq;
    uint64_t pending_ts;
    char event[16];
    int event_len;
    // EventSource's last event ID buffer (set by `id:`) and string (set when an event is dispatched).
    char id_buffer[ID_CAP], last_id[ID_CAP];
    int retry_ms;       // the server's `retry:`, -1 when it sent none
    // Resume state.
    int phase, attempts, failures, closes, history_gaps, storm;
    uint32_t gen;       // invalidates timers of an earlier phase
    uint64_t first_close_ns, connect_ns, head_ns;
} Conn;

// One connection's resume, in memory shared with the parent (microseconds).
typedef struct {
    uint32_t from_close_us, from_connect_us, head_us, after_kill_us;
    uint16_t closes, attempts, failures, history_gaps;
    uint8_t closed, resumed, gap, at_head;
} Resume;

static const char *host = "127.0.0.1";
static int port_list[16], port_count = 0;
static int port = 5000, connections = 100, sources = 1, channels = 1, size = 64, warmup_ms = 1000, drain_ms = 3000;
static long events = 1000;
static double rate = 1000;
static const char *path = "/stream?channel=%s%d";
static const char *prefix = "bench";
static const char *publish = "redis";   // redis | http (Nchan) | broker (POST /publish) | none
static int publish_port = 6379;
static int publish_conns = 1;          // HTTP publish connections (broker mode), requests spread over them
static int publish_batch = 1;          // broker mode: events per POST /publish (a JSON array when > 1)
static const char *format = "flask";    // flask | plain (Redis payload)
static const char *label = "run";
static long wait_numsub = 0;            // wait until Redis shows this many subscribers of channel 0
static char pids[256] = "";
static char redis_pids[256] = "";       // --redis-pids: Redis's CPU, apart from the servers'
static const char *publish_command = "PUBLISH";   // --publish-command PUBLISH | SPUBLISH (Redis publishing)
enum { MAX_CHANNEL_PORTS = 1024, MAX_REDIS_PIDS = 16 };
static int channel_ports[MAX_CHANNEL_PORTS], channel_port_count = 0;   // --channel-ports: channel k's Redis port
// Resume mode (--resume-ports): where connections reconnect; the reconnection time when the server
// sends no `retry:`, the jitter added to it, and each attempt's deadline.
static int resume_ports[16], resume_port_count = 0;
static int retry_default_ms = 0, retry_jitter_ms = 1000, attempt_timeout_ms = 10000;
static char kill_pids[256] = "";        // --kill-pids: SIGKILLed --kill-after-ms into publishing
static int kill_after_ms = 5000, storm_timeout_ms = 60000, steady_ms = 2000;
static long resume_expect = -1;         // closes the storm waits for (default: every connection)
static Resume *resumes;                 // per connection, shared
static long *published_share;           // shared: events the publisher has had answered so far
static Conn *conns;
static uint64_t *histogram;             // latency in 10-microsecond buckets, up to 60 s
enum { BUCKET_US = 10, BUCKETS = 6000000 };
static uint64_t overflow, max_latency_us, samples;
// Per event sequence number, this reader's first and last receipt (latency in us + 1; 0: none).
static uint32_t *first_receipt, *last_receipt;
static long published, publish_errors;
static double publish_seconds;          // from the first publish to the last: the rate achieved

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void die(const char *format_text, ...) {
    va_list args;
    va_start(args, format_text);
    vfprintf(stderr, format_text, args);
    va_end(args);
    fputc('\n', stderr);
    exit(1);
}

// ---- server resource readings from /proc ----
// Reads /proc/PID/NAME of every pid in `list` (comma-separated: --pids, --redis-pids) and adds up
// what `parse` takes from each file.
static double sum_over_pids(const char *list, const char *name, double (*parse)(char *text)) {
    double total = 0;
    char copy[256], *rest = NULL;
    snprintf(copy, sizeof copy, "%s", list);
    for (char *pid = strtok_r(copy, ",", &rest); pid; pid = strtok_r(NULL, ",", &rest)) {
        char file[64], text[4096];
        snprintf(file, sizeof file, "/proc/%s/%s", pid, name);
        FILE *f = fopen(file, "r");
        if (!f) continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        total += parse(text);
    }
    return total;
}

static double rss_kb_of(char *status) {
    char *line = strstr(status, "VmRSS:");
    return line ? atof(line + 6) : 0;
}

static double cpu_seconds_of(char *stat) {
    char *p = strrchr(stat, ')');
    if (!p) return 0;
    unsigned long utime = 0, stime = 0;
    // fields after ")": state(3) ... utime(14) stime(15)
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

static long read_rss_kb(void) { return (long)sum_over_pids(pids, "status", rss_kb_of); }

static double read_cpu_seconds(void) { return sum_over_pids(pids, "stat", cpu_seconds_of); }

static double read_redis_cpu_seconds(void) { return sum_over_pids(redis_pids, "stat", cpu_seconds_of); }

// Each --redis-pids pid's CPU seconds, in the order given; returns how many.
static int read_redis_cpu_each(double *out) {
    char copy[256], *rest = NULL;
    int n = 0;
    snprintf(copy, sizeof copy, "%s", redis_pids);
    for (char *pid = strtok_r(copy, ",", &rest); pid && n < MAX_REDIS_PIDS; pid = strtok_r(NULL, ",", &rest))
        out[n++] = sum_over_pids(pid, "stat", cpu_seconds_of);
    return n;
}

// ---- receiving ----
static void note_resume(Conn *c, long seq, uint64_t now);

// One event's payload: "SEQ TS ..." (its sequence number and publish time).
static void account(Conn *c, long seq, uint64_t ts) {
    uint64_t now = now_ns();
    uint64_t us = now > ts ? (now - ts) / 1000 : 0;
    if (us / BUCKET_US < BUCKETS) histogram[us / BUCKET_US]++; else overflow++;
    if (us > max_latency_us) max_latency_us = us;
    samples++;
    if (seq >= 0 && seq < events) {
        uint32_t mark = us < UINT32_MAX - 1 ? (uint32_t)us + 1 : UINT32_MAX;
        if (!first_receipt[seq] || mark < first_receipt[seq]) first_receipt[seq] = mark;
        if (mark > last_receipt[seq]) last_receipt[seq] = mark;
    }
    if (c->phase == AWAITING && seq >= c->next) note_resume(c, seq, now);
    long index = seq / channels, next = c->next / channels;
    if (seq >= c->next) {
        if (seq > c->next) {
            c->lost += index - next;
            for (long k = next; k < index && k < next + WINDOW; k++) c->seen[(k % WINDOW) / 8] &= (unsigned char)~(1u << (k % 8));
        }
        c->seen[(index % WINDOW) / 8] |= (unsigned char)(1u << (index % 8));
        c->received++;
        c->next = seq + channels;
    } else if (next - index <= WINDOW && !(c->seen[(index % WINDOW) / 8] & (1u << (index % 8)))) {
        c->seen[(index % WINDOW) / 8] |= (unsigned char)(1u << (index % 8));   // late, not lost
        c->lost--;
        c->received++;
        c->reordered++;
    } else c->dups++;
}

// A data field: "SEQ TS ..." (Nchan puts a space after the colon, taken off already).
static void on_data(Conn *c, const char *value, int len) {
    int i = 0;
    long seq = 0;
    int digits = 0;
    while (i < len && value[i] >= '0' && value[i] <= '9') { seq = seq * 10 + (value[i++] - '0'); digits++; }
    if (!digits || i >= len || value[i] != ' ') return;
    i++;
    uint64_t ts = 0;
    while (i < len && value[i] >= '0' && value[i] <= '9') ts = ts * 10 + (uint64_t)(value[i++] - '0');
    c->pending_seq = seq;
    c->pending_ts = ts;
}

// An empty line: the event is dispatched, as EventSource does (the broker writes `id:` after
// `data:`, so an event counts only once it is complete, with its id).
static void dispatch(Conn *c) {
    memcpy(c->last_id, c->id_buffer, ID_CAP);
    if (c->event_len == 11 && !memcmp(c->event, "history-gap", 11)) c->history_gaps++;
    if (c->pending_seq >= 0) account(c, c->pending_seq, c->pending_ts);
    c->pending_seq = -1;
    c->event_len = 0;
}

// One line of the stream, by EventSource's rules for the fields the tool needs.
static void on_line(Conn *c, const char *line, int len) {
    if (!len) { dispatch(c); return; }
    if (line[0] == ':') return;   // a comment (heartbeat)
    const char *colon = memchr(line, ':', (size_t)len);
    int name_len = colon ? (int)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    int value_len = len - name_len - (colon ? 1 : 0);
    if (value_len > 0 && value[0] == ' ') { value++; value_len--; }
    if (name_len == 4 && !memcmp(line, "data", 4)) on_data(c, value, value_len);
    else if (name_len == 2 && !memcmp(line, "id", 2)) {
        if (value_len < ID_CAP && !memchr(value, 0, (size_t)value_len)) {
            memcpy(c->id_buffer, value, (size_t)value_len);
            c->id_buffer[value_len] = 0;
        }
    } else if (name_len == 5 && !memcmp(line, "event", 5)) {
        c->event_len = value_len < (int)sizeof c->event ? value_len : (int)sizeof c->event - 1;
        memcpy(c->event, value, (size_t)c->event_len);
    } else if (name_len == 5 && !memcmp(line, "retry", 5)) {
        int ms = 0, k = 0;
        while (k < value_len && k < 9 && value[k] >= '0' && value[k] <= '9') ms = ms * 10 + (value[k++] - '0');
        if (k && k == value_len) c->retry_ms = ms;
    }
}

static void feed_sse(Conn *c, const char *data, long n) {
    for (long k = 0; k < n; k++) {
        char ch = data[k];
        if (ch == '\n') {
            on_line(c, c->line, c->line_len);
            c->line_len = 0;
        } else if (ch != '\r' && c->line_len < (int)sizeof c->line - 1) {
            c->line[c->line_len++] = ch;
        }
    }
}

// Returns -1 when the response is not a 200 (its head is in c->head), else 0.
static int feed(Conn *c, char *data, long n) {
    long k = 0;
    while (k < n) {
        switch (c->state) {
        case HEAD:
            while (k < n && c->state == HEAD) {
                if (c->head_len < (int)sizeof c->head - 1) c->head[c->head_len++] = data[k];
                k++;
                if (c->head_len >= 4 && !memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4)) {
                    c->head[c->head_len] = 0;
                    if (c->head_len < 12 || strncmp(c->head + 9, "200", 3)) return -1;
                    c->chunked = strcasestr(c->head, "transfer-encoding: chunked") != NULL;
                    c->state = c->chunked ? CHUNK_SIZE : PLAIN;
                    c->connected = 1;
                    if (c->phase == REQUESTED) {
                        c->phase = AWAITING;
                        c->head_ns = now_ns();
                        // Nothing to replay: it has every event published so far. Resumed now.
                        if (c->next >= __atomic_load_n(published_share, __ATOMIC_ACQUIRE)) note_resume(c, c->next, c->head_ns);
                    }
                }
            }
            break;
        case PLAIN:
            feed_sse(c, data + k, n - k);
            k = n;
            break;
        case CHUNK_SIZE:
            if (data[k] == '\n') {
                c->size[c->size_len] = 0;
                c->chunk_left = strtol(c->size, NULL, 16);
                c->size_len = 0;
                c->state = c->chunk_left ? CHUNK_DATA : CHUNK_CRLF;
            } else if (data[k] != '\r' && c->size_len < (int)sizeof c->size - 1) {
                c->size[c->size_len++] = data[k];
            }
            k++;
            break;
        case CHUNK_DATA: {
            long take = n - k < c->chunk_left ? n - k : c->chunk_left;
            feed_sse(c, data + k, take);
            k += take;
            c->chunk_left -= take;
            if (!c->chunk_left) { c->state = CHUNK_CRLF; c->chunk_left = 2; }
            break;
        }
        case CHUNK_CRLF:
            if (data[k] == '\n') c->state = CHUNK_SIZE;
            k++;
            break;
        }
    }
    return 0;
}

// ---- publishing ----
static int payload(char *out, size_t cap, long seq, int redis_format) {
    char data[4096];
    int len = snprintf(data, sizeof data, "%ld %llu ", seq, (unsigned long long)now_ns());
    while (len < size && len < (int)sizeof data - 1) data[len++] = 'x';
    data[len] = 0;
    if (redis_format && !strcmp(format, "flask")) return snprintf(out, cap, "{\"data\": \"%s\"}", data);
    return snprintf(out, cap, "%s", data);
}

static int connect_tcp(int to_port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(to_port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof address)) die("connect to %d: %s", to_port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

enum { BATCH_CONNS = 16, BATCH_CAP = 65536 };
static char batch_body[BATCH_CONNS][BATCH_CAP];
static size_t batch_len[BATCH_CONNS];
static int batch_count[BATCH_CONNS];

// Writes connection k's gathered batch as one POST /publish request into out; returns its length.
static size_t flush_batch(char *out, size_t cap, const char *channel, int k) {
    batch_len[k] += (size_t)snprintf(batch_body[k] + batch_len[k], BATCH_CAP - batch_len[k], "]");
    int n = snprintf(out, cap,
        "POST /publish?channel=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        channel, batch_len[k], batch_body[k]);
    batch_len[k] = 0;
    batch_count[k] = 0;
    return n > 0 ? (size_t)n : 0;
}

static void *publisher(void *unused) {
    (void)unused;
    double interval = 1e9 / rate;
    // Redis publishing: one pipelined connection per distinct port (one, publish_port, without
    // --channel-ports); channel k's events go to connection channel_conn[k].
    redisContext *redis_conns[16];
    int redis_count = 0, *channel_conn = NULL, pending[16];
    int redis = !strcmp(publish, "redis");
    int broker = !strcmp(publish, "broker");
    enum { MAXC = BATCH_CONNS, CAP = BATCH_CAP };
    int http[MAXC];
    static char request[MAXC][CAP];
    size_t http_len[MAXC];
    int counts[MAXC];
    if (publish_conns < 1) publish_conns = 1;
    if (publish_conns > MAXC) publish_conns = MAXC;
    if (redis) {
        int conn_ports[16];
        channel_conn = calloc((size_t)channels, sizeof(int));
        if (!channel_conn) die("out of memory");
        for (int k = 0; k < channels; k++) {
            int want = channel_port_count ? channel_ports[k] : publish_port, found = 0;
            while (found < redis_count && conn_ports[found] != want) found++;
            if (found == redis_count) {
                if (redis_count == 16) die("--channel-ports: more than 16 distinct ports");
                conn_ports[redis_count] = want;
                redis_conns[redis_count] = redisConnect(host, want);
                if (!redis_conns[redis_count] || redis_conns[redis_count]->err) die("redis connect to %d failed", want);
                redis_count++;
            }
            channel_conn[k] = found;
        }
    } else {
        for (int k = 0; k < publish_conns; k++) http[k] = connect_tcp(publish_port);
    }
    char body[8192], channel[64], response[65536];
    uint64_t start = now_ns();
    long seq = 0;
    while (seq < events) {
        uint64_t now = now_ns();
        uint64_t due_at = start + (uint64_t)(seq * interval);
        if (now < due_at) {
            uint64_t wait = due_at - now;
            struct timespec pause = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
            nanosleep(&pause, NULL);
            continue;
        }
        int batch = 0;
        for (int k = 0; k < publish_conns; k++) { http_len[k] = 0; counts[k] = 0; }
        for (int k = 0; k < redis_count; k++) pending[k] = 0;
        while (seq < events && start + (uint64_t)(seq * interval) <= now && batch < 2000) {
            snprintf(channel, sizeof channel, "%s%ld", prefix, seq % channels);
            if (redis) {
                int len = payload(body, sizeof body, seq, 1);
                int k = channel_conn[seq % channels];
                redisAppendCommand(redis_conns[k], "%s %s %b", publish_command, channel, body, (size_t)len);
                pending[k]++;
            } else {
                int k = (int)((seq / publish_batch) % publish_conns);
                int len = payload(body, sizeof body, seq, broker);
                if (broker && publish_batch > 1) {
                    // A batch: consecutive events of one connection in one JSON array.
                    batch_len[k] += (size_t)snprintf(batch_body[k] + batch_len[k], CAP - batch_len[k], "%s%s",
                        batch_count[k] ? ", " : "[", body);
                    batch_count[k]++;
                    if (batch_count[k] >= publish_batch || batch_len[k] > CAP - 9000) {
                        http_len[k] += flush_batch(request[k] + http_len[k], CAP - http_len[k], channel, k);
                        counts[k]++;
                    }
                } else if (broker)
                    http_len[k] += (size_t)snprintf(request[k] + http_len[k], CAP - http_len[k],
                        "POST /publish?channel=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", channel, len, body);
                else
                    http_len[k] += (size_t)snprintf(request[k] + http_len[k], CAP - http_len[k],
                        "POST /pub/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", channel, len, body);
                if (!(broker && publish_batch > 1)) counts[k]++;
                if (http_len[k] > CAP - 9000) { seq++; batch++; break; }
            }
            seq++;
            batch++;
        }
        if (broker && publish_batch > 1)
            for (int k = 0; k < publish_conns; k++)
                if (batch_count[k]) {
                    http_len[k] += flush_batch(request[k] + http_len[k], CAP - http_len[k], channel, k);
                    counts[k]++;
                }
        if (redis) {
            for (int c = 0; c < redis_count; c++)
                for (int k = 0; k < pending[c]; k++) {
                    redisReply *reply;
                    if (redisGetReply(redis_conns[c], (void **)&reply) != REDIS_OK) die("redis publish failed");
                    if (reply->type != REDIS_REPLY_INTEGER) publish_errors++;   // e.g. -MOVED: SPUBLISH to the wrong shard
                    freeReplyObject(reply);
                }
        } else {
            for (int k = 0; k < publish_conns; k++)
                for (size_t sent = 0; sent < http_len[k];) {
                    ssize_t w = write(http[k], request[k] + sent, http_len[k] - sent);
                    if (w <= 0) die("http publish write failed");
                    sent += (size_t)w;
                }
            for (int c = 0; c < publish_conns; c++) {
                int answered = 0, have = 0;
                while (answered < counts[c]) {   // count complete responses (status line + headers + body)
                    ssize_t r = read(http[c], response + have, sizeof response - 1 - (size_t)have);
                    if (r <= 0) die("http publish read failed");
                    have += (int)r;
                    response[have] = 0;
                    char *p = response;
                    for (;;) {
                        char *end = strstr(p, "\r\n\r\n");
                        if (!end) break;
                        char *cl = strcasestr(p, "content-length:");
                        long length = cl && cl < end ? atol(cl + 15) : 0;
                        if (end + 4 + length > response + have) break;
                        if (strncmp(p + 9, "2", 1)) publish_errors++;
                        p = end + 4 + length;
                        answered++;
                    }
                    have -= (int)(p - response);
                    memmove(response, p, (size_t)have);
                }
            }
        }
        published = seq;
        if (published_share) __atomic_store_n(published_share, seq, __ATOMIC_RELEASE);
    }
    publish_seconds = (double)(now_ns() - start) / 1e9;
    if (redis) {
        for (int c = 0; c < redis_count; c++) redisFree(redis_conns[c]);
        free(channel_conn);
    } else for (int k = 0; k < publish_conns; k++) close(http[k]);
    return NULL;
}

// ---- reader processes ----
enum { MAX_PROCESSES = 16 };

// What one reader process reports back, in memory shared with the parent.
typedef struct {
    int connected;   // set once its connections are open
    long open_connections;
    double connect_seconds;
    long received, expected, lost, dups, reordered, closed, lossy;
    uint64_t samples, overflow, max_latency_us, last_receive;
    // Resume mode, updated as it goes (the parent watches the storm): connections that ended at
    // least once, connections resumed, the first end and the last resume (CLOCK_MONOTONIC ns).
    long closed_conns, resumed_conns;
    uint64_t first_close_ns, last_resume_ns;
    double cpu_seconds;   // this reader's own CPU from the start of publishing to the end of its count
} Part;

typedef struct {
    int go;                   // the parent starts publishing: count from here
    uint64_t publish_started;
    uint64_t drain_from;      // set when publishing is over: readers stop drain_ms later
    uint64_t kill_ns;         // when the parent killed --kill-pids
    long published;           // events published and answered so far
    Part part[MAX_PROCESSES];
} Shared;

static Shared *shared;
static int processes = 1;

// This reader's epoll, its report, and its timers: a binary min-heap of (due, connection, gen),
// one entry pushed per wait and per attempt, so at most 2 * MAX_ATTEMPTS per connection.
static int reader_epoll = -1;
static Part *reader_part;
typedef struct { uint64_t due; uint32_t conn, gen; } Timer;
static Timer *timers;
static long timer_count, timer_cap;
static uint64_t jitter_state = 0x9e3779b97f4a7c15ull;

static void timer_push(uint64_t due, uint32_t conn, uint32_t gen) {
    if (timer_count >= timer_cap) die("%s: timer heap full", label);
    long k = timer_count++;
    while (k > 0 && timers[(k - 1) / 2].due > due) { timers[k] = timers[(k - 1) / 2]; k = (k - 1) / 2; }
    timers[k] = (Timer){due, conn, gen};
}

static Timer timer_pop(void) {
    Timer top = timers[0], last = timers[--timer_count];
    long k = 0;
    for (;;) {
        long child = 2 * k + 1;
        if (child >= timer_count) break;
        if (child + 1 < timer_count && timers[child + 1].due < timers[child].due) child++;
        if (timers[child].due >= last.due) break;
        timers[k] = timers[child];
        k = child;
    }
    if (timer_count) timers[k] = last;
    return top;
}

static uint32_t jitter(void) {   // xorshift64
    jitter_state ^= jitter_state << 13;
    jitter_state ^= jitter_state >> 7;
    jitter_state ^= jitter_state << 17;
    return (uint32_t)(jitter_state >> 32);
}

// A nonblocking connect from source address 127.0.0.(1 + source % sources); the socket waits for
// EPOLLOUT with `slot` as its epoll data. Returns the socket, or -1.
static int open_socket(int source, uint32_t slot, int target_port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(source % sources));
    if (bind(fd, (struct sockaddr *)&from, sizeof from)) { close(fd); return -1; }
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(target_port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) && errno != EINPROGRESS) { close(fd); return -1; }
    struct epoll_event event = {.events = EPOLLOUT, .data.u32 = slot};
    epoll_ctl(reader_epoll, EPOLL_CTL_ADD, fd, &event);
    return fd;
}

// A nonblocking connect from the connection's source address; its socket waits for EPOLLOUT.
static int open_stream(Conn *c, uint32_t slot, int target_port) {
    c->fd = open_socket(c->global, slot, target_port);
    return c->fd < 0 ? -1 : 0;
}

// The connection's GET with `host_header` as its Host (with Last-Event-ID on a reconnect, when it
// has one); its length, or -1 when it does not fit.
static int format_request(char *request, size_t cap, Conn *c, const char *host_header) {
    char target[256];
    snprintf(target, sizeof target, path, prefix, c->channel);
    int len = c->attempts && c->last_id[0]
        ? snprintf(request, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nLast-Event-ID: %s\r\n\r\n", target, host_header, c->last_id)
        : snprintf(request, cap, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", target, host_header);
    return len > 0 && len < (int)cap ? len : -1;
}

// Sends the GET once connected.
static int send_request(Conn *c, uint32_t slot) {
    char request[512];
    int len = format_request(request, sizeof request, c, "127.0.0.1");
    if (len < 0 || write(c->fd, request, (size_t)len) != len) return -1;
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = slot};
    epoll_ctl(reader_epoll, EPOLL_CTL_MOD, c->fd, &event);
    return 0;
}

// The connection ended (EOF, reset) or an attempt failed (refused, not a 200, past its deadline).
// Without --resume-ports it stays closed; with it, it waits the reconnection time and tries again.
static void connection_ended(Conn *c, uint32_t slot, int failed_attempt) {
    if (c->fd >= 0) {
        epoll_ctl(reader_epoll, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (!resume_port_count) { c->closed = 1; return; }
    uint64_t now = now_ns();
    if (!c->storm) {
        c->storm = 1;
        c->first_close_ns = now;
        __atomic_add_fetch(&reader_part->closed_conns, 1, __ATOMIC_RELEASE);
        uint64_t first = __atomic_load_n(&reader_part->first_close_ns, __ATOMIC_ACQUIRE);
        if (!first || now < first) __atomic_store_n(&reader_part->first_close_ns, now, __ATOMIC_RELEASE);
    }
    if (failed_attempt) c->failures++; else c->closes++;
    if (c->attempts >= MAX_ATTEMPTS) { c->phase = GAVE_UP; return; }
    int base = c->retry_ms >= 0 ? c->retry_ms : retry_default_ms;
    uint64_t delay_ms = (uint64_t)base + (retry_jitter_ms > 0 ? jitter() % (uint32_t)(retry_jitter_ms + 1) : 0);
    c->phase = WAITING;
    timer_push(now + delay_ms * 1000000ull, slot, ++c->gen);
}

// A WAITING connection's time has come: a new attempt on the next resume port.
static void reconnect(Conn *c, uint32_t slot) {
    int target = resume_ports[(c->global + c->attempts) % resume_port_count];
    c->attempts++;
    c->state = HEAD;
    c->head_len = c->line_len = c->size_len = c->event_len = 0;
    c->chunk_left = 0;
    c->pending_seq = -1;
    memcpy(c->id_buffer, c->last_id, ID_CAP);
    c->connect_ns = now_ns();
    if (open_stream(c, slot, target)) { connection_ended(c, slot, 1); return; }
    c->phase = CONNECTING;
    timer_push(c->connect_ns + (uint64_t)attempt_timeout_ms * 1000000ull, slot, ++c->gen);
}

// The first new event after a reconnect (sequence at or past the next expected one), or its
// response head when it already had every event published by then: resumed.
static void note_resume(Conn *c, long seq, uint64_t now) {
    c->phase = LIVE;
    Resume *r = &resumes[c->global];
    if (!r->resumed) {
        r->resumed = 1;
        r->at_head = c->head_ns == now;
        uint64_t killed = __atomic_load_n(&shared->kill_ns, __ATOMIC_ACQUIRE);
        r->after_kill_us = killed && now > killed ? (uint32_t)((now - killed) / 1000) : 0;
        r->from_close_us = (uint32_t)((now - c->first_close_ns) / 1000);
        r->from_connect_us = (uint32_t)((now - c->connect_ns) / 1000);
        r->head_us = (uint32_t)((c->head_ns - c->connect_ns) / 1000);
        r->gap = seq > c->next;
        __atomic_add_fetch(&reader_part->resumed_conns, 1, __ATOMIC_RELEASE);
        if (now > __atomic_load_n(&reader_part->last_resume_ns, __ATOMIC_ACQUIRE))
            __atomic_store_n(&reader_part->last_resume_ns, now, __ATOMIC_RELEASE);
    }
}

static void run_timers(Conn *list) {
    uint64_t now = now_ns();
    while (timer_count && timers[0].due <= now) {
        Timer t = timer_pop();
        Conn *c = &list[t.conn];
        if (t.gen != c->gen) continue;   // an earlier phase's
        if (c->phase == WAITING) reconnect(c, t.conn);
        else if (c->phase == CONNECTING || c->phase == REQUESTED) connection_ended(c, t.conn, 1);   // past its deadline
    }
}

static void read_ready(int epoll, struct epoll_event *ready, Conn *list, uint64_t *last_receive, int timeout_ms) {
    if (timer_count) {
        run_timers(list);
        if (timer_count) {
            uint64_t now = now_ns(), due = timers[0].due;
            int until = due > now ? (int)((due - now) / 1000000ull) + 1 : 0;
            if (until < timeout_ms) timeout_ms = until;
        }
    }
    int n = epoll_wait(epoll, ready, 1024, timeout_ms);
    for (int k = 0; k < n; k++) {
        uint32_t slot = ready[k].data.u32;
        Conn *c = &list[slot];
        if (c->fd < 0) continue;
        if (c->phase == CONNECTING) {
            int error = 0;
            socklen_t size_of = sizeof error;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size_of);
            if (error || send_request(c, slot)) connection_ended(c, slot, 1);
            else c->phase = REQUESTED;
            continue;
        }
        char buffer[65536];
        for (;;) {
            ssize_t r = read(c->fd, buffer, sizeof buffer);
            if (r > 0) {
                if (feed(c, buffer, r) < 0) {
                    if (!resume_port_count) die("%s: connection got: %.60s", label, c->head);
                    connection_ended(c, slot, 1);   // a reconnect refused (503, ...): try again
                    break;
                }
                if (last_receive) *last_receive = now_ns();
                if (r < (ssize_t)sizeof buffer) break;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                if (!c->closed) connection_ended(c, slot, 0);
                break;
            } else {
                break;
            }
        }
    }
}

// Connection i of the whole run, before it connects.
static void init_conn(Conn *c, int i) {
    c->global = i;
    c->channel = i % channels;
    c->next = c->channel;
    c->pending_seq = -1;
    c->retry_ms = -1;
}

// The port connection (or TCP connection) i goes to.
static int port_of(int i) { return port_count ? port_list[i % port_count] : port; }

// TLS (OpenSSL) and HTTP/2 (nghttp2): their own connect and read loops, apart from the plain ones.
#include "sse-load-tls.c"

// Plain HTTP/1.1: opens this reader's `count` connections, each sends its GET; returns how many got
// their response head.
static int plain_connect_all(int index, int count, int epoll, struct epoll_event *ready) {
    int open_connections = 0, pending = 0;
    uint64_t connect_started = now_ns();
    for (int j = 0; j < count || pending > 0 || open_connections < count;) {
        while (j < count && pending < 400) {   // bounded in-flight connects
            int i = index + j * processes;     // the connection's number in the whole run
            Conn *c = &conns[j];
            init_conn(c, i);
            int target_port = port_of(i);
            if (open_stream(c, (uint32_t)j, target_port)) die("connect to %d: %s (connection %d)", target_port, strerror(errno), i);
            pending++;
            j++;
        }
        int n = epoll_wait(epoll, ready, 1024, 1000);
        for (int k = 0; k < n; k++) {
            Conn *c = &conns[ready[k].data.u32];
            if (ready[k].events & EPOLLOUT) {
                int error = 0;
                socklen_t size_of = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &size_of);
                if (error) die("connect: %s", strerror(error));
                if (send_request(c, ready[k].data.u32)) die("request write failed");
                pending--;   // TCP connected and request sent; the response head may come later
                continue;
            }
            if (ready[k].events & EPOLLIN) {
                char buffer[65536];
                ssize_t r = read(c->fd, buffer, sizeof buffer);
                if (r > 0) {
                    int was = c->connected;
                    if (feed(c, buffer, r) < 0) die("%s: connection got: %.60s", label, c->head);
                    if (!was && c->connected) open_connections++;
                } else if (r == 0) die("server closed connection %u during connect", ready[k].data.u32);
            }
        }
        if (now_ns() - connect_started > 120000000000ull) die("connecting took over 120 s (%d open)", open_connections);
        if (j >= count && pending == 0 && n == 0) {
            // Servers that send headers only with the first event (Flask-SSE): every request is
            // out and a second passed in silence, so the rest are open, waiting for their head.
            break;
        }
    }
    return open_connections;
}

static double own_cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// One reader process: opens connections index, index + P, index + 2P, ... and counts what they get.
static void run_part(int index) {
    Part *part = &shared->part[index];
    reader_part = part;
    int count = (connections - index + processes - 1) / processes;
    conns = calloc((size_t)count, sizeof(Conn));
    if (!conns) die("out of memory");
    if (resume_port_count) {
        timer_cap = (long)count * 2 * MAX_ATTEMPTS + 16;
        timers = calloc((size_t)timer_cap, sizeof(Timer));
        if (!timers) die("out of memory");
        jitter_state ^= (uint64_t)(index + 1) * 0x2545f4914f6cdd1dull;
    }
    int epoll = epoll_create1(0);
    reader_epoll = epoll;
    uint64_t connect_started = now_ns();
    struct epoll_event ready[1024];
    int open_connections = transport == TRANSPORT_PLAIN ? plain_connect_all(index, count, epoll, ready)
                                                        : tls_connect_all(index, count, epoll, ready);
    part->open_connections = open_connections;
    part->connect_seconds = (double)(now_ns() - connect_started) / 1e9;
    __atomic_store_n(&part->connected, 1, __ATOMIC_RELEASE);
    // Keep reading (heartbeats, late headers) until the parent starts publishing.
    uint64_t give_up = now_ns() + 300000000000ull;
    while (!__atomic_load_n(&shared->go, __ATOMIC_ACQUIRE)) {
        if (transport == TRANSPORT_PLAIN) read_ready(epoll, ready, conns, NULL, 20);
        else tls_read_ready(epoll, ready, NULL, 20);
        if (now_ns() > give_up) die("the parent never started publishing");
    }
    samples = 0;
    double cpu_at_go = own_cpu_seconds();
    long expected_total = 0;
    for (int j = 0; j < count; j++) expected_total += (events - conns[j].channel + channels - 1) / channels;
    uint64_t last_receive = shared->publish_started;
    for (;;) {
        if (transport == TRANSPORT_PLAIN) read_ready(epoll, ready, conns, &last_receive, 20);
        else tls_read_ready(epoll, ready, &last_receive, 20);
        uint64_t drain_from = __atomic_load_n(&shared->drain_from, __ATOMIC_ACQUIRE);
        if (drain_from) {
            long got = 0;
            for (int j = 0; j < count; j++) got += conns[j].received;
            if (got >= expected_total || now_ns() > drain_from + (uint64_t)drain_ms * 1000000ull) break;
        }
        if (now_ns() - shared->publish_started > 900000000000ull) die("run exceeded 900 s");
    }
    for (int j = 0; j < count; j++) {
        Conn *c = &conns[j];
        long expected = (events - c->channel + channels - 1) / channels;
        long missing = expected - c->received - c->lost;
        if (missing > 0) c->lost += missing;
        part->received += c->received;
        part->lost += c->lost;
        part->dups += c->dups;
        part->reordered += c->reordered;
        part->closed += c->closed;
        if (c->lost || c->dups) part->lossy++;
        if (resume_port_count) {
            Resume *r = &resumes[c->global];
            r->closed = (uint8_t)c->storm;
            r->closes = (uint16_t)c->closes;
            r->attempts = (uint16_t)c->attempts;
            r->failures = (uint16_t)c->failures;
            r->history_gaps = (uint16_t)(c->history_gaps < 65535 ? c->history_gaps : 65535);
        }
    }
    part->expected = expected_total;
    part->samples = samples;
    part->overflow = overflow;
    part->max_latency_us = max_latency_us;
    part->last_receive = last_receive;
    part->cpu_seconds = own_cpu_seconds() - cpu_at_go;
}

// ---- the storm (--kill-pids): watched by the parent on a thread beside the publisher ----
typedef struct {
    int killed, timed_out;
    uint64_t at[4];          // publishing started, the kill, every closed connection resumed, steady_ms later
    double broker_cpu[4], redis_cpu[4];
} Storm;
static Storm storm;
static int monitor_stop;     // the readers are done

static void storm_reading(int k) {
    storm.at[k] = now_ns();
    storm.broker_cpu[k] = read_cpu_seconds();
    storm.redis_cpu[k] = read_redis_cpu_seconds();
}

static long parts_sum(int resumed) {
    long total = 0;
    for (int k = 0; k < processes; k++)
        total += __atomic_load_n(resumed ? &shared->part[k].resumed_conns : &shared->part[k].closed_conns, __ATOMIC_ACQUIRE);
    return total;
}

static void *storm_monitor(void *unused) {
    (void)unused;
    storm_reading(0);
    uint64_t kill_at = shared->publish_started + (uint64_t)kill_after_ms * 1000000ull;
    while (now_ns() < kill_at) {
        if (__atomic_load_n(&monitor_stop, __ATOMIC_ACQUIRE)) return NULL;   // over before the kill
        usleep(1000);
    }
    storm_reading(1);
    char copy[256], *rest = NULL;
    snprintf(copy, sizeof copy, "%s", kill_pids);
    for (char *pid = strtok_r(copy, ",", &rest); pid; pid = strtok_r(NULL, ",", &rest))
        if (atoi(pid) > 1) kill((pid_t)atoi(pid), SIGKILL);
    storm.killed = 1;
    __atomic_store_n(&shared->kill_ns, storm.at[1], __ATOMIC_RELEASE);
    long expect = resume_expect >= 0 ? resume_expect : connections;
    uint64_t deadline = storm.at[1] + (uint64_t)storm_timeout_ms * 1000000ull;
    for (;;) {
        long closed = parts_sum(0), resumed = parts_sum(1);
        if (closed >= expect && resumed >= closed) break;
        if (now_ns() > deadline || __atomic_load_n(&monitor_stop, __ATOMIC_ACQUIRE)) { storm.timed_out = 1; break; }
        usleep(1000);
    }
    storm_reading(2);
    for (uint64_t until = storm.at[2] + (uint64_t)steady_ms * 1000000ull; now_ns() < until;) {
        if (__atomic_load_n(&monitor_stop, __ATOMIC_ACQUIRE)) break;
        usleep(1000);
    }
    storm_reading(3);
    return NULL;
}

static int compare_u32(const void *a, const void *b);

static double percentile_ms(uint32_t *values, long n, double at) {
    return n ? values[(long)(at * (double)(n - 1))] / 1000.0 : 0;
}

// The "resume" object of the JSON output: what the storm did to the connections, and its cost.
static void print_resume(void) {
    uint32_t *from_close = calloc((size_t)connections + 1, sizeof(uint32_t));
    uint32_t *from_connect = calloc((size_t)connections + 1, sizeof(uint32_t));
    uint32_t *head = calloc((size_t)connections + 1, sizeof(uint32_t));
    if (!from_close || !from_connect || !head) die("out of memory");
    long closed = 0, resumed = 0, gaps = 0, again = 0, attempts = 0, failures = 0, notices = 0, noticed = 0, gave_up = 0, at_head = 0;
    double window = storm.killed ? (double)(storm.at[2] - storm.at[1]) / 1e9 : 0, live_stream_seconds = 0;
    for (int i = 0; i < connections; i++) {
        Resume *r = &resumes[i];
        closed += r->closed;
        attempts += r->attempts;
        failures += r->failures;
        notices += r->history_gaps;
        noticed += r->history_gaps > 0;
        if (r->closes > 1 || r->failures) again++;
        if (r->closed && !r->resumed && r->attempts >= MAX_ATTEMPTS) gave_up++;
        if (!r->resumed) continue;
        gaps += r->gap;
        at_head += r->at_head;
        if (r->after_kill_us / 1e6 < window) live_stream_seconds += window - r->after_kill_us / 1e6;
        from_close[resumed] = r->from_close_us;
        from_connect[resumed] = r->from_connect_us;
        head[resumed] = r->head_us;
        resumed++;
    }
    qsort(from_close, (size_t)resumed, sizeof(uint32_t), compare_u32);
    qsort(from_connect, (size_t)resumed, sizeof(uint32_t), compare_u32);
    qsort(head, (size_t)resumed, sizeof(uint32_t), compare_u32);
    uint64_t first_close = 0, last_resume = 0;
    for (int k = 0; k < processes; k++) {
        Part *part = &shared->part[k];
        if (part->first_close_ns && (!first_close || part->first_close_ns < first_close)) first_close = part->first_close_ns;
        if (part->last_resume_ns > last_resume) last_resume = part->last_resume_ns;
    }
    double storm_seconds = first_close && last_resume > first_close ? (double)(last_resume - first_close) / 1e9 : 0;
    printf(", \"resume\": {\"retry_ms\": %d, \"retry_jitter_ms\": %d, \"closed_connections\": %ld, \"resumed\": %ld, \"resumed_at_head\": %ld, "
           "\"unresumed\": %ld, \"gave_up\": %ld, \"gap_resumes\": %ld, \"history_gap_notices\": %ld, \"connections_with_notice\": %ld, "
           "\"ended_more_than_once\": %ld, \"attempts\": %ld, \"failed_attempts\": %ld, \"storm_seconds\": %.3f, "
           "\"from_close_p50_ms\": %.1f, \"from_close_p99_ms\": %.1f, \"from_close_max_ms\": %.1f, "
           "\"from_connect_p50_ms\": %.1f, \"from_connect_p99_ms\": %.1f, \"from_connect_max_ms\": %.1f, "
           "\"head_p50_ms\": %.1f, \"head_p99_ms\": %.1f",
           retry_default_ms, retry_jitter_ms, closed, resumed, at_head, closed - resumed, gave_up, gaps, notices, noticed, again, attempts,
           failures, storm_seconds, percentile_ms(from_close, resumed, 0.5), percentile_ms(from_close, resumed, 0.99),
           resumed ? from_close[resumed - 1] / 1000.0 : 0, percentile_ms(from_connect, resumed, 0.5),
           percentile_ms(from_connect, resumed, 0.99), resumed ? from_connect[resumed - 1] / 1000.0 : 0,
           percentile_ms(head, resumed, 0.5), percentile_ms(head, resumed, 0.99));
    if (storm.killed) {
        double before = (double)(storm.at[1] - storm.at[0]) / 1e9, after = (double)(storm.at[3] - storm.at[2]) / 1e9;
        double broker = storm.broker_cpu[2] - storm.broker_cpu[1], redis = storm.redis_cpu[2] - storm.redis_cpu[1];
        // An estimate of the resumes' own CPU: the window's, less the rate before the kill over the
        // window and, per stream live in the window, what a live stream cost after the storm.
        double net[2];
        double *cpu[2] = {storm.broker_cpu, storm.redis_cpu};
        for (int k = 0; k < 2; k++) {
            double base = before > 0 ? (cpu[k][1] - cpu[k][0]) / before : 0;
            double per_stream = after > 0 && resumed ? ((cpu[k][3] - cpu[k][2]) / after - base) / (double)resumed : 0;
            if (per_stream < 0) per_stream = 0;
            net[k] = cpu[k][2] - cpu[k][1] - base * window - per_stream * live_stream_seconds;
            if (net[k] < 0) net[k] = 0;
        }
        printf(", \"live_stream_seconds\": %.1f, \"broker_cpu_us_per_resume_net\": %.1f, \"redis_cpu_us_per_resume_net\": %.1f",
               live_stream_seconds, resumed ? net[0] * 1e6 / resumed : 0, resumed ? net[1] * 1e6 / resumed : 0);
        printf(", \"kill_to_first_close_ms\": %.1f, \"kill_to_all_resumed_seconds\": %.3f, \"timed_out\": %s, "
               "\"broker_cpu_seconds\": %.3f, \"redis_cpu_seconds\": %.3f, \"broker_cpu_us_per_resume\": %.1f, "
               "\"redis_cpu_us_per_resume\": %.1f, \"broker_cpu_percent_before\": %.1f, \"broker_cpu_percent_storm\": %.1f, "
               "\"broker_cpu_percent_after\": %.1f, \"redis_cpu_percent_before\": %.1f, \"redis_cpu_percent_storm\": %.1f, "
               "\"redis_cpu_percent_after\": %.1f",
               first_close > storm.at[1] ? (double)(first_close - storm.at[1]) / 1e6 : 0, window,
               storm.timed_out ? "true" : "false", broker, redis, resumed ? broker * 1e6 / resumed : 0,
               resumed ? redis * 1e6 / resumed : 0,
               before > 0 ? (storm.broker_cpu[1] - storm.broker_cpu[0]) / before * 100 : 0,
               window > 0 ? broker / window * 100 : 0,
               after > 0 ? (storm.broker_cpu[3] - storm.broker_cpu[2]) / after * 100 : 0,
               before > 0 ? (storm.redis_cpu[1] - storm.redis_cpu[0]) / before * 100 : 0,
               window > 0 ? redis / window * 100 : 0,
               after > 0 ? (storm.redis_cpu[3] - storm.redis_cpu[2]) / after * 100 : 0);
    }
    printf("}");
    free(from_close);
    free(from_connect);
    free(head);
}

static pid_t children[MAX_PROCESSES];

static void stop_children(void) {
    for (int k = 0; k < processes; k++)
        if (children[k] > 0) kill(children[k], SIGKILL);
}

// Exits (after stopping the others) if a reader process failed; it said why on stderr.
static void check_children(void) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (int k = 0; k < processes; k++)
        if (children[k] == pid) children[k] = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        stop_children();
        die("%s: a reader process failed", label);
    }
}

// ---- main ----
// Reader k's receipts in the shared block: first receipts of every event, then last receipts.
static uint32_t *receipts_of(uint32_t *receipts, int k) { return receipts + (size_t)k * 2 * (size_t)events; }

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

// p50 and p99 over the events any client got of when their first and their last client got them.
static void event_receipts(uint32_t *receipts, double first[2], double last[2]) {
    uint32_t *firsts = calloc((size_t)events + 1, sizeof(uint32_t)), *lasts = calloc((size_t)events + 1, sizeof(uint32_t));
    if (!firsts || !lasts) die("out of memory");
    long n = 0;
    for (long seq = 0; seq < events; seq++) {
        uint32_t low = 0, high = 0;
        for (int k = 0; k < processes; k++) {
            uint32_t *part = receipts_of(receipts, k);
            if (part[seq] && (!low || part[seq] < low)) low = part[seq];
            if (part[events + seq] > high) high = part[events + seq];
        }
        if (low) { firsts[n] = low - 1; lasts[n] = high - 1; n++; }
    }
    qsort(firsts, (size_t)n, sizeof(uint32_t), compare_u32);
    qsort(lasts, (size_t)n, sizeof(uint32_t), compare_u32);
    double at[2] = {0.5, 0.99};
    for (int p = 0; p < 2; p++) {
        long index = n ? (long)(at[p] * (double)(n - 1)) : 0;
        first[p] = n ? firsts[index] / 1000.0 : 0;
        last[p] = n ? lasts[index] / 1000.0 : 0;
    }
    free(firsts);
    free(lasts);
}

static void usage(void) {
    fprintf(stderr,
        "sse-load --port P | --ports P1,P2 [--path '/stream?channel=%%s%%d'] [--connections N] [--sources S] [--channels K]\n"
        "         [--prefix bench] [--events M] [--rate R] [--size BYTES] [--publish redis|http|none]\n"
        "         [--publish-port P] [--publish-conns 1..16] [--publish-batch N] [--format flask|plain] [--pids 1,2] [--warmup-ms 1000] [--drain-ms 3000] [--label L]\n"
        "         [--wait-numsub N] [--processes P]\n"
        "  Redis Cluster publishing: [--publish-command PUBLISH|SPUBLISH] [--channel-ports P0,P1,... (one per channel)]\n"
        "         [--redis-pids 3,4,5 (each one's CPU over the publish window)]\n"
        "  resume (EventSource) mode, the reconnect storm:\n"
        "         --resume-ports P2,P3 [--retry-ms 0] [--retry-jitter-ms 1000] [--attempt-timeout-ms 10000]\n"
        "         [--kill-pids 1,2 --kill-after-ms 5000] [--storm-timeout-ms 60000] [--steady-ms 2000]\n"
        "         [--resume-expect N (default: every connection)] [--redis-pids 3]\n"
        "  TLS and HTTP/2 (streams as above; Redis and HTTP publishing stay plaintext):\n"
        "         --tls (HTTP/1.1 over TLS) | --h2 (HTTP/2 over TLS, ALPN h2) | --h2c (HTTP/2, prior knowledge)\n"
        "         [--streams-per-conn 100 (HTTP/2)] [--tls-ca FILE | --tls-insecure] [--tls-sni localhost]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int want_tls = 0, want_h2 = 0, want_h2c = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tls")) { want_tls = 1; continue; }   // the flags without a value
        if (!strcmp(a, "--h2")) { want_h2 = 1; continue; }
        if (!strcmp(a, "--h2c")) { want_h2c = 1; continue; }
        if (!strcmp(a, "--tls-insecure")) { tls_insecure = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--ports")) {   // spread connections round robin over several nodes
            char copy[256];
            snprintf(copy, sizeof copy, "%s", v);
            for (char *item = strtok(copy, ","); item && port_count < 16; item = strtok(NULL, ",")) port_list[port_count++] = atoi(item);
        }
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--connections")) connections = atoi(v);
        else if (!strcmp(a, "--sources")) sources = atoi(v);
        else if (!strcmp(a, "--channels")) channels = atoi(v);
        else if (!strcmp(a, "--prefix")) prefix = v;
        else if (!strcmp(a, "--events")) events = atol(v);
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--publish")) publish = v;
        else if (!strcmp(a, "--publish-port")) publish_port = atoi(v);
        else if (!strcmp(a, "--publish-conns")) publish_conns = atoi(v);
        else if (!strcmp(a, "--publish-batch")) publish_batch = atoi(v);
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--pids")) snprintf(pids, sizeof pids, "%s", v);
        else if (!strcmp(a, "--warmup-ms")) warmup_ms = atoi(v);
        else if (!strcmp(a, "--drain-ms")) drain_ms = atoi(v);
        else if (!strcmp(a, "--label")) label = v;
        else if (!strcmp(a, "--wait-numsub")) wait_numsub = atol(v);
        else if (!strcmp(a, "--processes")) processes = atoi(v);
        else if (!strcmp(a, "--resume-ports")) {
            char copy[256], *rest = NULL;
            snprintf(copy, sizeof copy, "%s", v);
            for (char *item = strtok_r(copy, ",", &rest); item && resume_port_count < 16; item = strtok_r(NULL, ",", &rest))
                resume_ports[resume_port_count++] = atoi(item);
        }
        else if (!strcmp(a, "--retry-ms")) retry_default_ms = atoi(v);
        else if (!strcmp(a, "--retry-jitter-ms")) retry_jitter_ms = atoi(v);
        else if (!strcmp(a, "--attempt-timeout-ms")) attempt_timeout_ms = atoi(v);
        else if (!strcmp(a, "--kill-pids")) snprintf(kill_pids, sizeof kill_pids, "%s", v);
        else if (!strcmp(a, "--kill-after-ms")) kill_after_ms = atoi(v);
        else if (!strcmp(a, "--storm-timeout-ms")) storm_timeout_ms = atoi(v);
        else if (!strcmp(a, "--steady-ms")) steady_ms = atoi(v);
        else if (!strcmp(a, "--resume-expect")) resume_expect = atol(v);
        else if (!strcmp(a, "--redis-pids")) snprintf(redis_pids, sizeof redis_pids, "%s", v);
        else if (!strcmp(a, "--publish-command")) publish_command = v;
        else if (!strcmp(a, "--channel-ports")) {
            char *copy = strdup(v), *rest = NULL;
            if (!copy) die("out of memory");
            for (char *item = strtok_r(copy, ",", &rest); item; item = strtok_r(NULL, ",", &rest)) {
                if (channel_port_count == MAX_CHANNEL_PORTS) usage();
                channel_ports[channel_port_count++] = atoi(item);
            }
            free(copy);
        }
        else if (!strcmp(a, "--streams-per-conn")) streams_per_conn = atoi(v);
        else if (!strcmp(a, "--tls-ca")) tls_ca = v;
        else if (!strcmp(a, "--tls-sni")) tls_sni = v;
        else usage();
        i++;
    }
    transport = want_h2c ? TRANSPORT_H2C : want_h2 ? TRANSPORT_H2 : want_tls ? TRANSPORT_TLS : TRANSPORT_PLAIN;
    if ((want_h2c && (want_h2 || want_tls)) || (transport != TRANSPORT_PLAIN && resume_port_count)
        || streams_per_conn < 1 || streams_per_conn > MAX_STREAMS_PER_CONN) usage();
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    if (channels < 1 || sources < 1 || sources > 250 || connections < 1 || events < 1 || rate <= 0) usage();
    if (publish_batch < 1 || publish_batch > 1000 || (publish_batch > 1 && channels != 1)) usage();   // a batch is one channel's
    if (processes < 1 || processes > MAX_PROCESSES || processes > connections) usage();
    if ((strcmp(publish_command, "PUBLISH") && strcmp(publish_command, "SPUBLISH"))
        || (channel_port_count && channel_port_count != channels)) usage();
    if (retry_default_ms < 0 || retry_jitter_ms < 0 || attempt_timeout_ms < 1 || kill_after_ms < 0 || storm_timeout_ms < 1
        || steady_ms < 0 || (kill_pids[0] && !resume_port_count)) usage();
    signal(SIGPIPE, SIG_IGN);   // a write to a connection the server dropped fails, it does not kill
    shared = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    // One histogram per reader; pages are only backed once touched.
    uint64_t *histograms = mmap(NULL, (size_t)processes * BUCKETS * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    // Per reader, per event: first and last receipt.
    uint32_t *receipts = mmap(NULL, (size_t)processes * 2 * (size_t)events * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || histograms == MAP_FAILED || receipts == MAP_FAILED) die("mmap: %s", strerror(errno));
    published_share = &shared->published;
    if (resume_port_count) {
        resumes = mmap(NULL, (size_t)connections * sizeof(Resume), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (resumes == MAP_FAILED) die("mmap: %s", strerror(errno));
    }
    memset(shared, 0, sizeof *shared);

    long rss_before = read_rss_kb();
    pid_t parent = getpid();
    for (int k = 0; k < processes; k++) {
        pid_t pid = fork();
        if (pid < 0) { stop_children(); die("fork: %s", strerror(errno)); }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);   // never outlive the run
            if (getppid() != parent) _exit(1);
            histogram = histograms + (size_t)k * BUCKETS;
            first_receipt = receipts_of(receipts, k);
            last_receipt = first_receipt + events;
            run_part(k);
            _exit(0);
        }
        children[k] = pid;
    }
    // Wait for every reader to be connected, then the warm-up.
    uint64_t give_up = now_ns() + 130000000000ull;
    for (int k = 0; k < processes;) {
        if (__atomic_load_n(&shared->part[k].connected, __ATOMIC_ACQUIRE)) { k++; continue; }
        check_children();
        if (now_ns() > give_up) { stop_children(); die("%s: readers did not connect in 130 s", label); }
        usleep(10000);
    }
    double connect_seconds = 0;
    for (int k = 0; k < processes; k++)
        if (shared->part[k].connect_seconds > connect_seconds) connect_seconds = shared->part[k].connect_seconds;
    for (uint64_t warm_until = now_ns() + (uint64_t)warmup_ms * 1000000ull; now_ns() < warm_until;) {
        check_children();
        usleep(10000);
    }
    if (wait_numsub > 0) {   // servers that subscribe only once a response starts (Flask-SSE)
        redisContext *redis = redisConnect(host, publish_port);
        if (!redis || redis->err) { stop_children(); die("redis connect failed"); }
        char channel[64];
        snprintf(channel, sizeof channel, "%s0", prefix);
        uint64_t numsub_deadline = now_ns() + 120000000000ull;
        for (;;) {
            redisReply *reply = redisCommand(redis, "PUBSUB NUMSUB %s", channel);
            long count = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 ? reply->element[1]->integer : 0;
            if (reply) freeReplyObject(reply);
            if (count >= wait_numsub) break;
            if (now_ns() > numsub_deadline) { stop_children(); die("only %ld of %ld subscribers after 120 s", count, wait_numsub); }
            check_children();
            usleep(50000);
        }
        redisFree(redis);
    }
    long rss_connected = read_rss_kb();
    double cpu_before = read_cpu_seconds();
    double redis_before[MAX_REDIS_PIDS], redis_after[MAX_REDIS_PIDS];
    int redis_pid_count = read_redis_cpu_each(redis_before);
    shared->publish_started = now_ns();
    __atomic_store_n(&shared->go, 1, __ATOMIC_RELEASE);
    pthread_t monitor;
    int monitoring = kill_pids[0] && !pthread_create(&monitor, NULL, storm_monitor, NULL);
    if (kill_pids[0] && !monitoring) { stop_children(); die("pthread_create failed"); }
    if (strcmp(publish, "none")) {
        publisher(NULL);
        __atomic_store_n(&shared->drain_from, now_ns(), __ATOMIC_RELEASE);
    } else {   // a server publishes by itself (sse-trivial): wait out its run
        __atomic_store_n(&shared->drain_from, shared->publish_started + (uint64_t)((double)events / rate * 1e9)
                         + (uint64_t)warmup_ms * 1000000ull, __ATOMIC_RELEASE);
    }
    for (int k = 0; k < processes; k++) {
        int status;
        if (children[k] > 0 && waitpid(children[k], &status, 0) == children[k]) {
            children[k] = 0;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { stop_children(); die("%s: a reader process failed", label); }
        }
    }
    if (monitoring) {
        __atomic_store_n(&monitor_stop, 1, __ATOMIC_RELEASE);
        pthread_join(monitor, NULL);
    }
    double cpu_after = read_cpu_seconds();
    read_redis_cpu_each(redis_after);
    long rss_after = read_rss_kb();
    long received = 0, lost = 0, dups = 0, reordered = 0, closed = 0, lossy = 0, expected_total = 0;
    double reader_cpu = 0;
    uint64_t all_samples = 0, last_receive = shared->publish_started;
    max_latency_us = 0;
    for (int k = 0; k < processes; k++) {
        Part *part = &shared->part[k];
        received += part->received;
        expected_total += part->expected;
        lost += part->lost;
        dups += part->dups;
        reordered += part->reordered;
        closed += part->closed;
        lossy += part->lossy;
        all_samples += part->samples;
        reader_cpu += part->cpu_seconds;
        if (part->max_latency_us > max_latency_us) max_latency_us = part->max_latency_us;
        if (part->last_receive > last_receive) last_receive = part->last_receive;
    }
    double elapsed = (double)(last_receive - shared->publish_started) / 1e9;
    // Percentiles over the readers' histograms summed, up to the largest latency seen.
    uint64_t last_bucket = max_latency_us / BUCKET_US < BUCKETS ? max_latency_us / BUCKET_US : BUCKETS - 1;
    double percentile[3] = {0.5, 0.99, 0.999};
    double value[3] = {0, 0, 0};
    for (int p = 0; p < 3; p++) {
        uint64_t want = (uint64_t)(percentile[p] * (double)all_samples), seen = 0;
        value[p] = (double)max_latency_us / 1000.0;
        for (uint64_t bucket = 0; bucket <= last_bucket; bucket++) {
            for (int k = 0; k < processes; k++) seen += histograms[(size_t)k * BUCKETS + bucket];
            if (seen > want) { value[p] = (double)(bucket * BUCKET_US) / 1000.0; break; }
        }
    }
    double first[2], last[2];
    event_receipts(receipts, first, last);
    printf("{\"label\": \"%s\", \"connections\": %d, \"channels\": %d, \"events\": %ld, \"rate\": %.0f, \"size\": %d, \"processes\": %d, "
           "\"published\": %ld, \"publish_errors\": %ld, \"achieved_rate\": %.0f, \"received\": %ld, \"expected\": %ld, \"lost\": %ld, \"duplicates\": %ld, \"reordered\": %ld, "
           "\"lossy_connections\": %ld, \"closed_connections\": %ld, \"seconds\": %.3f, \"deliveries_per_second\": %.0f, "
           "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"connect_seconds\": %.2f, "
           "\"server_rss_kb_before\": %ld, \"server_rss_kb_connected\": %ld, \"server_rss_kb_after\": %ld, "
           "\"server_rss_bytes_per_connection\": %.0f, \"server_cpu_percent\": %.1f, "
           "\"first_receipt_p50_ms\": %.3f, \"first_receipt_p99_ms\": %.3f, \"last_receipt_p50_ms\": %.3f, \"last_receipt_p99_ms\": %.3f",
           label, connections, channels, events, rate, size, processes, published, publish_errors,
           publish_seconds > 0 ? (double)published / publish_seconds : 0, received, expected_total, lost, dups, reordered,
           lossy, closed, elapsed, elapsed > 0 ? (double)received / elapsed : 0, value[0], value[1], value[2],
           (double)max_latency_us / 1000.0, connect_seconds, rss_before, rss_connected, rss_after,
           connections ? (double)(rss_connected - rss_before) * 1024.0 / connections : 0,
           elapsed > 0 ? (cpu_after - cpu_before) / elapsed * 100.0 : 0, first[0], first[1], last[0], last[1]);
    // The readers' own CPU over the same window as the server's (%: of one core), to tell a saturated tool.
    printf(", \"transport\": \"%s\", \"streams_per_conn\": %d, \"tcp_connections\": %ld, \"reader_cpu_percent\": %.1f",
           transport_name(), streams_per_transport(), tcp_connections_of_run(), elapsed > 0 ? reader_cpu / elapsed * 100.0 : 0);
    if (redis_pid_count) {   // each Redis pid's CPU over the publish window (start of publishing to the readers' end)
        printf(", \"redis_cpu_window_seconds\": [");
        for (int k = 0; k < redis_pid_count; k++) printf("%s%.3f", k ? ", " : "", redis_after[k] - redis_before[k]);
        printf("]");
    }
    if (resume_port_count) print_resume();
    printf("}\n");
    return 0;
}
