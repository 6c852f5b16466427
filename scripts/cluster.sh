#!/usr/bin/env bash
# The docker-compose topology on loopback, from Debian packages: redis-server, three sse-broker
# nodes and nginx spreading streams over them.
#
#   scripts/cluster.sh up     start (redis only if none answers on REDIS_PORT)
#   scripts/cluster.sh down   stop everything this script started, by pid
#
# Settings (environment): CLUSTER_DIR (.run/cluster), REDIS_PORT (6379), NODE_PORTS ("5001 5002 5003"),
# LB_PORT (8080), LB_TLS_PORT (8443: nginx's HTTPS + HTTP/2 front on the same nodes, with a certificate
# for localhost and 127.0.0.1 signed by a CA made here, $CLUSTER_DIR/tls/ca.crt; empty for none),
# BROKER (.build/debug/sse-broker), NODE_ARGS (extra sse-broker options),
# SSE_PUBLISH_KEY (the nodes' publish key; a random one if unset, written to $CLUSTER_DIR/publish-key:
# requests through nginx carry X-Forwarded-For, so they never publish openly).
#
# Which Redis (REDIS_MODE):
#   plain     (default) redis-server on REDIS_PORT, nodes use redis://127.0.0.1:REDIS_PORT/0
#   tls       redis-server with TLS only on REDIS_PORT, certificates made here by openssl in
#             $CLUSTER_DIR/tls; nodes use rediss://127.0.0.1:REDIS_PORT/0?ssl_ca_certs=.../ca.crt
#   sentinel  a master on REDIS_PORT, a replica on REDIS_REPLICA_PORT (REDIS_PORT+1) and three
#             sentinels on SENTINEL_PORTS ("26379 26380 26381"), master name "mymaster"; nodes use
#             redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster/0
#   cluster   a Redis Cluster of three masters with a replica each on CLUSTER_PORTS
#             ("7000 7001 7002 7003 7004 7005"; bus ports +10000); nodes use
#             redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
# REDIS_URL, when set, is passed to the nodes as it is and no Redis is started (your own Redis).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR=${CLUSTER_DIR:-$PWD/.run/cluster}
REDIS_PORT=${REDIS_PORT:-6379}
NODE_PORTS=${NODE_PORTS:-"5001 5002 5003"}
LB_PORT=${LB_PORT:-8080}
LB_TLS_PORT=${LB_TLS_PORT-8443}
BROKER=${BROKER:-$PWD/.build/debug/sse-broker}
NODE_ARGS=${NODE_ARGS:-}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
REDIS_MODE=${REDIS_MODE:-plain}
REDIS_REPLICA_PORT=${REDIS_REPLICA_PORT:-$((REDIS_PORT + 1))}
SENTINEL_PORTS=${SENTINEL_PORTS:-"26379 26380 26381"}
CLUSTER_PORTS=${CLUSTER_PORTS:-"7000 7001 7002 7003 7004 7005"}

wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# redis-server in the background, by pid file, on loopback; "$@" are its extra options.
start_redis_server() {
    local name=$1 port=$2
    shift 2
    redis-server --bind 127.0.0.1 --save '' --appendonly yes --dir "$CLUSTER_DIR" --appenddirname "$name-aof" --dbfilename "$name.rdb" \
        --daemonize yes --pidfile "$CLUSTER_DIR/$name.pid" --logfile "$CLUSTER_DIR/$name.log" "$@"
    wait_for_port "$port"
    echo "$name: started on $port (pid $(cat "$CLUSTER_DIR/$name.pid"))"
}

start_plain_redis() {
    if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
        echo "redis: already answering on $REDIS_PORT"
    else
        start_redis_server redis "$REDIS_PORT" --port "$REDIS_PORT"
    fi
}

# A CA and a server certificate for 127.0.0.1 and localhost, made once per CLUSTER_DIR.
make_tls_certificates() {
    local dir=$CLUSTER_DIR/tls
    [ -f "$dir/server.crt" ] && return 0
    mkdir -p "$dir"
    (umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sse-broker cluster CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
            -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null)
    chmod 644 "$dir/ca.crt" "$dir/server.crt"
}

