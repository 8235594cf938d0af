#!/bin/sh
# bench-net.sh: the cost of a network context on the connection path.
#
# Runs the same loop of N TCP connect/accept/close pairs over loopback
# (server bound to 127.0.0.2, client connecting without bind()) inside
# `chbind --ip 127.0.0.2` and unrestricted, alternating, ROUNDS times, and
# prints the fastest and the median time of each and the overhead of the
# context. On a busy machine the fastest round is the one least disturbed
# by other load, so its ratio is the better estimate.
#
# Usage: util/bench-net.sh [N] [ROUNDS]        (default 20000 5; needs root)
#   CHBIND=path/to/chbind overrides the binary (default target/release, then target/debug).
set -eu

N=${1:-20000}
ROUNDS=${2:-5}
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
import socket, struct, sys, time
n = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.2", 0))
srv.listen(128)
addr = srv.getsockname()
# RST on close: no TIME_WAIT, so ports do not run out over many rounds.
linger = struct.pack("ii", 1, 0)
start = time.perf_counter()
for _ in range(n):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    c.connect(addr)
    a, _ = srv.accept()
    c.close()
    a.close()
print("%.6f" % (time.perf_counter() - start))
PY

ctx_times=""
host_times=""
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    # Alternate the order so neither side always runs on a warmer cache.
    if [ $((i % 2)) -eq 0 ]; then
        ctx_times="$ctx_times $("$CHBIND" --silent --ip 127.0.0.2 -- python3 "$loop" "$N")"
        host_times="$host_times $(python3 "$loop" "$N")"
    else
        host_times="$host_times $(python3 "$loop" "$N")"
        ctx_times="$ctx_times $("$CHBIND" --silent --ip 127.0.0.2 -- python3 "$loop" "$N")"
    fi
    i=$((i + 1))
done

median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
fastest() { printf '%s\n' $1 | sort -n | head -1; }
cm=$(median "$ctx_times"); hm=$(median "$host_times")
cf=$(fastest "$ctx_times"); hf=$(fastest "$host_times")
echo "TCP connect/accept/close pairs over loopback: $N per round, $ROUNDS rounds"
printf '                        fastest    median   pairs/s (fastest)\n'
printf '  unrestricted          %7.3f s %7.3f s %8.0f\n' "$hf" "$hm" "$(echo "$N / $hf" | bc -l)"
printf '  chbind --ip 127.0.0.2 %7.3f s %7.3f s %8.0f\n' "$cf" "$cm" "$(echo "$N / $cf" | bc -l)"
echo "  rounds unrestricted:$host_times"
echo "  rounds chbind:      $ctx_times"
printf '  overhead of the network context: %+.2f%% (fastest), %+.2f%% (median)\n' \
    "$(echo "($cf / $hf - 1) * 100" | bc -l)" "$(echo "($cm / $hm - 1) * 100" | bc -l)"
