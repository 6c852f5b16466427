"""p99 at given rates: the ceiling (sse-trivial) and broker variants in interleaved rounds, per-round ratios (issue 18 item 4).
Needs make bench built once (.build/bench, .build/release). VARIANTS="label=binary|extra args;...", RATES=100,300,600, ROUNDS=3."""
import os, sys, statistics
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'Benchmarks'))
import bench
RATES = [int(r) for r in os.environ.get('RATES', '100,300,600').split(',')]
ROUNDS = int(os.environ.get('ROUNDS', '3'))
# VARIANTS: label=binary|extra args;...
variants = []
for spec in os.environ.get('VARIANTS', 'default=' + os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '.build', 'release', 'sse-broker') + '|').split(';'):
    label, rest = spec.split('=', 1)
    binary, extra = rest.split('|', 1)
    variants.append((label, binary, extra.split()))
redis = bench.Redis()
def start_broker(binary, extra):
    port = bench.free_port()
    p = bench.start([binary, '--port', str(port), '--redis-url', redis.url(), '--history', '0', '--heartbeat', '15',
                     '--log-level', 'error', '--threads', '2', '--client-buffer', str(4 << 20), *extra])
    bench.wait_port(port)
    return p, port
servers = {label: start_broker(binary, extra) for label, binary, extra in variants}
try:
    for rate in RATES:
        events = max(300, rate * 3)
        rows = {'trivial': []} | {label: [] for label, _, _ in variants}
        for r in range(ROUNDS):
            rows['trivial'].append(bench.trivial_run(1000, events, rate)['p99_ms'])
            for label, (p, port) in servers.items():
                redis.flush()
                res = bench.load(f'{label} {rate}/s', port=port, connections=1000, events=events, rate=rate, size=64,
                                 warmup_ms=1000, drain_ms=3000, path='/stream?channel=%s%d', publish_port=redis.port,
                                 pids=str(p.pid), publish='redis', format='flask')
                rows[label].append(res['p99_ms'] if not res['lost'] else float('nan'))
        line = f'{rate}/s: ceiling p99 {rows["trivial"]}'
        for label, _, _ in variants:
            ratios = [round(a / b, 2) for a, b in zip(rows[label], rows['trivial'])]
            line += f' | {label} {rows[label]} ratios {ratios} median {statistics.median(ratios)}'
        print(line, flush=True)
finally:
    for p, _ in servers.values(): bench.stop(p)
    for p in bench.STARTED:
        try: bench.stop(p)
        except Exception: pass
