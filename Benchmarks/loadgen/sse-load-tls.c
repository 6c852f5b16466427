// sse-load-tls.c: the load tool's TLS and HTTP/2 transports, included from sse-load.c (one
// compilation: cc ... sse-load.c -lhiredis -lssl -lcrypto -lnghttp2). Plain HTTP/1.1 never comes
// here: it keeps its own connect and read loops in sse-load.c.
//
//   --tls          HTTP/1.1 over TLS (OpenSSL; ALPN http/1.1), one stream per TCP connection
//   --h2           HTTP/2 over TLS (ALPN h2): --streams-per-conn N streams (GET /stream?channel=...)
//                  multiplexed on each TCP connection (default 100)
//   --h2c          HTTP/2 with prior knowledge on a plaintext port, the same streams
//   --tls-ca FILE  the CA that signed the server's certificate (else the system's), checked against
//                  --tls-sni; --tls-insecure checks nothing. --tls-sni NAME (default localhost) is
//                  sent as SNI and, with HTTP/2, as :authority (HTTP/1.1 over TLS: as Host).
//
// Every stream is a Conn as in plain HTTP/1.1 and goes through the same SSE parser and accounting
// (feed / feed_sse: per-event latency from the embedded timestamp, loss, order, counts). A TCP
// connection is a Transport holding its socket, its SSL and, for HTTP/2, its nghttp2 session; its
// streams are conns[first .. first + count - 1]. Sockets, TLS and nghttp2 are all nonblocking and
// driven by the reader's epoll, one epoll slot per Transport. Stream and connection windows are
// 16 MiB and nghttp2 sends WINDOW_UPDATE as data is consumed (its automatic flow control), so the
// tool's windows never hold a server back. Resume mode (--resume-ports) is plain HTTP/1.1 only.
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum { TRANSPORT_PLAIN, TRANSPORT_TLS, TRANSPORT_H2, TRANSPORT_H2C };
static int transport = TRANSPORT_PLAIN;
static const char *tls_ca = NULL, *tls_sni = "localhost";
static int tls_insecure = 0;
static int streams_per_conn = 100;
enum { H2_WINDOW = 16 << 20, TLS_IN_FLIGHT = 200, READS_PER_EVENT = 1024, MAX_STREAMS_PER_CONN = 10000 };

static const char *transport_name(void) {
    static const char *names[] = {"http/1.1", "http/1.1+tls", "h2", "h2c"};
    return names[transport];
}

// Streams on one TCP connection.
static int streams_per_transport(void) { return transport == TRANSPORT_H2 || transport == TRANSPORT_H2C ? streams_per_conn : 1; }

// TCP connections a run of `connections` streams over `processes` readers opens (for the report).
static long tcp_connections_of_run(void) {
    long total = 0;
    int per = streams_per_transport();
    for (int k = 0; k < processes; k++) total += ((connections - k + processes - 1) / processes + per - 1) / per;
    return total;
}

enum { T_CONNECTING, T_HANDSHAKE, T_OPEN, T_CLOSED };

typedef struct {
    int fd, phase, first, count;
    uint32_t slot, events;          // its epoll slot and the events it waits for
    SSL *ssl;                       // NULL for h2c
    nghttp2_session *h2;            // NULL for HTTP/1.1 over TLS
    int want_out;                   // the last TLS call or write needs the socket writable
    char request[512];              // HTTP/1.1: the GET, written from request_sent on
    int request_len, request_sent;
} Transport;

static Transport *transports;
static int transport_count, transports_pending, streams_open;
static SSL_CTX *tls_context;
static int measuring;              // streams that close from here on count as closed, not fatal

static void die_tls(const char *what) {
    unsigned long error = ERR_get_error();
    char text[256] = "";
    if (error) ERR_error_string_n(error, text, sizeof text);
    die("%s: %s: %s", label, what, error ? text : strerror(errno));
}

