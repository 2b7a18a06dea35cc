"""Helpers of loadtest/slow-clients.sh, in the standard library only.

    python3 loadtest/slow_clients.py probe URL SECONDS HOST
        real clicks one after another, each on a new connection from
        127.0.0.2 (another client than the attack's 127.0.0.1, which the
        per-client cap may rightly refuse), every 50 ms; prints the count,
        the failures and p50/p99/max in ms as JSON.
    python3 loadtest/slow_clients.py h2ping HOST PORT CONNECTIONS SECONDS
        HTTP/2 connections (prior knowledge) that send a PING every second
        and never a request; prints how many the server closed and after how
        long (median, max) as JSON.
    python3 loadtest/slow_clients.py verdict H2PING_OUTPUT
        that JSON as one line of the report.
"""

import json
import socket
import statistics
import sys
import threading
import time


def probe(url, seconds, host):
    rest = url.split("://", 1)[1]
    hostport, path = rest.split("/", 1)
    addr, port = hostport.split(":")
    request = (
        f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
        "Chrome/131.0\r\nConnection: close\r\n\r\n"
    ).encode()
    times, failures = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            with socket.create_connection((addr, int(port)), timeout=10, source_address=("127.0.0.2", 0)) as s:
                s.sendall(request)
                head = s.recv(64)
                if not head.startswith(b"HTTP/1.1 302"):
                    raise OSError(head[:20])
            times.append((time.monotonic() - start) * 1000)
        except OSError:
            failures += 1
        time.sleep(0.05)
    times.sort()
    pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))], 2) if times else None
    print(json.dumps({"clicks": len(times), "failures": failures,
                      "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": round(times[-1], 2) if times else None}))


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2ping(host, port, connections, seconds):
    closed = []
    lock = threading.Lock()

    def one():
        opened = time.monotonic()
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
            s.sendall(PREFACE + frame(4, 0, 0))
            while time.monotonic() - opened < seconds:
                s.sendall(frame(6, 0, 0, b"refedge!"))
                s.settimeout(1.0)
                try:
                    data = s.recv(4096)
                    if data == b"":
                        raise ConnectionResetError
                    # A GOAWAY (type 7) is the server closing it.
                    if b"\x07\x00\x00\x00\x00\x00" in data:
                        raise ConnectionResetError
                except socket.timeout:
                    pass
        except OSError:
            with lock:
                closed.append(time.monotonic() - opened)

    threads = [threading.Thread(target=one) for _ in range(int(connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"connections": int(connections), "closed_by_server": len(closed),
                      "median_open_s": round(statistics.median(closed), 1) if closed else None,
                      "max_open_s": round(max(closed), 1) if closed else None}))


def verdict(path):
    r = json.load(open(path))
    print(f"(h2: {r['closed_by_server']} of {r['connections']} closed by the server, "
          f"median after {r['median_open_s']} s)")


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "verdict":
        verdict(sys.argv[2])
    else:
        h2ping(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
