#!/bin/sh
# The demo: builds vserver-rs, makes a guest from Debian's static busybox,
# starts it, runs commands inside, shows its status and the context table,
# and stops it again. Everything lives under DEMO_ROOT (default
# /var/tmp/vserver-demo); /etc/vservers is not touched.
# Usage: sudo util/demo.sh
set -eu
cd "$(dirname "$0")/.."
root=${DEMO_ROOT:-/var/tmp/vserver-demo}
if [ "$(id -u)" != 0 ]; then echo "demo.sh: run as root (sudo util/demo.sh)" >&2; exit 1; fi
if [ ! -x /bin/busybox ] || ! grep -q busybox-static /var/lib/dpkg/status 2>/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
command -v cargo >/dev/null || { echo "demo.sh: cargo is needed (https://rustup.rs)" >&2; exit 1; }
echo "demo.sh: building the release binaries (a few minutes the first time; cargo shows its progress)"
bin=$(util/build-release.sh | tail -n 1)
export VSERVER_CONFDIR=$root/etc VSERVER_VDIRBASE=$root/vservers VSERVER_RUNDIR=$root/run
mkdir -p "$VSERVER_CONFDIR/.defaults"
run() { echo "+ $*"; "$@"; }
"$bin/vserver" demo running 2>/dev/null && "$bin/vserver" demo stop
run "$bin/vserver" demo build -m busybox --context 4200 --hostname demo.vserver.test \
    --interface lo:127.0.0.42/8 --force
run "$bin/vserver" demo start
run "$bin/vserver" demo exec hostname
run "$bin/vserver" demo exec ps
run "$bin/vserver" demo exec sh -c 'grep CapBnd /proc/self/status; ls /dev'
run "$bin/vserver" demo status
run "$bin/vserver-stat"
echo "+ vps ax | grep -E 'CONTEXT| 4200 '"; "$bin/vps" ax | grep -E 'CONTEXT| 4200 '
run "$bin/vserver" demo stop
echo
echo "The demo guest is in $root. To use it again:"
echo "  export VSERVER_CONFDIR=$VSERVER_CONFDIR VSERVER_VDIRBASE=$VSERVER_VDIRBASE VSERVER_RUNDIR=$VSERVER_RUNDIR"
echo "  $bin/vserver demo start && $bin/vserver demo enter"