static SSL_CTX *make_tls_context(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die_tls("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // One read() per socket wakeup: OpenSSL reads what the socket has into its buffer, not one record's
    // header and then its body.
    SSL_CTX_set_read_ahead(ctx, 1);
    if (tls_insecure) SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    else {
        if (tls_ca ? !SSL_CTX_load_verify_locations(ctx, tls_ca, NULL) : !SSL_CTX_set_default_verify_paths(ctx))
            die_tls(tls_ca ? tls_ca : "system CA paths");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    static const unsigned char h2[] = "\x02h2", http11[] = "\x08http/1.1";
    int failed = transport == TRANSPORT_H2 ? SSL_CTX_set_alpn_protos(ctx, h2, sizeof h2 - 1)
                                           : SSL_CTX_set_alpn_protos(ctx, http11, sizeof http11 - 1);
    if (failed) die_tls("ALPN");
    return ctx;
}

// ---- bytes through the socket or its TLS ----
// Read: > 0 bytes, 0 at the end of the stream, -1 nothing now, -2 failed.
static long transport_read(Transport *t, char *buffer, int cap) {
    if (!t->ssl) {
        ssize_t r = read(t->fd, buffer, (size_t)cap);
        if (r >= 0) return r;
        return errno == EAGAIN || errno == EINTR ? -1 : -2;
    }
    int r = SSL_read(t->ssl, buffer, cap);
    if (r > 0) return r;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ: return -1;
    case SSL_ERROR_WANT_WRITE: t->want_out = 1; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: return -2;
    }
}

// Write: bytes written (> 0), -1 not now, -2 failed.
static long transport_write(Transport *t, const void *data, size_t len) {
    if (!t->ssl) {
        ssize_t w = write(t->fd, data, len);
        if (w >= 0) return w ? w : -1;
        if (errno == EAGAIN || errno == EINTR) { t->want_out = 1; return -1; }
        return -2;
    }
    int w = SSL_write(t->ssl, data, len > 1 << 20 ? 1 << 20 : (int)len);
    if (w > 0) return w;
    switch (SSL_get_error(t->ssl, w)) {
    case SSL_ERROR_WANT_WRITE: t->want_out = 1; return -1;
    case SSL_ERROR_WANT_READ: return -1;
    default: return -2;
    }
}

// ---- HTTP/2 (nghttp2 callbacks) ----
static ssize_t h2_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user_data) {
    (void)session; (void)flags;
    long w = transport_write(user_data, data, length);
    return w > 0 ? w : w == -1 ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int h2_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    (void)session; (void)flags; (void)user_data;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE && namelen == 7
        && !memcmp(name, ":status", 7) && (valuelen != 3 || memcmp(value, "200", 3)))
        die("%s: stream %d got :status %.*s", label, frame->hd.stream_id, (int)(valuelen < 8 ? valuelen : 8), value);
    return 0;
}

static int h2_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    Transport *t = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        uint32_t allowed = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (allowed < (uint32_t)t->count)
            die("%s: the server allows %u streams per connection, --streams-per-conn asks %d", label, allowed, t->count);
    } else if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        Conn *c = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (c && !c->connected) { c->connected = 1; streams_open++; }
    }
    return 0;
}

static int h2_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *user_data) {
    (void)flags; (void)user_data;
    Conn *c = nghttp2_session_get_stream_user_data(session, stream_id);
    if (c) feed_sse(c, (const char *)data, (long)len);
    return 0;
}

static int h2_stream_closed(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    (void)user_data;
    Conn *c = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!c) return 0;
    if (!measuring) die("%s: stream %d (connection %d) closed while connecting (error %u)", label, stream_id, c->global, error_code);
    c->closed = 1;
    return 0;
}

static nghttp2_session_callbacks *h2_callbacks(void) {
    static nghttp2_session_callbacks *callbacks;
    if (!callbacks) {
        if (nghttp2_session_callbacks_new(&callbacks)) die("out of memory");
        nghttp2_session_callbacks_set_send_callback(callbacks, h2_send);
        nghttp2_session_callbacks_set_on_header_callback(callbacks, h2_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2_frame);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2_stream_closed);
    }
    return callbacks;
}

