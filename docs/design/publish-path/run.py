"""Publish-path measurements: one redis-server, one broker (2 loops), 1,000 streams on one channel,
the patched load tool; per run: load result, per-thread broker CPU, Redis commandstats and CPU."""
import json, os, signal, socket, subprocess, sys, time

BROKER = os.environ.get('BROKER', '/work/wt-tls/.build/release/sse-broker')
LOAD = os.environ.get('LOAD', '/tmp/r18/sse-load')
BATCH = int(os.environ.get('BATCH', '0'))   # events per POST /publish for an extra batched row (0: none)
ONLY_HISTORY = os.environ.get('ONLY_HISTORY') == '1'
TICK = os.sysconf('SC_CLK_TCK')

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_port(port):
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0: return
        time.sleep(0.05)
    raise RuntimeError('no listener')

def threads(pid):
    out = {}
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            s = open(f'/proc/{pid}/task/{t}/stat').read()
            name = s[s.index('(') + 1:s.rindex(')')]
            f = s.rsplit(')', 1)[1].split()
            out[f'{name}/{t}'] = (int(f[11]) + int(f[12])) / TICK
        except OSError: pass
    return out

def cpu(pid):
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

def cli(port, *a):
    return subprocess.run(['redis-cli', '-p', str(port), *a], capture_output=True, text=True, check=True).stdout

def commandstats(port):
    out = {}
    for line in cli(port, 'INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_'):
            name, rest = line[8:].split(':', 1)
            kv = dict(x.split('=') for x in rest.split(','))
            out[name] = {'calls': int(kv['calls']), 'usec': int(kv['usec']), 'usec_per_call': float(kv['usec_per_call'])}
    return out

RUN = [0]
def run(label, broker, rport, bport, publish, rate, events, conns=4, clients=1000, extra=()):
    RUN[0] += 1
    cli(rport, 'CONFIG', 'RESETSTAT')
    t0, r0 = threads(broker.pid), cpu(REDIS.pid)
    args = [LOAD, '--label', label, '--sources', '8', '--prefix', f'q{RUN[0]}c', '--port', str(bport),
            '--connections', str(clients), '--events', str(events), '--rate', str(rate), '--size', '64',
            '--warmup-ms', '1000', '--drain-ms', '3000', '--pids', str(broker.pid), '--path', '/stream?channel=%s%d']
    if publish == 'redis':
        args += ['--publish', 'redis', '--publish-port', str(rport), '--format', 'flask']
    else:
        args += ['--publish', 'broker', '--publish-port', str(bport), '--publish-conns', str(conns)]
    args += list(extra)
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if res.returncode:
        print(label, 'FAILED', res.stderr[-500:], flush=True); return None
    out = json.loads(res.stdout)
    t1, r1 = threads(broker.pid), cpu(REDIS.pid)
    stats = commandstats(rport)
    keep = {k: v for k, v in stats.items() if k in ('evalsha', 'publish', 'xadd', 'get', 'set', 'incr', 'expire', 'exists', 'script|load', 'xrange')}
    delta = {k: round(t1[k] - t0.get(k, 0), 2) for k in t1 if t1[k] - t0.get(k, 0) >= 0.01}
    summary = {k: out[k] for k in ('label', 'rate', 'events', 'published', 'publish_errors', 'achieved_rate', 'received', 'expected', 'lost',
                                    'duplicates', 'seconds', 'deliveries_per_second', 'p50_ms', 'p99_ms', 'server_cpu_percent',
                                    'first_receipt_p99_ms', 'last_receipt_p99_ms')}
    summary['broker_thread_cpu_s'] = delta
    summary['redis_cpu_s'] = round(r1 - r0, 2)
    summary['redis_commandstats'] = keep
    print(json.dumps(summary), flush=True)
    return summary

def start_broker(rport, history):
    bport = free_port()
    args = [BROKER, '--port', str(bport), '--redis-url', f'redis://127.0.0.1:{rport}/0', '--heartbeat', '15',
            '--log-level', 'error', '--threads', '2', '--client-buffer', str(4 << 20)]
    if not history: args += ['--history', '0']
    args += os.environ.get('BROKER_ARGS', '').split()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(bport)
    return p, bport

rport = free_port()
REDIS = subprocess.Popen(['redis-server', '--port', str(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_port(rport)
plan = sys.argv[1] if len(sys.argv) > 1 else 'all'
try:
    for history in ((True,) if ONLY_HISTORY else (False, True)):
        broker, bport = start_broker(rport, history)
        try:
            h = 'history on' if history else 'history 0'
            if plan in ('all', 'low'):
                run(f'raw PUBLISH, {h}, 100/s', broker, rport, bport, 'redis', 100, 300)
                run(f'POST /publish, {h}, 100/s', broker, rport, bport, 'broker', 100, 300)
            if plan == 'rates':
                for rate in (300, 600, 1000):
                    run(f'raw PUBLISH, {h}, {rate}/s', broker, rport, bport, 'redis', rate, rate * 3)
                run(f'POST /publish x4 conns, {h}, ask 5000/s', broker, rport, bport, 'broker', 5000, 10000)
            if plan in ('all', 'high'):
                run(f'raw PUBLISH, {h}, ask 5000/s', broker, rport, bport, 'redis', 5000, 15000)
                run(f'POST /publish x4 conns, {h}, ask 5000/s', broker, rport, bport, 'broker', 5000, 10000)
                run(f'POST /publish x16 conns, {h}, ask 5000/s', broker, rport, bport, 'broker', 5000, 10000, conns=16)
                if BATCH > 1:
                    run(f'POST /publish batches of {BATCH} x4 conns, {h}, ask 5000/s', broker, rport, bport, 'broker', 5000, 15000,
                        extra=('--publish-batch', str(BATCH)))
        finally:
            broker.send_signal(signal.SIGTERM); broker.wait(timeout=20)
finally:
    REDIS.send_signal(signal.SIGTERM); REDIS.wait(timeout=20)
