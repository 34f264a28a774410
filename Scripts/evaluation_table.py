#!/usr/bin/env python3
"""The results table of Documentation/Evaluation.md from Scripts/evaluate.sh's
results.jsonl.

  evaluation_table.py OUTDIR/results.jsonl
"""
import json
import sys

ORDER = ["failure", "scale", "asymmetric", "pause", "autoscale"]


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows.sort(key=lambda r: (["nat", "firewall", "lb"].index(r["nf"]), ORDER.index(r["scenario"]), r["store"] != "redis"))
    print("| NF | scenario | state | connections broken | UDP lost / sent | longest UDP gap (ms) "
          "| longest TCP silence (ms) | latency p50 / p99 (µs) | instances (most, at the end) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        state = "Redis (shared)" if r["store"] == "redis" else "per instance"
        udp = f"{r['udpLost']} / {r['udpSent']}" if r["udpSent"] else "-"
        gap = f"{r['udpGapMsMax']:.0f}" if r["udpSent"] else "-"
        latency = f"{r['latencyP50UsMax']} / {r['latencyP99UsMax']}" if r.get("latencyP50UsMax") is not None else "-"
        print(f"| {r['nf']} | {r['scenario']} | {state} | {r['broken']} of {r['connections']} | {udp} | {gap} "
              f"| {r['tcpGapMsMax']:.0f} | {latency} | {r.get('fleetMax', '-')}, {r.get('fleetEnd', '-')} |")


if __name__ == "__main__":
    main(sys.argv[1])
