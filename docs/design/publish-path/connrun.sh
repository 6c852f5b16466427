# Connect+close cost only, 4 rounds of 5,000 streams (50 at a time): BROKER=path/to/sse-broker bash connrun.sh
WORK=$(mktemp -d); cd "$WORK"
ST=$(dirname "$(readlink -f "$0")")/storm.py
RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
BP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >/dev/null 2>&1 & RPID=$!
sleep 0.3
$BROKER --port $BP --redis-url redis://127.0.0.1:$RP/0 --log-level error --threads 2 >/dev/null 2>&1 & BPID=$!
sleep 1.5
(curl -sN "http://127.0.0.1:$BP/stream?channel=storm" >/dev/null &) ; sleep 0.5
for i in 1 2 3 4; do python3 $ST --port $BP --n 5000 --concurrency 50 --channel storm --broker-pid $BPID --redis-pid $RPID | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["broker_us_per_stream"], d["broker_threads_us"])'; done
kill $BPID; sleep 1; kill $RPID
