# Shared by nchan.sh and flask_sse.sh (sourced, not run). Each sets PEER_NAME, PID_FILE,
# PROCESS_NAME and STOP_TIMEOUT.

log() { echo "$PEER_NAME: $*"; }
die() { echo "$PEER_NAME: error: $*" >&2; exit 1; }

# stop_tree PID TIMEOUT: SIGTERM the master, wait (bounded), SIGKILL if it lingers, and make sure
# none of its workers survive it.
stop_tree() {
    local pid=$1 timeout=$2 deadline c children
    children="$(pgrep -P "$pid" 2>/dev/null || true)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    for c in $children; do
        deadline=$((SECONDS + 3))
        while kill -0 "$c" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -0 "$c" 2>/dev/null && kill -KILL "$c" 2>/dev/null || true
    done
}

# is_running: prints the pid in PID_FILE when that process is alive and its command line names
# PROCESS_NAME, so a recycled pid is never taken for the peer.
is_running() {
    local pid
    [ -s "$PID_FILE" ] || return 1
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$PROCESS_NAME" || return 1
    echo "$pid"
}

# port_open: whether something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# do_stop: stop the peer whose pid `is_running` prints, then forget its pid file.
do_stop() {
    local pid
    if ! pid="$(is_running)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    stop_tree "$pid" "$STOP_TIMEOUT"
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}
