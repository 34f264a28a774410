#!/usr/bin/env python3
"""Plots of the orchestration scenarios (Scripts/evaluate.sh's output):
for each NF and scenario, the TCP throughput the server received over time,
on the shared store and on a store per instance, with the scenario's events
marked. Writes OUTDIR/NF-SCENARIO.svg.

  plot_scenarios.py OUTDIR
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVENTS = {"failure": [(3, "kill -9 nf1")], "scale": [(2, "scale to 3"), (6, "scale to 1")], "asymmetric": [],
          "autoscale": [], "pause": [(3, "SIGSTOP nf1"), (3.3, "SIGCONT")]}
SCENARIOS = ("failure", "scale", "asymmetric", "pause", "autoscale")
LABELS = {"redis": "state in Redis (StatelessKit)", "memory": "state per instance (traditional)"}


SMOOTHING = 4  # 50 ms buckets averaged over 200 ms: the senders pace in bursts


def timeline(path):
    seconds, tcp = [], []
    with open(path) as source:
        for row in csv.DictReader(source):
            seconds.append(float(row["seconds"]))
            tcp.append(float(row["tcp_megabits_per_second"]))
    smoothed = [sum(tcp[max(0, i - SMOOTHING + 1):i + 1]) / len(tcp[max(0, i - SMOOTHING + 1):i + 1]) for i in range(len(tcp))]
    return seconds, smoothed


def main(out):
    results = {}
    with open(os.path.join(out, "results.jsonl")) as source:
        for line in source:
            if line.strip():
                result = json.loads(line)
                results[(result["nf"], result["scenario"], result["store"])] = result
    for nf in sorted({key[0] for key in results}):
        for scenario in SCENARIOS:
            figure, axes = plt.subplots(figsize=(8, 3.8))
            drawn = False
            for store in ("redis", "memory"):
                path = os.path.join(out, f"{nf}-{scenario}-{store}", "timeline.csv")
                if not os.path.exists(path):
                    continue
                seconds, tcp = timeline(path)
                result = results.get((nf, scenario, store), {})
                label = f"{LABELS[store]}: {result.get('broken', '?')} of {result.get('connections', '?')} connections broken"
                axes.plot(seconds, tcp, label=label, linewidth=1)
                drawn = True
            if not drawn:
                plt.close(figure)
                continue
            fleet = os.path.join(out, f"{nf}-{scenario}-redis", "fleet.csv")
            if scenario in ("scale", "autoscale") and os.path.exists(fleet):
                with open(fleet) as source:
                    rows = [row for row in csv.DictReader(source) if row["instances"].strip()]
                other = axes.twinx()
                other.step([float(r["seconds"]) for r in rows], [int(r["instances"]) for r in rows], where="post",
                           color="green", linewidth=0.8, label="instances receiving traffic (Redis run)")
                other.set_ylabel("instances")
                other.set_ylim(0, 4)
                other.legend(fontsize=8, loc="upper right")
            for at, text in EVENTS[scenario]:
                axes.axvline(at, color="grey", linestyle="--", linewidth=0.8)
                axes.text(at, axes.get_ylim()[1] * 0.95, " " + text, fontsize=8, va="top")
            axes.set_xlabel("seconds")
            axes.set_ylabel("TCP Mbit/s at the server (200 ms mean)")
            axes.set_title(f"{nf}: {scenario}")
            axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)
            figure.tight_layout()
            figure.savefig(os.path.join(out, f"{nf}-{scenario}.svg"))
            plt.close(figure)


if __name__ == "__main__":
    main(sys.argv[1])
