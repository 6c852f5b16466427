"""Connect/close and resume cost: N streams, C at a time, each opens /stream (optionally with
Last-Event-ID), waits for its head and K events, closes. Prints broker and Redis CPU per stream."""
import argparse, asyncio, json, os, time

def cpu(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

def threads(pid):
    out = {}
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            s = open(f'/proc/{pid}/task/{t}/stat').read()
            name = s[s.index('(') + 1:s.rindex(')')]
            f = s.rsplit(')', 1)[1].split()
            out[f'{name}/{t}'] = (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
        except OSError:
            pass
    return out

async def one(args, sem, counts, i):
    async with sem:
        reader, writer = await asyncio.open_connection('127.0.0.1', args.port, local_addr=(f'127.0.0.{1 + i % 8}', 0))
        extra = f'Last-Event-ID: {args.last_event_id}\r\n' if args.last_event_id else ''
        writer.write(f'GET /stream?channel={args.channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n'.encode())
        buf = b''
        while b'\r\n\r\n' not in buf:
            chunk = await reader.read(65536)
            if not chunk: raise RuntimeError('closed before head')
            buf += chunk
        head, _, body = buf.partition(b'\r\n\r\n')
        assert head.startswith(b'HTTP/1.1 200'), head[:60]
        got = body.count(b'\ndata:') + body.startswith(b'data:')
        while got < args.events:
            chunk = await reader.read(65536)
            if not chunk: raise RuntimeError('closed early')
            body += chunk
            got = body.count(b'\ndata:') + body.startswith(b'data:')
        counts['events'] += got
        counts['gaps'] += body.count(b'history-gap')
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:
            pass

async def main():
    p = argparse.ArgumentParser()
    p.add_argument('--port', type=int); p.add_argument('--n', type=int, default=2000)
    p.add_argument('--concurrency', type=int, default=50); p.add_argument('--channel', default='storm')
    p.add_argument('--last-event-id'); p.add_argument('--events', type=int, default=0)
    p.add_argument('--broker-pid', type=int); p.add_argument('--redis-pid', type=int)
    args = p.parse_args()
    sem = asyncio.Semaphore(args.concurrency)
    counts = {'events': 0, 'gaps': 0}
    b0, r0, t0 = cpu(args.broker_pid), cpu(args.redis_pid), threads(args.broker_pid)
    start = time.time()
    await asyncio.gather(*(one(args, sem, counts, i) for i in range(args.n)))
    wall = time.time() - start
    await asyncio.sleep(0.5)  # closes processed
    b1, r1, t1 = cpu(args.broker_pid), cpu(args.redis_pid), threads(args.broker_pid)
    per = {k: round((t1[k] - t0.get(k, 0)) * 1e6 / args.n, 1) for k in t1 if t1[k] - t0.get(k, 0) > 0}
    print(json.dumps({'n': args.n, 'wall_s': round(wall, 2), 'events': counts['events'], 'gaps': counts['gaps'],
                      'broker_us_per_stream': round((b1 - b0) * 1e6 / args.n, 1),
                      'redis_us_per_stream': round((r1 - r0) * 1e6 / args.n, 1), 'broker_threads_us': per}))

asyncio.run(main())
