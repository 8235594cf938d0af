#!/bin/sh
# Lifecycle speed, side by side in one run (figures in the README):
#  - `vserver NAME exec /bin/true` on a running busybox guest against
#    `nsenter -t PID -a /bin/true` on the same guest (target: at most 1.5x);
#  - `vserver NAME start` to a running guest, and `stop --timeout 0` (target:
#    < 50 ms each, median of 20); a plain `stop` runs the guest's own
#    shutdown first (busybox init's takes about 2 s of sleeps).
# Usage: util/bench-lifecycle.sh [RUNS]   (as root; builds the release binaries)
set -eu
runs=${1:-20}
cd "$(dirname "$0")/.."
cargo build --release -q -p vserver
V=$PWD/target/release/vserver
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
work=$(mktemp -d /tmp/vserver-bench.XXXXXX)
export VSERVER_CONFDIR=$work/etc VSERVER_VDIRBASE=$work/vservers VSERVER_RUNDIR=$work/run
mkdir -p "$VSERVER_CONFDIR/.defaults"
cleanup() { "$V" bench stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
"$V" bench build -m busybox --context 4999 >/dev/null
"$V" bench start
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VSERVER_RUNDIR/bench/state.json" | head -n 1)

echo "== exec /bin/true: vserver exec vs nsenter -a on the same guest"
hyperfine -N -w 20 -r 200 --export-json "$work/exec.json" \
  "$V bench exec /bin/true" "nsenter -t $pid -a /bin/true" >/dev/null
python3 - "$work/exec.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, anchor = r[0]["median"] * 1e3, r[1]["median"] * 1e3
print(f"vserver exec {ours:.2f} ms, nsenter {anchor:.2f} ms, ratio {ours / anchor:.2f}x (target <= 1.5x)")
PY
"$V" bench stop

echo "== start and stop, median of $runs"
python3 - "$V" "$runs" <<'PY'
import subprocess, sys, time, statistics
v, n = sys.argv[1], int(sys.argv[2])
start, stop = [], []
for _ in range(n):
    t = time.perf_counter(); subprocess.run([v, "bench", "start"], check=True); start.append(time.perf_counter() - t)
    t = time.perf_counter(); subprocess.run([v, "bench", "stop", "--timeout", "0"], check=True); stop.append(time.perf_counter() - t)
ms = lambda xs: statistics.median(xs) * 1e3
print(f"start {ms(start):.1f} ms, stop {ms(stop):.1f} ms (median of {n}; target < 50 ms each)")
PY
