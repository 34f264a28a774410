#!/usr/bin/env python3
"""Writes the decode fixtures that StatelessKitTests compares the parser with.

For every capture under ../shared/traces, tshark decodes a fixed sample of
packets (all of a small capture; every k-th packet of a large one, plus
every ICMP, VLAN-tagged or fragmented one, up to a bound) and the fields
the tests compare are written to Tests/StatelessKitTests/Fixtures/tshark/.
Run it again only when the traces or the compared fields change; the tests
themselves need no tshark.

    python3 Scripts/make-tshark-fixtures.py [SHARED_DIR]
"""
import json
import os
import subprocess
import sys

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols",
    "vlan.id",
    "ip.src", "ip.dst", "ip.proto", "ip.flags.df", "ip.flags.mf", "ip.frag_offset", "ip.id",
    "ip.checksum.status",
    "ipv6.src", "ipv6.dst", "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
    "tcp.srcport", "tcp.dstport", "tcp.checksum.status",
    "udp.srcport", "udp.dstport", "udp.checksum.status",
    "icmp.type", "icmp.code", "icmp.ident", "icmp.checksum.status",
    "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier", "icmpv6.checksum.status",
    "_ws.malformed", "_ws.expert.severity", "_ws.expert.message",
]
# Decode each packet on its own: no reassembly, checksums verified.
PREFERENCES = [
    "ip.defragment:FALSE", "ipv6.defragment:FALSE", "tcp.desegment_tcp_streams:FALSE",
    "ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE",
]
SAMPLE = 100
EXTRA = 60


def decode(path):
    command = ["tshark", "-n", "-r", path, "-T", "json"]
    for preference in PREFERENCES:
        command += ["-o", preference]
    for field in FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [packet["_source"]["layers"] for packet in json.loads(output or "[]")]


def interesting(layers):
    protocols = layers.get("frame.protocols", [""])[0]
    return ("icmp" in protocols or "vlan" in protocols or "1" in layers.get("ip.flags.mf", [])
            or any(v != "0" for v in layers.get("ip.frag_offset", [])) or "ipv6.fraghdr.offset" in layers)


def sample(packets):
    if len(packets) <= SAMPLE + EXTRA:
        return packets
    step = -(-len(packets) // SAMPLE)
    chosen = {i for i in range(0, len(packets), step)}
    extra = [i for i, p in enumerate(packets) if i not in chosen and interesting(p)]
    chosen.update(extra[:EXTRA])
    return [packets[i] for i in sorted(chosen)]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared")
    traces = os.path.join(shared, "traces")
    out = os.path.join(root, "Tests", "StatelessKitTests", "Fixtures", "tshark")
    os.makedirs(out, exist_ok=True)
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    for directory in sorted(os.listdir(traces)):
        folder = os.path.join(traces, directory)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".pcap", ".pcapng")):
                continue
            packets = decode(os.path.join(folder, name))
            chosen = sample(packets)
            fixture = {"trace": f"{directory}/{name}", "decoder": version, "preferences": PREFERENCES,
                       "packets": len(packets), "sample": chosen}
            target = os.path.join(out, f"{directory}__{name}.json")
            with open(target, "w") as f:
                f.write("{\n")
                for key in ("trace", "decoder", "preferences", "packets"):
                    f.write(f"  {json.dumps(key)}: {json.dumps(fixture[key])},\n")
                f.write('  "sample": [\n')
                f.write(",\n".join("    " + json.dumps(p, sort_keys=True) for p in chosen))
                f.write("\n  ]\n}\n")
            print(f"{directory}/{name}: {len(chosen)} of {len(packets)} packets")


if __name__ == "__main__":
    main()
