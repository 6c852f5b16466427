#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

/// Swift cannot read C macros that expand to expressions, nor pass `struct timeval`
/// literals comfortably: these helpers are one job each, prefixed, and static inline.

static inline struct timeval CHiredis_timeval(long milliseconds) {
    struct timeval tv;
    tv.tv_sec = milliseconds / 1000;
    tv.tv_usec = (milliseconds % 1000) * 1000;
    return tv;
}

static inline redisContext *CHiredis_connectTCP(const char *host, int port, long timeoutMilliseconds) {
    return redisConnectWithTimeout(host, port, CHiredis_timeval(timeoutMilliseconds));
}

static inline redisContext *CHiredis_connectUnix(const char *path, long timeoutMilliseconds) {
    return redisConnectUnixWithTimeout(path, CHiredis_timeval(timeoutMilliseconds));
}

/// Sets send and receive timeouts on a connected context (0 turns them off).
static inline int CHiredis_setTimeout(redisContext *context, long milliseconds) {
    return redisSetTimeout(context, CHiredis_timeval(milliseconds));
}

/// Takes the next complete reply already buffered in the context's reader, without I/O.
static inline int CHiredis_takeBufferedReply(redisContext *context, redisReply **reply) {
    return redisReaderGetReply(context->reader, (void **)reply);
}

#endif
