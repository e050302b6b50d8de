#!/usr/bin/env python3
"""RSS of `stratus serve` under the isolation issue's memory reproducers.

    python3 loadtest/rss-reproducers.py [BINARY]     (default target/release/stratus)

Starts the binary on ports 7796 (RESP) and 7797 (HTTP), creates cache `a`
capped at 1 MB and 5,000 ECPU/s, then prints the server's resident set
after each reproducer in turn: SETRANGE to 512 MB, MULTI with 300k queued
SETs, two unfinished MSETs with 512 MB bulk headers (64 MB sent each),
10,050 sockets from 127.0.0.2 (then a PING from 127.0.0.1 and the
connection counters). Needs ~10,100 file descriptors (`ulimit -n`).
"""
import json, socket, subprocess, sys, time, urllib.request

binp = sys.argv[1] if len(sys.argv) > 1 else 'target/release/stratus'
server = subprocess.Popen(
    [binp, 'serve', '--port', '7796', '--http-port', '7797', '--memcached-port', '0'],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)


def rss():
    """The server's resident set, MB."""
    for line in open(f'/proc/{server.pid}/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) // 1024


def post(path, body):
    req = urllib.request.Request('http://127.0.0.1:7797' + path, data=json.dumps(body).encode(),
                                 headers={'Content-Type': 'application/json'}, method='POST')
    return json.loads(urllib.request.urlopen(req).read())


def conn(token):
    s = socket.create_connection(('127.0.0.1', 7796))
    s.sendall(f'AUTH a {token}\r\n'.encode())
    s.recv(100)
    return s


def cmd(s, *args):
    s.sendall(('*%d\r\n' % len(args) + ''.join('$%d\r\n%s\r\n' % (len(a), a) for a in args)).encode())
    return s.recv(200)


try:
    token = post('/v1/caches', {'name': 'a', 'usage_limits': {
        'data_storage': {'maximum': 1, 'unit': 'MB'}, 'ecpu_per_second': {'maximum': 5000}}})['token']
    print('at start: RSS', rss(), 'MB')

    s = conn(token)
    print('SETRANGE big 536870911 x:', cmd(s, 'SETRANGE', 'big', '536870911', 'x'))
    time.sleep(0.5)
    print('  RSS', rss(), 'MB')

    m = conn(token)
    cmd(m, 'MULTI')
    m.sendall(b''.join(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$10\r\n0123456789\r\n' % (len(k), k)
                       for k in (b'{k}key:%d' % i for i in range(300000))))
    time.sleep(3)
    print('MULTI + 300k queued SETs: RSS', rss(), 'MB')
    m.settimeout(0.5)
    got = b''
    try:
        while True:
            d = m.recv(1 << 20)
            if not d:
                break
            got += d
    except OSError:
        pass
    print('  replies:', got.count(b'QUEUED'), 'QUEUED,', got.count(b'-'), 'errors; then RSS', rss(), 'MB')

    uploads = []
    for _ in range(2):
        b = conn(token)
        b.sendall(b'*3\r\n$4\r\nMSET\r\n$1\r\nk\r\n$536870912\r\n' + b'x' * (64 << 20))
        uploads.append(b)
    time.sleep(2)
    print('2 unfinished MSETs (512 MB headers, 64 MB sent each): RSS', rss(), 'MB')

    held = []
    for _ in range(10050):
        c = socket.socket()
        c.bind(('127.0.0.2', 0))
        c.connect(('127.0.0.1', 7796))
        held.append(c)
    time.sleep(1)
    print(f'{len(held)} sockets from 127.0.0.2: RSS', rss(), 'MB')
    other = socket.create_connection(('127.0.0.1', 7796))
    print('  PING from 127.0.0.1:', cmd(other, 'PING'))
    with urllib.request.urlopen('http://127.0.0.1:7797/metrics') as r:
        for line in r.read().decode().splitlines():
            if line.startswith(('stratus_connections_flood_total', 'stratus_connections_rejected_total')):
                print(' ', line)
finally:
    server.terminate()
    server.wait()
