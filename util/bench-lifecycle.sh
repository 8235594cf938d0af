#!/bin/sh
# bench-lifecycle.sh: vserver-rs's lifecycle next to its peers, interleaved in
# one run on whatever load the machine has (figures in the README).
#
#   exec    `vserver NAME exec /bin/true` vs `nsenter -t PID -a /bin/true` (same
#           guest) vs `lxc-attach -n C -- /bin/true`; wall time and CPU time
#   start   `vserver NAME start` of a busybox guest with one address on lo vs
#           `lxc-start -d` + `lxc-wait -s RUNNING` (busybox template, no network)
#   stop    `vserver NAME stop` vs `lxc-stop -k`
#   many    N guests started one after another, each followed by one LXC
#           container: medians of each tenth of the starts for both; monitor
#           memory per guest (anonymous RSS) vs LXC's `[lxc monitor]` per container;
#           the start of one more guest with the N running vs none, in alternating
#           blocks, next to the same for one more LXC container (flatness)
#   debian  (with --debian) start-to-ready of a Debian systemd guest vs
#           `systemd-nspawn -b --notify-ready=yes` of the same tree, and start of a
#           sysv guest, both with openssh-server, nginx-light, cron and rsyslog
#
# Each measure prints min, median and the median of the per-round ratios; the
# commands of one round run back to back in random order, so load changes hit
# both sides alike. Needs root; installs lxc, hyperfine-free.
#
# Usage: util/bench-lifecycle.sh [--rounds N] [--guests N] [--debian] [--only exec,start,many,debian]
set -eu
cd "$(dirname "$0")/.."
here=$PWD
command -v lxc-start >/dev/null || apt-get install -y -qq lxc >/dev/null
command -v nsenter >/dev/null || apt-get install -y -qq util-linux >/dev/null
echo "== building the release binaries"
bin=$(util/build-release.sh 2>/dev/null | tail -n 1)
exec python3 "$here/util/bench_lifecycle.py" --bin "$bin" "$@"
