#!/bin/sh
# Start-to-ready of a Debian systemd guest: `vserver NAME start` (which
# returns on the guest's READY=1) against `systemd-nspawn -b` of a copy of
# the same tree, whose READY=1 nspawn passes on to its own NOTIFY_SOCKET
# (--notify-ready=yes). Interleaved rounds in one run; prints min, median
# and the median of per-round ratios, with the load average.
#
#   sudo util/bench-systemd-guest.sh [TREE] [ROUNDS]
#
# TREE: a Debian root with systemd-sysv (default /var/tmp/dbtest/root); it
# is copied twice, never changed. nspawn gets --private-network so that the
# guest's services never bind host ports; our guest gets one loopback
# address. Needs systemd-container (systemd-nspawn) and python3.
set -eu
tree=${1:-/var/tmp/dbtest/root}
rounds=${2:-7}
here=$(cd "$(dirname "$0")/.." && pwd)
V=${VSERVER:-$here/target/release/vserver}
[ -x "$V" ] || (cd "$here" && cargo build --release -p vserver)
command -v systemd-nspawn >/dev/null || { echo "needs systemd-nspawn (apt-get install systemd-container)" >&2; exit 1; }
[ -x "$tree/lib/systemd/systemd" ] || { echo "$tree has no systemd" >&2; exit 1; }

work=$(mktemp -d /var/tmp/vs-bench-sd.XXXXXX)
chmod 700 "$work"
export VSERVER_CONFDIR=$work/etc VSERVER_VDIRBASE=$work/vs VSERVER_RUNDIR=$work/run
cleanup() {
    "$V" bench stop --timeout 5 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$work/etc/.defaults" "$work/vs"
chmod 000 "$work/vs"
"$V" bench build -m skeleton --context 49123 --interface lo:127.0.91.23/32 >/dev/null
rm -rf "$work/vs/bench"
cp -a "$tree" "$work/vs/bench"
cp -a "$tree" "$work/nspawn"
for root in "$work/vs/bench" "$work/nspawn"; do
    # The same personalisation for both (see README, "systemd guests").
    sed -i '/listen \[::\]:80/d' "$root/etc/nginx/sites-available/default" 2>/dev/null || true
    echo bench > "$root/etc/hostname"
done
mkdir -p "$work/etc/bench/apps/init"
echo systemd > "$work/etc/bench/apps/init/style"

python3 - "$V" "$work" "$rounds" <<'EOF'
import os, socket, statistics, subprocess, sys, time
v, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

def ours():
    t = time.perf_counter()
    subprocess.run([v, "bench", "start"], check=True)
    dt = time.perf_counter() - t
    subprocess.run([v, "bench", "stop"], check=True)
    return dt

def nspawn():
    path = os.path.join(work, "notify.sock")
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(120)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    t = time.perf_counter()
    p = subprocess.Popen(["systemd-nspawn", "-q", "-b", "-D", os.path.join(work, "nspawn"), "--register=no",
                          "--keep-unit", "--private-network", "--notify-ready=yes", "-M", "benchns"],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while b"READY=1" not in s.recv(4096):
        pass
    dt = time.perf_counter() - t
    p.terminate()  # nspawn turns SIGTERM into the container's SIGRTMIN+3
    p.wait(timeout=60)
    s.close()
    return dt

ours(); nspawn()  # warm the page cache for both trees
a, b = [], []
for i in range(rounds):
    first, second = (ours, nspawn) if i % 2 == 0 else (nspawn, ours)
    x, y = first(), second()
    a.append(x if first is ours else y)
    b.append(y if first is ours else x)
ms = lambda xs: (min(xs) * 1000, statistics.median(xs) * 1000)
ratios = [x / y for x, y in zip(a, b)]
print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
print(f"vserver start (to READY=1): min {ms(a)[0]:.0f} ms, median {ms(a)[1]:.0f} ms")
print(f"systemd-nspawn -b (to READY=1): min {ms(b)[0]:.0f} ms, median {ms(b)[1]:.0f} ms")
print(f"median of per-round ratios: {statistics.median(ratios):.2f}x ({rounds} rounds)")
EOF
