#!/usr/bin/env python3
"""Real TCP transfers for the namespace tests: `serve PORT COUNT` accepts
COUNT connections and prints, per connection, the bytes received and their
SHA-256; `send HOST PORT COUNT BYTES` opens COUNT connections at once and
sends BYTES of seeded pseudo-random data on each, printing what it sent the
same way. Each line is JSON: {"connection": i, "bytes": n, "sha256": h}."""
import hashlib
import json
import random
import socket
import sys
import threading


def serve(port, count):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(count)
    print(json.dumps({"listening": port}), flush=True)
    results = {}

    def receive(connection):
        digest = hashlib.sha256()
        received = 0
        first = connection.recv(4)
        index = int.from_bytes(first, "big") if len(first) == 4 else -1
        while True:
            chunk = connection.recv(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        connection.close()
        results[index] = {"connection": index, "bytes": received, "sha256": digest.hexdigest()}

    threads = []
    for _ in range(count):
        connection, _ = listener.accept()
        thread = threading.Thread(target=receive, args=(connection,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    for index in sorted(results):
        print(json.dumps(results[index]), flush=True)


def send(host, port, count, size):
    results = {}
    errors = []

    def transfer(index):
        generator = random.Random(index)
        digest = hashlib.sha256()
        try:
            connection = socket.create_connection((host, port), timeout=60)
            connection.sendall(index.to_bytes(4, "big"))
            left = size
            while left > 0:
                chunk = generator.randbytes(min(left, 1 << 16))
                connection.sendall(chunk)
                digest.update(chunk)
                left -= len(chunk)
            connection.shutdown(socket.SHUT_WR)
            while connection.recv(1 << 16):
                pass
            connection.close()
            results[index] = {"connection": index, "bytes": size, "sha256": digest.hexdigest()}
        except OSError as error:
            errors.append(f"connection {index}: {error}")

    threads = [threading.Thread(target=transfer, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in sorted(results):
        print(json.dumps(results[index]), flush=True)
    for error in errors:
        print(json.dumps({"error": error}), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