start_tls_redis() {
    make_tls_certificates
    local dir=$CLUSTER_DIR/tls
    start_redis_server redis "$REDIS_PORT" --port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$dir/server.crt" \
        --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no
    echo "redis: TLS only; redis-cli --tls --cacert $dir/ca.crt -p $REDIS_PORT"
}

start_sentinel_redis() {
    start_redis_server redis "$REDIS_PORT" --port "$REDIS_PORT"
    start_redis_server redis-replica "$REDIS_REPLICA_PORT" --port "$REDIS_REPLICA_PORT" --replicaof 127.0.0.1 "$REDIS_PORT"
    local index=0
    for port in $SENTINEL_PORTS; do
        index=$((index + 1))
        # A sentinel rewrites its configuration file, so each gets its own.
        {
            echo "port $port"
            echo "bind 127.0.0.1"
            echo "daemonize yes"
            echo "pidfile $CLUSTER_DIR/sentinel$index.pid"
            echo "logfile $CLUSTER_DIR/sentinel$index.log"
            echo "dir $CLUSTER_DIR"
            echo "sentinel monitor mymaster 127.0.0.1 $REDIS_PORT 2"
            echo "sentinel down-after-milliseconds mymaster 5000"
            echo "sentinel failover-timeout mymaster 10000"
        } >"$CLUSTER_DIR/sentinel$index.conf"
        redis-server "$CLUSTER_DIR/sentinel$index.conf" --sentinel
        wait_for_port "$port"
    done
    echo "sentinels: $SENTINEL_PORTS (master mymaster; try: redis-cli -p ${SENTINEL_PORTS%% *} SENTINEL FAILOVER mymaster)"
}

# Six cluster-enabled redis-servers (the first three become masters, the others their replicas),
# joined with redis-cli --cluster create; waits until the cluster is ok.
start_cluster_redis() {
    local addresses=()
    for port in $CLUSTER_PORTS; do
        start_redis_server "redis-cluster-$port" "$port" --port "$port" --cluster-enabled yes \
            --cluster-config-file "$CLUSTER_DIR/redis-cluster-$port-nodes.conf" --cluster-node-timeout 5000
        addresses+=("127.0.0.1:$port")
    done
    local first=${CLUSTER_PORTS%% *}
    if ! redis-cli -p "$first" CLUSTER INFO | grep -q 'cluster_state:ok'; then
        redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/redis-cluster-create.log" 2>&1
    fi
    for _ in $(seq 100); do
        redis-cli -p "$first" CLUSTER INFO | grep -q 'cluster_state:ok' && break
        sleep 0.2
    done
    echo "redis cluster: $CLUSTER_PORTS (try: redis-cli -c -p $first SPUBLISH news hello; redis-cli -p $first CLUSTER SHARDS)"
}

