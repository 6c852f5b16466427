"""Redis-side cost of the history publish: the shipped script (one event per EVALSHA) against a
batch prototype (N events per EVALSHA), one plain subscriber on the channel. Pipelined with
redis-benchmark; reports usec_per_call of evalsha and events/s."""
import json, re, signal, socket, subprocess, sys, time
sys.path.insert(0, '/tmp/r18')
import scripts

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

port = free_port()
redis = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp/r18'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.3)
def cli(*a):
    return subprocess.run(['redis-cli', '-p', str(port), *a], capture_output=True, text=True, check=True).stdout.strip()
sub = subprocess.Popen(['redis-cli', '-p', str(port), 'SUBSCRIBE', 'bench'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.3)
epoch = scripts.epoch
single = cli('SCRIPT', 'LOAD', scripts.publish)
tail = open('/tmp/r18/batch_tail.lua').read()
exact = cli('SCRIPT', 'LOAD', epoch + tail.replace('MAXLEN_MODE ', ''))
approx = cli('SCRIPT', 'LOAD', epoch + tail.replace('MAXLEN_MODE ', "'~', "))
keys = ['sse:history:epoch', 'sse:history:seq', 'sse:history:previous', 'sse:history:last:bench', 'sse:history:stream:bench']
head = '{"data": "0123456789 0123456789 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"'
tailarg = '}'
def stats():
    for line in cli('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_evalsha:'):
            return dict(x.split('=') for x in line.split(':', 1)[1].split(','))
def bench(label, sha, n, requests, pipeline):
    cli('CONFIG', 'RESETSTAT')
    if n == 0:
        args = [sha, '5', *keys, 'bench', head, tailarg, '1000', '3600', '90000', '', '']
    else:
        pairs = []
        for _ in range(n): pairs += [head, tailarg]
        args = [sha, '5', *keys, 'bench', '1000', '3600', '90000', '', '', *pairs]
    t = time.time()
    out = subprocess.run(['redis-benchmark', '-p', str(port), '-c', '1', '-n', str(requests), '-P', str(pipeline), '-q', 'EVALSHA', *args],
                         capture_output=True, text=True).stdout
    wall = time.time() - t
    s = stats()
    events = requests * max(1, n)
    per_call = float(s['usec_per_call'])
    print(json.dumps({'label': label, 'events_per_call': max(1, n), 'usec_per_call': per_call,
                      'usec_per_event': round(per_call / max(1, n), 2), 'events_per_s_wall': round(events / wall),
                      'redis_benchmark': out.strip().splitlines()[-1][:80] if out.strip() else ''}), flush=True)
try:
    bench('shipped publish script, 1 event/call, pipelined 64', single, 0, 60000, 64)
    bench('shipped publish script, 1 event/call, not pipelined', single, 0, 20000, 1)
    for n in (4, 16, 64):
        bench(f'batch prototype, MAXLEN exact', exact, n, max(500, 60000 // n), 8)
        bench(f'batch prototype, MAXLEN ~', approx, n, max(500, 60000 // n), 8)
    cli('CONFIG', 'RESETSTAT')
    subprocess.run(['redis-benchmark', '-p', str(port), '-c', '1', '-n', '100000', '-P', '64', '-q', 'PUBLISH', 'bench', head + tailarg], capture_output=True)
    for line in cli('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_publish:'): print(json.dumps({'label': 'raw PUBLISH, pipelined 64', 'stats': line}))
finally:
    sub.send_signal(signal.SIGTERM); sub.wait()
    redis.send_signal(signal.SIGTERM); redis.wait()