// The session: SETTINGS (no push, 16 MiB stream window), a 16 MiB connection window, one GET per stream.
static void h2_start(Transport *t) {
    if (nghttp2_session_client_new(&t->h2, h2_callbacks(), t)) die("out of memory");
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW}};
    if (nghttp2_submit_settings(t->h2, NGHTTP2_FLAG_NONE, settings, 2)
        || nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE, 0, H2_WINDOW))
        die("%s: HTTP/2 settings refused", label);
    const char *scheme = t->ssl ? "https" : "http", *authority = t->ssl ? tls_sni : "127.0.0.1";
    for (int k = 0; k < t->count; k++) {
        Conn *c = &conns[t->first + k];
        char target[256];
        snprintf(target, sizeof target, path, prefix, c->channel);
#define NV(name, value) {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), NGHTTP2_NV_FLAG_NONE}
        nghttp2_nv headers[] = {NV(":method", "GET"), NV(":scheme", scheme), NV(":authority", authority),
                                NV(":path", target), NV("accept", "text/event-stream")};
#undef NV
        if (nghttp2_submit_request(t->h2, NULL, headers, sizeof headers / sizeof headers[0], NULL, c) < 0)
            die("%s: nghttp2_submit_request failed", label);
    }
}

// ---- one TCP connection's events ----
static void transport_wait_for(Transport *t, uint32_t events) {
    if (events == t->events) return;
    struct epoll_event event = {.events = events, .data.u32 = t->slot};
    epoll_ctl(reader_epoll, EPOLL_CTL_MOD, t->fd, &event);
    t->events = events;
}

// It ended (EOF, reset, a TLS or HTTP/2 error): its streams are closed (fatal while connecting).
static void transport_close(Transport *t, const char *why) {
    if (!measuring) die("%s: connection %u ended while connecting: %s", label, t->slot, why);
    epoll_ctl(reader_epoll, EPOLL_CTL_DEL, t->fd, NULL);
    close(t->fd);
    if (t->h2) nghttp2_session_del(t->h2);
    if (t->ssl) SSL_free(t->ssl);
    t->h2 = NULL;
    t->ssl = NULL;
    t->phase = T_CLOSED;
    for (int k = 0; k < t->count; k++) conns[t->first + k].closed = 1;
}

// TCP connected or TLS handshake done: the GET (HTTP/1.1) or the session (HTTP/2) goes out.
static void transport_opened(Transport *t) {
    t->phase = T_OPEN;
    transports_pending--;
    if (t->ssl) {
        const unsigned char *alpn = NULL;
        unsigned int alpn_len = 0;
        SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
        if (transport == TRANSPORT_H2 && (alpn_len != 2 || memcmp(alpn, "h2", 2)))
            die("%s: the server did not select h2 by ALPN (it chose '%.*s')", label, (int)alpn_len, alpn ? (const char *)alpn : "");
    }
    if (transport == TRANSPORT_TLS) {
        t->request_len = format_request(t->request, sizeof t->request, &conns[t->first], tls_sni);
        if (t->request_len < 0) die("%s: request too long", label);
    } else h2_start(t);
}

// Writes what is due: the rest of the GET, or whatever nghttp2 has queued. 0, or -1 when it failed.
static int transport_flush(Transport *t) {
    if (t->h2) return nghttp2_session_send(t->h2) ? -1 : 0;
    while (t->request_sent < t->request_len) {
        long w = transport_write(t, t->request + t->request_sent, (size_t)(t->request_len - t->request_sent));
        if (w == -2) return -1;
        if (w < 0) break;
        t->request_sent += (int)w;
    }
    return 0;
}

// Reads everything there is (bounded per event): HTTP/1.1 through feed (head, chunks, events),
// HTTP/2 through nghttp2 (its DATA to feed_sse per stream). 1 if any bytes came, -1 when it ended.
static int transport_receive(Transport *t) {
    static char buffer[65536];   // larger than a TLS record: SSL_read returns a whole record's bytes
    int got = 0;
    for (int reads = 0; reads < READS_PER_EVENT; reads++) {
        long r = transport_read(t, buffer, sizeof buffer);
        if (r == -1) break;
        if (r == 0 || r == -2) { transport_close(t, r ? "read failed" : "end of stream"); return -1; }
        got = 1;
        if (t->h2) {
            ssize_t used = nghttp2_session_mem_recv(t->h2, (const uint8_t *)buffer, (size_t)r);
            if (used < 0) { transport_close(t, nghttp2_strerror((int)used)); return -1; }
        } else {
            Conn *c = &conns[t->first];
            int was = c->connected;
            if (feed(c, buffer, r) < 0) die("%s: connection got: %.60s", label, c->head);
            if (!was && c->connected) streams_open++;
        }
        // Emptied for now: a short read of the socket, or nothing left in OpenSSL's buffer (whatever the
        // socket still has wakes epoll again). Saves the read that would only say EAGAIN.
        if (t->ssl ? !SSL_has_pending(t->ssl) : r < (long)sizeof buffer) break;
    }
    return got;
}

