#!/bin/sh
# Benchmark vhashify against util-linux hardlink, rdfind and jdupes on fresh
# copies of one corpus: three Debian guests made with debootstrap (the
# part vhashify touches: /usr). Prints times, peak memory and ratios.
#
#   VSERVER_BENCH_DIR   work and cache dir (default /var/tmp/vserver-bench)
#   VHASHIFY            vhashify binary (default target/release/vhashify)
#   SUITE, MIRROR       debootstrap suite and mirror (default: bookworm and
#                       the first URI of apt's configured sources)
# Needs root. Installs rdfind, jdupes and time if missing.
set -eu

BENCH=${VSERVER_BENCH_DIR:-/var/tmp/vserver-bench}
HERE=$(cd "$(dirname "$0")/.." && pwd)
VHASHIFY=${VHASHIFY:-$HERE/target/release/vhashify}
SUITE=${SUITE:-bookworm}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1)
    [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

[ "$(id -u)" = 0 ] || { echo "bench-vhashify: needs root" >&2; exit 2; }
[ -x "$VHASHIFY" ] || { echo "bench-vhashify: $VHASHIFY missing (cargo build --release -p vhashify)" >&2; exit 2; }
missing=""
command -v rdfind >/dev/null || missing="$missing rdfind"
command -v jdupes >/dev/null || missing="$missing jdupes"
[ -x /usr/bin/time ] || missing="$missing time"
command -v hardlink >/dev/null || missing="$missing util-linux"
if [ -n "$missing" ]; then
    apt-get install -y -q $missing >/dev/null
fi

mkdir -p "$BENCH"
CACHE=$BENCH/debootstrap-$SUITE
if [ ! -e "$CACHE/.complete" ]; then
    echo "building the corpus with debootstrap $SUITE from $MIRROR (cached in $CACHE)"
    rm -rf "$CACHE"
    debootstrap --variant=minbase --include=python3,perl,openssh-server,curl "$SUITE" "$CACHE" "$MIRROR" >/dev/null
    touch "$CACHE/.complete"
fi

RUN=$BENCH/run
unimmutable() { [ -d "$1" ] && chattr -R -f -i "$1" 2>/dev/null || true; }
fresh() {   # fresh copies of the corpus: three guests, /usr only
    unimmutable "$RUN"
    rm -rf "$RUN"
    mkdir -p "$RUN/conf/.defaults" "$RUN/guests" "$RUN/run"
    for g in g1 g2 g3; do
        mkdir -p "$RUN/conf/$g/apps/vunify" "$RUN/guests/$g"
        echo 4$(echo $g | tr -d g)0 > "$RUN/conf/$g/context"
        cp -a "$CACHE/usr" "$RUN/guests/$g/usr"
    done
    sync
}
ROOTS="$RUN/guests/g1/usr $RUN/guests/g2/usr $RUN/guests/g3/usr"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
warm() { find $ROOTS -type f -exec cat {} + >/dev/null 2>&1 || true; }

# measure NAME CACHE(cold|hot) CMD...: prints "NAME CACHE seconds peakKB"
measure() {
    name=$1; cache=$2; shift 2
    [ "$cache" = cold ] && drop
    [ "$cache" = hot ] && warm
    /usr/bin/time -f '%e %M' -o "$BENCH/time.out" "$@" >/dev/null 2>"$BENCH/err.out" || {
        echo "bench-vhashify: $name failed:" >&2; cat "$BENCH/err.out" >&2; exit 1; }
    read secs kb < "$BENCH/time.out"
    printf '%-10s %-6s %8.2f s %8d KB\n' "$name" "$cache" "$secs" "$kb"
    eval "T_${name}_${cache}=$secs"
}

VH="$VHASHIFY --confdir $RUN/conf --vdirbase $RUN/guests --rundir $RUN/run --all"
# vhashify's default excludes do not touch /usr; the copies hold only /usr.
fresh
files=$(find $ROOTS -type f | wc -l); size=$(du -sm $ROOTS | awk '{s+=$1} END {print s}')
echo "corpus: $files files, $size MB in three guests"
echo "first run (fresh copies each):"
for cache in cold hot; do
    fresh; measure vhashify $cache $VH
    fresh; measure hardlink $cache hardlink -t $ROOTS
    fresh; measure rdfind $cache rdfind -makehardlinks true -outputname "$BENCH/rdfind.txt" $ROOTS
    fresh; measure jdupes $cache jdupes -r -p -L -q $ROOTS
done
echo "re-run on the unified tree (hot):"
fresh; $VH >/dev/null
measure vhashify rerun $VH
measure find rerun find $ROOTS -type f -printf ''
fresh; hardlink -t $ROOTS >/dev/null
measure hardlink rerun hardlink -t $ROOTS
fresh; rdfind -makehardlinks true -outputname "$BENCH/rdfind.txt" $ROOTS >/dev/null
measure rdfind rerun rdfind -makehardlinks true -outputname "$BENCH/rdfind.txt" $ROOTS
fresh; jdupes -r -p -L -q $ROOTS >/dev/null
measure jdupes rerun jdupes -r -p -L -q $ROOTS

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
min3() { printf '%s\n' "$@" | sort -g | head -n1; }
best_cold=$(min3 $T_hardlink_cold $T_rdfind_cold $T_jdupes_cold)
best_rerun=$(min3 $T_hardlink_rerun $T_rdfind_rerun $T_jdupes_rerun)
echo "ratios (goal):"
echo "  cold first run, vhashify / fastest anchor:   $(ratio $T_vhashify_cold $best_cold) (< 1)"
echo "  hot first run, vhashify / hardlink -t:       $(ratio $T_vhashify_hot $T_hardlink_hot) (<= 1.2)"
echo "  re-run, vhashify / find -type f:             $(ratio $T_vhashify_rerun $T_find_rerun) (<= 2)"
echo "  re-run, fastest anchor / vhashify:           $(ratio $best_rerun $T_vhashify_rerun) (>= 2)"
unimmutable "$RUN"; rm -rf "$RUN"
