#!/usr/bin/env python3
"""Server CPU and RSS of one big SET, sent at full speed, then DEL.

    taskset -c 1 python3 loadtest/big-set.py [BINARY] [MIB] [REPS]
        (defaults: target/release/stratus, 500, 3)

Starts the binary pinned to CPU 0 (`taskset -c 0`) on port 7798 (RESP),
then REPS times: sends `SET k <MIB MiB>` on one connection as fast as the
socket takes it, waits for `+OK`, and prints the wall time, the server's
CPU time for it (user + system, from /proc/<pid>/stat), its RSS after the
SET and after a `DEL k` and a second's pause (a big free is lazy). What it
shows: how much the upload's read buffer costs as it grows (see
`src/allocator.rs` and `proxy::memory::grow`), and that nothing is left
behind once the value is gone.
"""
import os, socket, subprocess, sys, time

binp = sys.argv[1] if len(sys.argv) > 1 else 'target/release/stratus'
mib = int(sys.argv[2]) if len(sys.argv) > 2 else 500
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
server = subprocess.Popen(
    ['taskset', '-c', '0', binp, 'serve', '--port', '7798', '--http-port', '0',
     '--memcached-port', 'any'],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    env=dict(os.environ, STRATUS_LOG='warn'))
time.sleep(1.5)


def cpu_seconds():
    fields = open(f'/proc/{server.pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def rss():
    """The server's resident set, MB."""
    for line in open(f'/proc/{server.pid}/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) // 1024


try:
    conn = socket.create_connection(('127.0.0.1', 7798))
    piece = b'x' * (1 << 20)
    for rep in range(reps):
        cpu0, t0 = cpu_seconds(), time.time()
        conn.sendall(b'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n' % (mib << 20))
        for _ in range(mib):
            conn.sendall(piece)
        conn.sendall(b'\r\n')
        reply = conn.recv(100).strip().decode()
        wall, cpu = time.time() - t0, cpu_seconds() - cpu0
        after_set = rss()
        conn.sendall(b'*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n')
        conn.recv(100)
        time.sleep(1)
        print(f'SET {mib} MiB #{rep + 1}: {reply}, wall {wall:.2f} s, server CPU '
              f'{cpu:.2f} s, RSS {after_set} MB after the SET, {rss()} MB after DEL')
finally:
    server.terminate()
    server.wait()
