#!/usr/bin/env python3
"""Helpers of scale.sh (contrib/bench/README.md); standard library only.

  scale.py hold N PORT READY_FILE SECONDS  open N keep-alive connections to
      127.0.0.1:PORT, send GET /healthz on each and read the answer, write
      "ready N" to READY_FILE, then keep them open until killed or SECONDS pass
  scale.py routes N DIR                    a routing table of N to_prefix rules
  scale.py tenants N CONF_IN CONF_OUT      CONF_IN with N tenants in all
"""
import hashlib
import json
import os
import random
import selectors
import socket
import sys
import time

MAX_CONNS = 20000
MAX_HOLD_S = 300


def hold(n, port, ready_file, seconds):
    if not 0 < n <= MAX_CONNS or not 0 < seconds <= MAX_HOLD_S:
        sys.exit(f"hold: 1..{MAX_CONNS} connections, 1..{MAX_HOLD_S} s")
    deadline = time.monotonic() + seconds
    sel = selectors.DefaultSelector()
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = []
    # Connect in batches so the listen backlog never overflows.
    for start in range(0, n, 256):
        batch = []
        for _ in range(start, min(n, start + 256)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(request)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, bytearray())
            batch.append(s)
        socks.extend(batch)
        waiting = len(batch)
        while waiting > 0:
            if time.monotonic() > deadline:
                sys.exit("hold: no answer in time")
            for key, _ in sel.select(timeout=1):
                buf = key.data
                chunk = key.fileobj.recv(4096)
                if not chunk:
                    sys.exit("hold: the server closed a connection")
                buf += chunk
                head, sep, body = bytes(buf).partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(body) >= length:
                    sel.unregister(key.fileobj)
                    waiting -= 1
    with open(ready_file + ".tmp", "w") as f:
        f.write(f"ready {len(socks)}\n")
    os.rename(ready_file + ".tmp", ready_file)
    time.sleep(max(0.0, deadline - time.monotonic()))


# Country codes, weighted roughly as in an international least-cost sheet.
CC = ["1", "1", "44", "49", "33", "39", "34", "31", "91", "91", "91", "92", "880", "94",
      "86", "81", "82", "65", "60", "62", "63", "66", "84", "61", "971", "966", "20", "27",
      "234", "254", "55", "52", "54", "7", "90", "972", "380", "40", "36", "420"]


def routes(n, out_dir):
    if not 1 <= n <= 200000:
        sys.exit("routes: 1..200000 rules")
    rnd = random.Random(7)
    prefixes = set()
    while len(prefixes) < n - 1:
        p = "+" + rnd.choice(CC) + "".join(rnd.choice("0123456789")
                                           for _ in range(rnd.randint(1, 5)))
        prefixes.add(p)
    # Longest first, so no rule hides a longer one after it; the benchmark's
    # number (+919876543210) falls to "india" unless a longer prefix takes it.
    ordered = sorted(prefixes, key=lambda p: (-len(p), p))
    rules = [{"name": f"lcr-{i}", "match": {"to_prefix": [p]}, "vendors": ["clouddialer"]}
             for i, p in enumerate(ordered)]
    rules.append({"name": "india", "match": {"to_prefix": ["+91"]}, "vendors": ["clouddialer"]})
    os.makedirs(out_dir, exist_ok=True)
    for k in range(0, len(rules), 10000):
        with open(os.path.join(out_dir, f"{10 + k // 10000:02d}-rules.json"), "w") as f:
            json.dump({"rules": rules[k:k + 10000]}, f)
    with open(os.path.join(out_dir, "99-default.json"), "w") as f:
        json.dump({"rules": [{"name": "default", "match": {}, "vendors": ["clouddialer"]}]}, f)


def tenants(n, conf_in, conf_out):
    if not 1 <= n <= 100000:
        sys.exit("tenants: 1..100000")
    with open(conf_in) as f:
        conf = json.load(f)
    extra = []
    for i in range(n - 1):
        key = hashlib.sha256(f"bench-tenant-key-{i}".encode()).hexdigest()
        extra.append({"id": f"bench-{i:05d}", "api_key_sha256": [key], "default_country": "IN",
                      "webhook_secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZg==",
                      "vendors": ["clouddialer"]})
    # The benchmark's tenant last: a lookup that stops at the first match would
    # look at every other tenant first.
    conf["tenants"] = extra + conf["tenants"][:1]
    with open(conf_out, "w") as f:
        json.dump(conf, f)


def main():
    a = sys.argv[1:]
    if len(a) == 5 and a[0] == "hold":
        hold(int(a[1]), int(a[2]), a[3], float(a[4]))
    elif len(a) == 3 and a[0] == "routes":
        routes(int(a[1]), a[2])
    elif len(a) == 4 and a[0] == "tenants":
        tenants(int(a[1]), a[2], a[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
