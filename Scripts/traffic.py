#!/usr/bin/env python3
"""Real traffic for the namespace tests and the orchestration scenarios.

  traffic.py serve --tcp PORT --connections N [--udp PORT --flows M] [--timeline CSV] [--idle SECONDS]
  traffic.py send TARGET --tcp PORT --connections N --bytes B [--rate BYTES_PER_SECOND]
                         [--udp PORT --flows M --pps P --duration SECONDS]
  traffic.py check SENT.json RECEIVED.json

`check` compares what `send` and `serve` printed: connections intact
(every byte, the same SHA-256) and broken, datagrams lost, the longest gaps;
it prints that as JSON and exits 1 if any connection broke.

`send` opens N TCP connections at once and sends B bytes of seeded
pseudo-random data on each (paced to --rate per connection, so that they
last), and M UDP flows of numbered datagrams at P per second each. `serve`
receives them. Each prints one JSON object: per connection the bytes and
their SHA-256 (and errors), per UDP flow the datagrams sent or received;
`serve` adds, per connection and per flow, the longest silence between
arrivals in milliseconds (the gap an instance's failure leaves), and writes
a timeline of what arrived per 50 ms (for plots).
"""
import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time

BUCKET = 0.05


class Timeline:
    def __init__(self):
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.tcp = {}
        self.udp = {}

    def add(self, kind, amount):
        bucket = int((time.monotonic() - self.start) / BUCKET)
        with self.lock:
            table = self.tcp if kind == "tcp" else self.udp
            table[bucket] = table.get(bucket, 0) + amount

    def write(self, path):
        last = max(list(self.tcp) + list(self.udp) + [0])
        with open(path, "w") as out:
            out.write("seconds,tcp_megabits_per_second,udp_packets_per_second\n")
            for bucket in range(last + 1):
                out.write(f"{bucket * BUCKET:.2f},{self.tcp.get(bucket, 0) * 8 / BUCKET / 1e6:.3f},"
                          f"{self.udp.get(bucket, 0) / BUCKET:.1f}\n")


def serve(arguments):
    timeline = Timeline()
    results = {}
    flows = {}
    done = threading.Event()

    def receive(connection):
        digest = hashlib.sha256()
        received = 0
        index = -1
        last = None
        gap = 0.0
        error = None
        try:
            header = b""
            while len(header) < 4:
                chunk = connection.recv(4 - len(header))
                if not chunk:
                    break
                header += chunk
            index = int.from_bytes(header, "big") if len(header) == 4 else -1
            last = time.monotonic()
            while True:
                chunk = connection.recv(1 << 16)
                now = time.monotonic()
                if not chunk:
                    break
                gap = max(gap, now - last)
                last = now
                digest.update(chunk)
                received += len(chunk)
                timeline.add("tcp", len(chunk))
        except OSError as failure:
            error = str(failure)
        connection.close()
        result = {"connection": index, "bytes": received, "sha256": digest.hexdigest(), "gapMs": round(gap * 1000, 1)}
        if error:
            result["error"] = error
        results[index] = result

    def udp_receive(sock):
        sock.settimeout(0.2)
        while not done.is_set():
            try:
                data, _ = sock.recvfrom(2048)
            except socket.timeout:
                continue
            now = time.monotonic()
            if len(data) < 8:
                continue
            flow, number = struct.unpack("!II", data[:8])
            state = flows.setdefault(flow, {"received": 0, "last": now, "gap": 0.0, "highest": -1})
            state["received"] += 1
            state["gap"] = max(state["gap"], now - state["last"])
            state["last"] = now
            state["highest"] = max(state["highest"], number)
            timeline.add("udp", 1)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", arguments.tcp))
    listener.listen(max(arguments.connections, 1))
    udp_thread = None
    if arguments.udp:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", arguments.udp))
        udp_thread = threading.Thread(target=udp_receive, args=(udp,))
        udp_thread.start()
    print(json.dumps({"listening": arguments.tcp}), flush=True)
    threads = []
    listener.settimeout(arguments.idle)
    for _ in range(arguments.connections):
        try:
            connection, _ = listener.accept()
        except socket.timeout:
            break
        connection.settimeout(arguments.idle)
        thread = threading.Thread(target=receive, args=(connection,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    if udp_thread:
        # The flows' last datagrams: wait until they stop coming.
        while True:
            quiet = time.monotonic() - max([f["last"] for f in flows.values()] or [0])
            if quiet > 1.0:
                break
            time.sleep(0.1)
        done.set()
        udp_thread.join()
    if arguments.timeline:
        timeline.write(arguments.timeline)
    print(json.dumps({
        "tcp": [results[i] for i in sorted(results)],
        "accepted": len(threads),
        "udp": {str(flow): {"received": f["received"], "gapMs": round(f["gap"] * 1000, 1)}
                for flow, f in sorted(flows.items())},
    }), flush=True)


def send(arguments):
    results = {}
    errors = []
    sent = {}

    def transfer(index):
        generator = random.Random(index)
        digest = hashlib.sha256()
        try:
            connection = socket.create_connection((arguments.target, arguments.tcp), timeout=30)
            connection.sendall(index.to_bytes(4, "big"))
            left = arguments.bytes
            started = time.monotonic()
            done = 0
            while left > 0:
                chunk = generator.randbytes(min(left, 1 << 14))
                connection.sendall(chunk)
                digest.update(chunk)
                left -= len(chunk)
                done += len(chunk)
                if arguments.rate:
                    ahead = done / arguments.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            connection.shutdown(socket.SHUT_WR)
            while connection.recv(1 << 16):
                pass
            connection.close()
            results[index] = {"connection": index, "bytes": arguments.bytes, "sha256": digest.hexdigest()}
        except OSError as failure:
            errors.append({"connection": index, "error": str(failure)})

    def flow(index):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        started = time.monotonic()
        number = 0
        interval = 1.0 / arguments.pps
        while time.monotonic() - started < arguments.duration:
            sock.sendto(struct.pack("!II", index, number) + bytes(56), (arguments.target, arguments.udp))
            number += 1
            ahead = number * interval - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        sent[index] = number

    threads = [threading.Thread(target=transfer, args=(i,)) for i in range(arguments.connections)]
    if arguments.udp:
        threads += [threading.Thread(target=flow, args=(i,)) for i in range(arguments.flows)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"tcp": [results[i] for i in sorted(results)], "errors": errors,
                      "udp": {str(i): {"sent": sent[i]} for i in sorted(sent)}}), flush=True)
    return 1 if errors else 0


