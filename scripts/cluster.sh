#!/usr/bin/env bash
# The docker-compose topology on loopback, from Debian packages: redis-server, three sse-broker
# nodes and nginx spreading streams over them.
#
#   scripts/cluster.sh up     start (redis only if none answers on REDIS_PORT)
#   scripts/cluster.sh down   stop everything this script started, by pid
#
# Settings (environment): CLUSTER_DIR (.run/cluster), REDIS_PORT (6379), NODE_PORTS ("5001 5002 5003"),
# LB_PORT (8080), BROKER (.build/debug/sse-broker), NODE_ARGS (extra sse-broker options),
# SSE_PUBLISH_KEY (the nodes' publish key; a random one if unset, written to $CLUSTER_DIR/publish-key:
# requests through nginx carry X-Forwarded-For, so they never publish openly).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR=${CLUSTER_DIR:-$PWD/.run/cluster}
REDIS_PORT=${REDIS_PORT:-6379}
NODE_PORTS=${NODE_PORTS:-"5001 5002 5003"}
LB_PORT=${LB_PORT:-8080}
BROKER=${BROKER:-$PWD/.build/debug/sse-broker}
NODE_ARGS=${NODE_ARGS:-}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

up() {
    mkdir -p "$CLUSTER_DIR"
    if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
        echo "redis: already answering on $REDIS_PORT"
    else
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes --dir "$CLUSTER_DIR" \
            --daemonize yes --pidfile "$CLUSTER_DIR/redis.pid" --logfile "$CLUSTER_DIR/redis.log"
        wait_for_port "$REDIS_PORT"
        echo "redis: started on $REDIS_PORT (pid $(cat "$CLUSTER_DIR/redis.pid"))"
    fi
    local key=${SSE_PUBLISH_KEY:-}
    if [ -z "$key" ]; then key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); fi
    (umask 077 && printf '%s' "$key" >"$CLUSTER_DIR/publish-key")
    local index=0 servers=""
    for port in $NODE_PORTS; do
        index=$((index + 1))
        # shellcheck disable=SC2086
        SSE_PUBLISH_KEY=$key "$BROKER" --host 127.0.0.1 --port "$port" --redis-url "redis://127.0.0.1:$REDIS_PORT/0" \
            --node-name "node$index" --demo --retry-ms 1000 $NODE_ARGS >"$CLUSTER_DIR/node$index.log" 2>&1 &
        echo $! >"$CLUSTER_DIR/node$index.pid"
        servers="$servers        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;\n"
    done
    for port in $NODE_PORTS; do wait_for_port "$port"; done
    echo "nodes: $index on ports $NODE_PORTS"
    mkdir -p "$CLUSTER_DIR/nginx"
    # The server block is deploy/nginx-sse.conf's, with loopback upstreams.
    {
        echo "pid $CLUSTER_DIR/nginx.pid;"
        echo "error_log $CLUSTER_DIR/nginx-error.log warn;"
        echo "worker_processes 1;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        echo "    access_log off;"
        echo "    client_body_temp_path $CLUSTER_DIR/nginx/body; proxy_temp_path $CLUSTER_DIR/nginx/proxy;"
        echo "    fastcgi_temp_path $CLUSTER_DIR/nginx/fastcgi; uwsgi_temp_path $CLUSTER_DIR/nginx/uwsgi; scgi_temp_path $CLUSTER_DIR/nginx/scgi;"
        sed -e '/^    server node[0-9]:5000/d' -e "s/listen 8080;/listen 127.0.0.1:$LB_PORT;/" \
            -e "s|    least_conn;|    least_conn;\n$servers|" deploy/nginx-sse.conf | sed 's/^/    /'
        echo "}"
    } >"$CLUSTER_DIR/nginx.conf"
    "$NGINX" -c "$CLUSTER_DIR/nginx.conf" -p "$CLUSTER_DIR/nginx" -e "$CLUSTER_DIR/nginx-error.log"
    wait_for_port "$LB_PORT"
    echo "nginx: http://127.0.0.1:$LB_PORT/ (pid $(cat "$CLUSTER_DIR/nginx.pid"))"
    echo "publish key: in $CLUSTER_DIR/publish-key (Authorization: Bearer KEY; the demo page has a field for it)"
}

down() {
    rm -f "$CLUSTER_DIR/publish-key"
    for pidfile in "$CLUSTER_DIR"/nginx.pid "$CLUSTER_DIR"/node*.pid "$CLUSTER_DIR"/redis.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    echo "cluster stopped"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
