#!/usr/bin/env python3
"""A bounded storm of malformed and oversized requests (tests/bench/hostile.sh).

    hostile_storm.py HOST PORT UNKNOWN_REPOS SLOW_CONNECTIONS

Sends each kind of request over raw sockets and prints, per kind, how many
were sent and the status lines nginx answered with (or how the connection
ended). Slow connections send their headers one byte a second while the
rest of the storm runs (20 s at least), and are closed at its end.
"""
import collections, socket, sys, threading, time

host, port, unknown, slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
HOLD_S = 20


def exchange(raw):
    """Send raw bytes; return the status code nginx answers, or how it ended."""
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(raw)
            head = s.recv(64)
    except OSError as e:
        return type(e).__name__
    if not head:
        return "closed"
    parts = head.split(b" ", 2)
    return parts[1].decode("ascii", "replace") if len(parts) > 1 else "garbled"


def request(path, headers=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\nUser-Agent: storm/1\r\n" + headers + b"Connection: close\r\n\r\n"


kinds = {
    "64 KiB header": lambda i: request(b"/v2/acme/app/manifests/1.0", b"X-Big: " + b"a" * 65536 + b"\r\n"),
    "200 headers of 4 KiB": lambda i: request(b"/v2/acme/app/manifests/1.0", b"".join(b"X-%d: %s\r\n" % (n, b"b" * 4096) for n in range(200))),
    "8 KiB path": lambda i: request(b"/v2/acme/" + b"c" * 8192 + b"/manifests/1.0"),
    "invalid UTF-8 path": lambda i: request(b"/v2/acme/\xff\xfe%d/manifests/\xc3\x28" % i),
    "invalid UTF-8 agent": lambda i: request(b"/v2/acme/app/manifests/1.0").replace(b"storm/1", b"\xff\xfe\xfd storm"),
    "unknown repository": lambda i: request(b"/v2/nobody%d/thing%d/manifests/1.0" % (i, i)),
}
counts = {"unknown repository": unknown}

stop = threading.Event()
slow_ends = collections.Counter()


def slowloris(n):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        slow_ends[type(e).__name__] += 1
        return
    data = request(b"/v2/acme/app/manifests/1.0")
    i = 0
    try:
        while not stop.is_set() and i < len(data) - 4:
            s.sendall(data[i:i + 1])
            i += 1
            stop.wait(1)
        slow_ends["closed by us after %s bytes" % ("<60" if i < 60 else ">=60")] += 1
    except OSError as e:
        slow_ends["ended by nginx: " + type(e).__name__] += 1
    finally:
        s.close()


threads = [threading.Thread(target=slowloris, args=(n,)) for n in range(slow)]
for t in threads:
    t.start()

results = {}
start = time.monotonic()
for kind, make in kinds.items():
    n = counts.get(kind, 200)
    seen = collections.Counter()
    lock = threading.Lock()

    def work(lo, hi):
        for i in range(lo, hi):
            r = exchange(make(i))
            with lock:
                seen[r] += 1

    workers = [threading.Thread(target=work, args=(k * n // 8, (k + 1) * n // 8)) for k in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    results[kind] = (n, seen)
# The slow connections are held for HOLD_S at least, real pulls going on.
stop.wait(max(0.0, HOLD_S - (time.monotonic() - start)))
stop.set()
for t in threads:
    t.join()

print("  storm: %.1f s" % (time.monotonic() - start))
for kind, (n, seen) in results.items():
    print("  %-32s %6d sent: %s" % (kind, n, ", ".join("%s %d" % kv for kv in sorted(seen.items()))))
print("  %-32s %6d held: %s" % ("slow headers", slow, ", ".join("%s %d" % kv for kv in sorted(slow_ends.items()))))
