#!/bin/sh
# bench-net.sh: the CPU cost of a network context on the connection path.
#
# The same loop of N TCP connect/accept/close pairs over loopback (server
# bound to 127.0.0.2, client connecting without bind(), so connect4 picks
# and binds its source; both ends in the context, so every packet passes
# the ingress and egress filters twice) runs inside `chbind --ip 127.0.0.2`
# and unrestricted, alternating which goes first, ROUNDS times. Measured is
# the loop process's own CPU time (getrusage: user + system, the kernel's
# socket work and the BPF programs included), not wall time, which other
# load on the machine swings by more than the effect. Printed: min and
# median of each side, the median of the per-round ratios, and the load.
#
# Usage: util/bench-net.sh [N] [ROUNDS]        (default 20000 11; needs root)
#   CHBIND=path/to/chbind overrides the binary (default target/release, then target/debug).
set -eu

N=${1:-20000}
ROUNDS=${2:-11}
here=$(cd "$(dirname "$0")/.." && pwd)
CHBIND=${CHBIND:-}
if [ -z "$CHBIND" ]; then
    for c in "$here/target/release/chbind" "$here/target/debug/chbind"; do
        [ -x "$c" ] && { CHBIND=$c; break; }
    done
fi
[ -n "$CHBIND" ] && [ -x "$CHBIND" ] || { echo "bench-net: build chbind first (cargo build --release -p chbind)" >&2; exit 1; }

loop=$(mktemp /tmp/bench-net.XXXXXX.py)
trap 'rm -f "$loop"' EXIT
cat >"$loop" <<'PY'
import resource, socket, struct, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.2", 0))
srv.listen(128)
addr = srv.getsockname()
# RST on close: no TIME_WAIT, so ports do not run out over many rounds.
linger = struct.pack("ii", 1, 0)
r0 = resource.getrusage(resource.RUSAGE_SELF)
w0 = time.perf_counter()
for _ in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    c.connect(addr)
    a, _ = srv.accept()
    c.close()
    a.close()
w1 = time.perf_counter()
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print("%.6f %.6f" % (cpu, w1 - w0))
PY

ctx() { "$CHBIND" --silent --ip 127.0.0.2 -- python3 "$loop" "$N"; }
host() { python3 "$loop" "$N"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=""
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    # Alternate the order so neither side always runs on a warmer cache.
    if [ $((i % 2)) -eq 0 ]; then c=$(ctx); h=$(host); else h=$(host); c=$(ctx); fi
    results="$results$c $h
"
    i=$((i + 1))
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

printf '%s' "$results" | awk -v n="$N" -v rounds="$ROUNDS" -v lb="$load_before" -v la="$load_after" '
function sort(a, k,    i, j, t) { for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
function median(a, k) { sort(a, k); return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
{ k++; cc[k] = $1; cw[k] = $2; hc[k] = $3; hw[k] = $4; r[k] = $1 / $3; line = line sprintf(" %.3f", $1 / $3) }
END {
    for (i = 1; i <= k; i++) { c2[i] = cc[i]; h2[i] = hc[i] }
    sort(c2, k); sort(h2, k)
    printf "TCP connect/accept/close pairs over loopback: %d per round, %d rounds, load %s -> %s\n", n, rounds, lb, la
    printf "CPU time of the loop process (user+system):\n"
    printf "                          min        median     us/pair (median)\n"
    printf "  unrestricted            %7.3f s  %7.3f s  %6.2f\n", h2[1], median(hc, k), median(hc, k) / n * 1e6
    printf "  chbind --ip 127.0.0.2   %7.3f s  %7.3f s  %6.2f\n", c2[1], median(cc, k), median(cc, k) / n * 1e6
    printf "  per-round ratios:%s\n", line
    printf "  median of per-round ratios: %.4f (%+.2f%%); ratio of the minima %.4f\n", median(r, k), (median(r, k) - 1) * 100, c2[1] / h2[1]
    printf "  wall time medians: unrestricted %.3f s, chbind %.3f s\n", median(hw, k), median(cw, k)
}'
