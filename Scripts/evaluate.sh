#!/usr/bin/env bash
# Every orchestration scenario for every NF, on the shared store and on a
# store per instance (the traditional design), with the figures and plots
# that Documentation/Evaluation.md reports.
#
#   Scripts/evaluate.sh STATELESSNF OUTDIR [NF...]
#
# Each run's result.json and timeline.csv go to OUTDIR/NF-SCENARIO-STORE;
# OUTDIR/results.jsonl gathers the results, and Scripts/plot_scenarios.py
# draws OUTDIR/*.svg from the timelines. Needs what Scripts/scenario.sh
# needs, and python3-matplotlib for the plots (make evaluation installs it).
set -euo pipefail
binary=$1; out=$2; shift 2
nfs=${*:-nat firewall lb}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
: > "$out/results.jsonl"
for nf in $nfs; do
    for scenario in failure scale asymmetric pause autoscale; do
        for store in redis memory; do
            run="$out/$nf-$scenario-$store"
            rm -rf "$run"
            echo "== $nf $scenario $store" >&2
            if "$here/scenario.sh" "$binary" "$scenario" --nf "$nf" --store "$store" --out "$run" > "$run.log" 2>&1; then
                tail -1 "$run.log" >> "$out/results.jsonl"
            else
                echo "$nf $scenario $store failed: $(tail -3 "$run.log")" >&2
            fi
        done
    done
done
python3 "$here/plot_scenarios.py" "$out"
