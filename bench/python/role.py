"""System "cpython": CPython's multiprocessing.connection, one side of one
workload. Speaks the control protocol of bench/lib/role.ts: argv[1] is the
role's JSON arguments; one JSON object per line on stdout ("ready", then a
"result" or "error" for every {"cmd":"run"} line read on stdin).

Variants: W3 'bytes' (recv_bytes) or 'into' (recv_bytes_into a reused
bytearray); W5 'auth' or 'noauth'; W4 uses conn.send/conn.recv (pickle).
"""
import json
import os
import struct
import sys
import time
import traceback
import zlib
from multiprocessing.connection import Client, Listener

AUTHKEY = b'mpconn-bench-authkey'
PERIOD = 65521  # same pattern as bench/lib/payload.ts

_block = bytes(((j * 7 + (j >> 8) * 13) & 0xff) for j in range(PERIOD))


def pattern(size):
    reps = size // PERIOD + 1
    return bytearray((_block * reps)[:size]) if reps > 1 else bytearray(_block[:size])


_senders = {}


def sender_buffer(size):
    """Made once per size and reused across runs (restamped before every send)."""
    buf = _senders.get(size)
    if buf is None:
        buf = _senders[size] = pattern(size)
    return buf


def stamp(buf, i):
    n = len(buf)
    if n >= 4:
        struct.pack_into('>I', buf, 0, i)
    if n >= 8:
        struct.pack_into('>I', buf, n - 4, i)


def small_object(i):
    return {'id': i, 'name': 'widget', 'values': [1.5, 2.5, 3.5]}


def peak_rss_kib():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def emit(event, **body):
    body['event'] = event
    sys.stdout.write(json.dumps(body) + '\n')
    sys.stdout.flush()


def summary(lat_us):
    s = sorted(lat_us)
    n = len(s)

    def at(q):
        import math
        return s[min(n - 1, max(0, math.ceil(q * n) - 1))]
    return {'medianUs': at(0.5), 'p99Us': at(0.99), 'meanUs': sum(s) / n, 'minUs': s[0]}


def to_address(a):
    return a if isinstance(a, str) else (a[0], a[1])


def serve(handler):
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd['cmd'] == 'exit':
            return
        try:
            c0 = time.process_time()
            result = handler(cmd['spec'])
            result['runCpuMs'] = (time.process_time() - c0) * 1000
            result['peakRssKiB'] = peak_rss_kib()
            emit('result', **result)
        except Exception as e:  # reported, the orchestrator decides
            emit('error', message='%s: %s' % (type(e).__name__, e), stack=traceback.format_exc())


def main():
    args = json.loads(sys.argv[1])
    workload, variant = args['workload'], args['variant']
    authkey = AUTHKEY if workload == 'W5' and variant == 'auth' else None

    if args['side'] == 'server':
        listeners = {}
        addresses = {}
        for t in args['transports']:
            if t == 'unix':
                listeners[t] = Listener(args['addresses']['unix'], 'AF_UNIX', backlog=511, authkey=authkey)
                addresses[t] = listeners[t].address
            else:
                listeners[t] = Listener(('127.0.0.1', 0), 'AF_INET', backlog=511, authkey=authkey)
                addresses[t] = list(listeners[t].address)
        emit('ready', addresses=addresses)
        into = [None]

        def run(spec):
            total = spec['warmup'] + spec['count']
            warmup = spec['warmup']
            listener = listeners[spec['transport']]
            if workload == 'W5':
                for _ in range(total):
                    listener.accept().close()
                return {'accepted': total}
            conn = listener.accept()
            try:
                if workload == 'W2':
                    for _ in range(total):
                        conn.send_bytes(conn.recv_bytes())
                    return {'echoed': total}
                t0 = time.perf_counter()
                c0 = time.process_time()
                messages = 0
                nbytes = 0
                crc = None
                last_object = None
                if workload == 'W4':
                    last = None
                    for i in range(total):
                        last = conn.recv()
                        messages += 1
                        if i == warmup - 1:
                            t0 = time.perf_counter()
                            c0 = time.process_time()
                    last_object = last
                elif variant == 'into':
                    if into[0] is None or len(into[0]) < spec['size']:
                        into[0] = bytearray(spec['size'])
                    buf = into[0]
                    n = 0
                    for i in range(total):
                        n = conn.recv_bytes_into(buf)
                        nbytes += n
                        messages += 1
                        if i == warmup - 1:
                            t0 = time.perf_counter()
                            c0 = time.process_time()
                    crc = zlib.crc32(memoryview(buf)[:n])
                else:
                    last = None
                    for i in range(total):
                        last = conn.recv_bytes()
                        nbytes += len(last)
                        messages += 1
                        if i == warmup - 1:
                            t0 = time.perf_counter()
                            c0 = time.process_time()
                    crc = zlib.crc32(last) if last is not None else None
                seconds = time.perf_counter() - t0
                cpu = (time.process_time() - c0) * 1000
                return {'messages': messages, 'bytes': nbytes, 'checksum': crc, 'lastObject': last_object,
                        'seconds': seconds, 'timedMessages': spec['count'],
                        'timedBytes': spec['count'] * spec['size'], 'cpuMs': cpu}
            finally:
                conn.close()

        try:
            serve(run)
        finally:
            for listener in listeners.values():
                listener.close()
        emit('exit')
        return

    emit('ready')

    def run(spec):
        address = to_address(spec['address'])
        total = spec['warmup'] + spec['count']
        warmup = spec['warmup']
        c0 = time.process_time()
        t0 = time.perf_counter()
        if workload == 'W5':
            lat = []
            t_timed = t0
            for i in range(total):
                if i == warmup:
                    t_timed = time.perf_counter()
                t = time.perf_counter()
                c = Client(address, authkey=authkey)
                if i >= warmup:
                    lat.append((time.perf_counter() - t) * 1e6)
                c.close()
            seconds = time.perf_counter() - t_timed
            r = {'connects': total, 'seconds': seconds, 'timedConnects': spec['count'],
                 'cpuMs': (time.process_time() - c0) * 1000}
            r.update(summary(lat))
            return r
        conn = Client(address)
        extra = {}
        try:
            if workload == 'W2':
                out = sender_buffer(spec['size'])
                lat = []
                reply = None
                perf = time.perf_counter
                for i in range(total):
                    stamp(out, i)
                    t = perf()
                    conn.send_bytes(out)
                    reply = conn.recv_bytes()
                    if i >= warmup:
                        lat.append((perf() - t) * 1e6)
                extra = {'roundTrips': total, 'lastReplyChecksum': zlib.crc32(reply)}
                extra.update(summary(lat))
            elif workload == 'W4':
                for i in range(total):
                    conn.send(small_object(i))
            else:
                buf = sender_buffer(spec['size'])
                pack = struct.pack_into
                n = len(buf)
                send = conn.send_bytes
                if n >= 8:
                    for i in range(total):
                        pack('>I', buf, 0, i)
                        pack('>I', buf, n - 4, i)
                        send(buf)
                else:
                    for i in range(total):
                        stamp(buf, i)
                        send(buf)
        finally:
            seconds = time.perf_counter() - t0
            conn.close()
        r = {'sent': total, 'seconds': seconds, 'cpuMs': (time.process_time() - c0) * 1000}
        r.update(extra)
        return r

    serve(run)
    emit('exit')


if __name__ == '__main__':
    main()