def last_json(path):
    lines = [line for line in open(path) if line.strip().startswith("{") and "listening" not in line]
    return json.loads(lines[-1]) if lines else {}


def check(arguments):
    sent, received = last_json(arguments.target), last_json(arguments.received)
    got = {r["connection"]: r for r in received.get("tcp", [])}
    intact = [r["connection"] for r in sent.get("tcp", [])
              if got.get(r["connection"], {}).get("sha256") == r["sha256"]
              and got[r["connection"]]["bytes"] == r["bytes"]]
    attempted = len(sent.get("tcp", [])) + len(sent.get("errors", []))
    gaps = sorted(r.get("gapMs", 0) for r in received.get("tcp", []))
    udp_sent = sum(f["sent"] for f in sent.get("udp", {}).values())
    udp_received = sum(f["received"] for f in received.get("udp", {}).values())
    udp_gaps = sorted(f["gapMs"] for f in received.get("udp", {}).values())
    summary = {
        "connections": attempted, "intact": len(intact), "broken": attempted - len(intact),
        "errors": sent.get("errors", []),
        "tcpGapMsMax": gaps[-1] if gaps else 0, "tcpGapMsMedian": gaps[len(gaps) // 2] if gaps else 0,
        "udpSent": udp_sent, "udpReceived": udp_received, "udpLost": udp_sent - udp_received,
        "udpGapMsMax": udp_gaps[-1] if udp_gaps else 0, "udpGapMsMedian": udp_gaps[len(udp_gaps) // 2] if udp_gaps else 0,
    }
    print(json.dumps(summary), flush=True)
    return 0 if summary["broken"] == 0 and attempted > 0 else 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "send", "check"])
    parser.add_argument("target", nargs="?")
    parser.add_argument("received", nargs="?")
    parser.add_argument("--tcp", type=int, default=5001)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--udp", type=int, default=0)
    parser.add_argument("--flows", type=int, default=0)
    parser.add_argument("--pps", type=float, default=100)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--timeline")
    parser.add_argument("--idle", type=float, default=60)
    arguments = parser.parse_args()
    if arguments.mode == "serve":
        serve(arguments)
        return 0
    if arguments.mode == "check":
        return check(arguments)
    return send(arguments)


if __name__ == "__main__":
    sys.exit(main())
