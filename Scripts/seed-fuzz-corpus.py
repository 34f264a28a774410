#!/usr/bin/env python3
"""Writes every packet of the classic pcap captures given into DIR, one file
a packet, as the parser fuzzer's seed corpus.

    python3 Scripts/seed-fuzz-corpus.py DIR trace.pcap...
"""
import hashlib
import os
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = header[:4]
        order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
        if order is None:
            return  # pcapng: the classic captures seed enough
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            _, _, captured, _ = struct.unpack(order + "IIII", record)
            data = f.read(captured)
            if len(data) < captured:
                return
            yield data


def main():
    target = sys.argv[1]
    os.makedirs(target, exist_ok=True)
    count = 0
    for path in sys.argv[2:]:
        for data in packets(path):
            name = hashlib.sha1(data).hexdigest()
            with open(os.path.join(target, name), "wb") as f:
                f.write(data)
            count += 1
    print(f"seeded {target} with {count} packets")


if __name__ == "__main__":
    main()