static void transport_event(Transport *t, uint32_t events, uint64_t *last_receive) {
    if (t->phase == T_CLOSED) return;
    if (t->phase == T_CONNECTING) {
        int error = 0;
        socklen_t size_of = sizeof error;
        getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &error, &size_of);
        if (error) die("%s: connect: %s", label, strerror(error));
        if (transport == TRANSPORT_H2C) transport_opened(t);
        else {
            if (!(t->ssl = SSL_new(tls_context)) || !SSL_set_fd(t->ssl, t->fd) || !SSL_set_tlsext_host_name(t->ssl, tls_sni)
                || (!tls_insecure && !SSL_set1_host(t->ssl, tls_sni)))
                die_tls("SSL_new");
            SSL_set_connect_state(t->ssl);
            t->phase = T_HANDSHAKE;
        }
    }
    t->want_out = 0;
    if (t->phase == T_HANDSHAKE) {
        int r = SSL_do_handshake(t->ssl);
        if (r == 1) transport_opened(t);
        else {
            int error = SSL_get_error(t->ssl, r);
            if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) die_tls("TLS handshake");
            transport_wait_for(t, error == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
            return;
        }
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && transport_receive(t) != 0) {
        if (t->phase == T_CLOSED) return;
        if (last_receive) *last_receive = now_ns();
    }
    if (transport_flush(t)) { transport_close(t, "write failed"); return; }
    if (t->h2 && !nghttp2_session_want_read(t->h2) && !nghttp2_session_want_write(t->h2)) {
        transport_close(t, "HTTP/2 session over (GOAWAY, or not an HTTP/2 server)");
        return;
    }
    int more = t->h2 ? nghttp2_session_want_write(t->h2) : t->request_sent < t->request_len;
    transport_wait_for(t, EPOLLIN | (t->want_out || more ? EPOLLOUT : 0));
}

static int tls_wait(int epoll, struct epoll_event *ready, uint64_t *last_receive, int timeout_ms) {
    int n = epoll_wait(epoll, ready, 1024, timeout_ms);
    for (int k = 0; k < n; k++) transport_event(&transports[ready[k].data.u32], ready[k].events, last_receive);
    return n;
}

// The reader loop's step for TLS and HTTP/2 (plain HTTP/1.1 has read_ready).
static void tls_read_ready(int epoll, struct epoll_event *ready, uint64_t *last_receive, int timeout_ms) {
    measuring = 1;
    tls_wait(epoll, ready, last_receive, timeout_ms);
}

// Opens this reader's streams (connections index, index + P, ...): TLS handshakes at most
// TLS_IN_FLIGHT at a time, then the GET or the HTTP/2 session per TCP connection. Returns how many
// streams got their 200.
static int tls_connect_all(int index, int count, int epoll, struct epoll_event *ready) {
    int per = streams_per_transport();
    transport_count = (count + per - 1) / per;
    transports = calloc((size_t)transport_count, sizeof(Transport));
    if (!transports) die("out of memory");
    if (transport != TRANSPORT_H2C) tls_context = make_tls_context();
    for (int j = 0; j < count; j++) init_conn(&conns[j], index + j * processes);
    uint64_t started = now_ns();
    for (int opened = 0;;) {
        while (opened < transport_count && transports_pending < TLS_IN_FLIGHT) {
            Transport *t = &transports[opened];
            t->slot = (uint32_t)opened;
            t->first = opened * per;
            t->count = count - t->first < per ? count - t->first : per;
            t->events = EPOLLOUT;
            int i = index + opened * processes;   // the TCP connection's number in the whole run
            t->fd = open_socket(i, t->slot, port_of(i));
            if (t->fd < 0) die("connect to %d: %s (connection %d)", port_of(i), strerror(errno), i);
            transports_pending++;
            opened++;
        }
        if (streams_open >= count) break;
        int n = tls_wait(epoll, ready, NULL, 1000);
        if (now_ns() - started > 120000000000ull) die("connecting took over 120 s (%d streams open)", streams_open);
        if (opened == transport_count && transports_pending == 0 && n == 0) break;   // as plain: a second of silence
    }
    return streams_open;
}
