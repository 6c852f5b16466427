# Shared by nchan.sh and flask_sse.sh (sourced, not run).

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

# do_stop: stop the peer whose pid `is_running` prints (each script defines is_running, PID_FILE,
# STOP_TIMEOUT and log), then forget its pid file.
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