up() {
    mkdir -p "$CLUSTER_DIR"
    local redis_url
    if [ -n "${REDIS_URL:-}" ]; then
        redis_url=$REDIS_URL
        echo "redis: using REDIS_URL as given"
    else
        case "$REDIS_MODE" in
            plain) start_plain_redis; redis_url="redis://127.0.0.1:$REDIS_PORT/0" ;;
            tls) start_tls_redis; redis_url="rediss://127.0.0.1:$REDIS_PORT/0?ssl_ca_certs=$CLUSTER_DIR/tls/ca.crt" ;;
            sentinel)
                start_sentinel_redis
                redis_url="redis+sentinel://$(for p in $SENTINEL_PORTS; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')/mymaster/0"
                ;;
            cluster)
                start_cluster_redis
                redis_url="redis+cluster://$(for p in $(echo "$CLUSTER_PORTS" | cut -d' ' -f1-3); do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
                ;;
            *) echo "REDIS_MODE must be plain, tls, sentinel or cluster, got '$REDIS_MODE'" >&2; exit 2 ;;
        esac
    fi
    local key=${SSE_PUBLISH_KEY:-}
    if [ -z "$key" ]; then key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); fi
    (umask 077 && printf '%s' "$key" >"$CLUSTER_DIR/publish-key")
    local index=0 servers=""
    for port in $NODE_PORTS; do
        index=$((index + 1))
        # shellcheck disable=SC2086
        SSE_PUBLISH_KEY=$key "$BROKER" --host 127.0.0.1 --port "$port" --redis-url "$redis_url" \
            --node-name "node$index" --demo --retry-ms 1000 $NODE_ARGS >"$CLUSTER_DIR/node$index.log" 2>&1 &
        echo $! >"$CLUSTER_DIR/node$index.pid"
        servers="$servers        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;\n"
    done
    for port in $NODE_PORTS; do wait_for_port "$port"; done
    echo "nodes: $index on ports $NODE_PORTS"
    mkdir -p "$CLUSTER_DIR/nginx"
    # The server block is deploy/nginx-sse.conf's, with loopback upstreams. The TLS port is one more
    # listen of it: HTTP/2 to browsers (one connection carries all of a page's streams, so no
    # six-connections-per-host limit), HTTP/1.1 to the nodes as on the plaintext port.
    local listen="listen 127.0.0.1:$LB_PORT;"
    if [ -n "$LB_TLS_PORT" ]; then
        make_tls_certificates
        # nginx 1.22 (Debian 12) spells HTTP/2 as a listen parameter; 1.25.1+ also has `http2 on;`.
        listen="$listen\n    listen 127.0.0.1:$LB_TLS_PORT ssl http2;"
        listen="$listen\n    ssl_certificate $CLUSTER_DIR/tls/server.crt;\n    ssl_certificate_key $CLUSTER_DIR/tls/server.key;"
        listen="$listen\n    ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    {
        echo "pid $CLUSTER_DIR/nginx.pid;"
        echo "error_log $CLUSTER_DIR/nginx-error.log warn;"
        echo "worker_processes 1;"
        echo "events { worker_connections 4096; }"
        echo "http {"
        echo "    access_log off;"
        echo "    client_body_temp_path $CLUSTER_DIR/nginx/body; proxy_temp_path $CLUSTER_DIR/nginx/proxy;"
        echo "    fastcgi_temp_path $CLUSTER_DIR/nginx/fastcgi; uwsgi_temp_path $CLUSTER_DIR/nginx/uwsgi; scgi_temp_path $CLUSTER_DIR/nginx/scgi;"
        sed -e '/^    server node[0-9]:5000/d' -e "s|listen 8080;|$listen|" \
            -e "s|    least_conn;|    least_conn;\n$servers|" deploy/nginx-sse.conf | sed 's/^/    /'
        echo "}"
    } >"$CLUSTER_DIR/nginx.conf"
    "$NGINX" -c "$CLUSTER_DIR/nginx.conf" -p "$CLUSTER_DIR/nginx" -e "$CLUSTER_DIR/nginx-error.log"
    wait_for_port "$LB_PORT"
    echo "nginx: http://127.0.0.1:$LB_PORT/ (pid $(cat "$CLUSTER_DIR/nginx.pid"))"
    if [ -n "$LB_TLS_PORT" ]; then
        wait_for_port "$LB_TLS_PORT"
        echo "nginx: https://localhost:$LB_TLS_PORT/ (HTTP/2; trust $CLUSTER_DIR/tls/ca.crt, e.g. curl --cacert it)"
    fi
    echo "publish key: in $CLUSTER_DIR/publish-key (Authorization: Bearer KEY; the demo page has a field for it)"
}

down() {
    rm -f "$CLUSTER_DIR/publish-key"
    for pidfile in "$CLUSTER_DIR"/nginx.pid "$CLUSTER_DIR"/node*.pid "$CLUSTER_DIR"/sentinel*.pid "$CLUSTER_DIR"/redis*.pid; do
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
