set -e
RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
BP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly no --dir /tmp/r18 >/dev/null 2>&1 & RPID=$!
sleep 0.3
/work/wt-tls/.build/release/sse-broker --port $BP --redis-url redis://127.0.0.1:$RP/0 --log-level error --threads 2 >/dev/null 2>&1 & BPID=$!
sleep 1.5
# a held stream keeps the channel subscribed
(curl -sN "http://127.0.0.1:$BP/stream?channel=storm" >/dev/null &) ; sleep 0.5
for i in $(seq 1 40); do curl -s -X POST -H 'Content-Type: application/json' -d "{\"data\": \"$i 0 x\"}" "http://127.0.0.1:$BP/publish?channel=storm" > last.json; if [ $i = 20 ]; then cp last.json id20.json; fi; done
ID=$(python3 -c 'import json;print(json.load(open("id20.json"))["id"])')
echo "resume from $ID"
python3 storm.py --port $BP --n 3000 --concurrency 50 --channel storm --broker-pid $BPID --redis-pid $RPID
redis-cli -p $RP CONFIG RESETSTAT >/dev/null
python3 storm.py --port $BP --n 3000 --concurrency 50 --channel storm --last-event-id "$ID" --events 20 --broker-pid $BPID --redis-pid $RPID
redis-cli -p $RP INFO commandstats | grep -E 'evalsha|xrange|get:'
redis-cli -p $RP CONFIG RESETSTAT >/dev/null
python3 storm.py --port $BP --n 3000 --concurrency 500 --channel storm --last-event-id "$ID" --events 20 --broker-pid $BPID --redis-pid $RPID
redis-cli -p $RP INFO commandstats | grep -E 'evalsha|xrange'
kill $BPID; sleep 1; kill $RPID
