#!/bin/bash
# Benchmark: vps against its anchor `ps ax` on the same machine state, run
# side by side: each round runs both (in alternating order), so both see the
# same load. Prints min, median and the median of the per-round ratios, with
# the load average. vps runs ps and then reads one /proc/PID/cgroup per line.
#
# Usage: util/bench-vps.sh [path/to/vps]     ROUNDS=50 overrides the rounds.
# Target: vps ax takes at most 2x the time of ps ax.
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/vps}
ROUNDS=${ROUNDS:-50}
[ -x "$BIN" ] || { echo "bench-vps: $BIN is missing; run cargo build --release -p vps" >&2; exit 2; }

ns() { date +%s%N; }
time_one() { local t0; t0=$(ns); "$@" >/dev/null; echo $(( $(ns) - t0 )); }

ours=(); anchor=(); ratios=()
for i in $(seq 1 "$ROUNDS"); do
    if (( i % 2 )); then
        a=$(time_one ps ax); o=$(time_one "$BIN" ax)
    else
        o=$(time_one "$BIN" ax); a=$(time_one ps ax)
    fi
    ours+=("$o"); anchor+=("$a")
    ratios+=("$(awk -v o="$o" -v a="$a" 'BEGIN { printf "%.4f", o / a }')")
done

stats() { sort -n | awk '{ v[NR] = $1 } END { printf "min %.2f ms, median %.2f ms", v[1] / 1e6, v[int((NR + 1) / 2)] / 1e6 }'; }
echo "processes: $(ps ax --no-headers | wc -l), rounds: $ROUNDS, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "vps ax: $(printf '%s\n' "${ours[@]}" | stats)"
echo "ps ax:  $(printf '%s\n' "${anchor[@]}" | stats)"
echo "median of per-round ratios vps/ps: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
