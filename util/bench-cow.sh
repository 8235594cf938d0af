#!/bin/sh
# What copy-on-write costs a unified guest: the same work inside a unified,
# supervised guest (its processes under the copy-on-write seccomp filter,
# notifications answered by the supervisor, unified files getting private
# copies first) and inside a guest that is not unified (no filter), in
# interleaved rounds:
#
#   reinstall  dpkg -i of 20 installed packages whose files are unified
#              (every file of them gets its link broken: the worst case)
#   install    dpkg -i of 20 packages that are not installed (new files)
#   untar      tar -x of a large tree (the corpus's /usr/share) into a new directory
#
# The guests run with vs-cow-guest (tests/support/bin/cow_guest.rs), which
# sets up a guest's process tree (namespaces, bounding set, seccomp filters,
# cgroup) and supervises it as the monitor does. Between rounds the unified
# guest is unified again (vhashify). Prints per case and kind the min and
# median seconds, and the median of the per-round ratios, with the load.
#
#   VSERVER_BENCH_DIR   work dir (default /var/tmp/vserver-bench)
#   CORPUS              a Debian tree to copy (default: debootstrap bookworm
#                       with sysvinit-core, cached in the work dir)
#   ROUNDS              rounds (default 3)
#   CASES               which cases (default "reinstall install untar")
#   BIN                 where vhashify and vs-cow-guest are (default target/release)
# Needs root, the host's apt (for apt-get download) and a cgroup2 mount.
set -eu

BENCH=${VSERVER_BENCH_DIR:-/var/tmp/vserver-bench}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$HERE/target/release}
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-reinstall install untar}
REINSTALL="cron vim-common gzip less sed grep e2fsprogs vim-tiny findutils openssh-server rsyslog procps tzdata tar iproute2 util-linux openssh-client bash perl-base coreutils"
INSTALL="ed bc dc patch tree psmisc time file libmagic1 libmagic-mgc lz4 zstd rsync jq libjq1 libonig5 pv unzip zip git-man"

[ "$(id -u)" = 0 ] || { echo "bench-cow: needs root" >&2; exit 2; }
for b in vhashify vs-cow-guest; do
    [ -x "$BIN/$b" ] || { echo "bench-cow: $BIN/$b missing (cargo build --release --workspace)" >&2; exit 2; }
done
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then V2=/sys/fs/cgroup; else V2=/sys/fs/cgroup/unified; fi
[ -e "$V2/cgroup.procs" ] || { echo "bench-cow: no cgroup2 mount" >&2; exit 2; }

mkdir -p "$BENCH"
if [ -z "${CORPUS:-}" ]; then
    CORPUS=$BENCH/debian-bookworm-sysv
    if [ ! -e "$CORPUS/.complete" ]; then
        echo "building the corpus with debootstrap (cached in $CORPUS)"
        rm -rf "$CORPUS"
        debootstrap --include=sysvinit-core,openssh-server,cron,rsyslog,less,procps,iproute2,vim-tiny \
            --exclude=systemd-sysv bookworm "$CORPUS" http://deb.debian.org/debian >/dev/null
        touch "$CORPUS/.complete"
    fi
fi

RUN=$BENCH/cow
# The run dir on tmpfs, as /run/vservers is on a real host (windows keep a
# journal there).
RUNDIR=$(mktemp -d /run/vs-bench-cow.XXXXXX)
CONF=$RUN/conf; GUESTS=$RUN/guests
export VSERVER_CONFDIR=$CONF VSERVER_VDIRBASE=$GUESTS VSERVER_RUNDIR=$RUNDIR
unimmutable() { [ -d "$1" ] && chattr -R -f -i "$1" 2>/dev/null || true; }
cleanup() {
    for g in benchu benchu2 benchp; do
        [ -d "$V2/vserver/$g" ] && { echo 1 > "$V2/vserver/$g/cgroup.kill" 2>/dev/null || true; sleep 0.2; rmdir "$V2/vserver/$g" 2>/dev/null || true; }
    done
    rmdir "$V2/vserver" 2>/dev/null || true
    unimmutable "$RUN"; rm -rf "$RUN"
    rm -rf "$RUNDIR"
}
trap cleanup EXIT INT TERM
for g in benchu benchu2 benchp; do [ -d "$V2/vserver/$g" ] && rmdir "$V2/vserver/$g" 2>/dev/null || true; done
unimmutable "$RUN"; rm -rf "$RUN"
mkdir -p "$CONF/.defaults" "$GUESTS" "$RUNDIR" "$RUN/debs/reinstall" "$RUN/debs/install" "$V2/vserver"

# The .debs, from the host's apt: the versions the corpus has, and new ones.
version() { awk -v p="$1" '$0=="Package: "p{f=1} f&&/^Version:/{print $2; exit}' "$CORPUS/var/lib/dpkg/status"; }
case " $CASES " in *" reinstall "*)
    ( cd "$RUN/debs/reinstall" && for p in $REINSTALL; do apt-get download -qq "$p=$(version $p)" 2>/dev/null; done )
    [ "$(ls "$RUN/debs/reinstall" | wc -l)" = 20 ] || { echo "bench-cow: could not download the 20 installed packages' versions" >&2; exit 1; } ;;
esac
case " $CASES " in *" install "*) ( cd "$RUN/debs/install" && apt-get download -qq $INSTALL 2>/dev/null ) ;; esac
tar -C "$CORPUS/usr" -cf "$RUN/share.tar" share
echo "corpus: $CORPUS; untar: $(tar -tf "$RUN/share.tar" | wc -l) entries, $(du -m "$RUN/share.tar" | cut -f1) MB"

# benchu and benchu2 are unified with each other; benchp is not unified.
guest() {   # guest NAME XID: a fresh copy of the corpus
    unimmutable "$GUESTS/$1"; rm -rf "$GUESTS/$1"
    mkdir -p "$CONF/$1"; echo "$2" > "$CONF/$1/context"; cp -a "$CORPUS" "$GUESTS/$1"
    printf '#!/bin/sh\nexit 101\n' > "$GUESTS/$1/usr/sbin/policy-rc.d"; chmod 755 "$GUESTS/$1/usr/sbin/policy-rc.d"
    cp -a "$RUN/debs" "$GUESTS/$1/root/debs"; cp "$RUN/share.tar" "$GUESTS/$1/root/"
    mkdir -p "$V2/vserver/$1"
}
unified() { mkdir -p "$CONF/$1/apps/vunify"; }

# timed NAME KIND CMD...: runs CMD in guest NAME, prints seconds
timed() {
    name=$1; kind=$2; shift 2
    flag=""; [ "$kind" = plain ] && flag=--plain
    sync   # the copies' writeback must not fall into the measurement
    s=$(date +%s.%N)
    "$BIN/vs-cow-guest" $flag $STATS "$name" "$GUESTS/$name" "$V2/vserver/$name" /bin/sh -c "$*" >"$RUN/out" 2>&1 || {
        echo "bench-cow: $kind guest $name: $* failed:" >&2; tail -20 "$RUN/out" >&2; exit 1; }
    e=$(date +%s.%N)
    awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }'
}

results=$RUN/results
: > "$results"
for round in $(seq "$ROUNDS"); do
    guest benchu 48801; guest benchu2 48802; guest benchp 48803; unified benchu; unified benchu2
    "$BIN/vhashify" --all >/dev/null
    for case in $CASES; do
        case $case in
            reinstall) cmd="dpkg -i /root/debs/reinstall/*.deb >/dev/null" ;;
            install) cmd="dpkg -i /root/debs/install/*.deb >/dev/null" ;;
            untar) cmd="mkdir -p /root/x && tar -C /root/x -xf /root/share.tar" ;;
        esac
        # Alternate which kind goes first.
        if [ $((round % 2)) = 1 ]; then order="unified plain"; else order="plain unified"; fi
        for kind in $order; do
            g=benchp; STATS=""; [ "$kind" = unified ] && { g=benchu; STATS="--stats $RUN/stats-$case-$round"; }
            t=$(timed $g $kind "$cmd")
            echo "$case $kind $round $t" >> "$results"
        done
    done
    echo "round $round: $(awk -v r=$round '$3==r {printf "%s/%s %s  ", $1, $2, $4}' "$results")load $(cut -d' ' -f1-3 /proc/loadavg)"
done

echo "case       kind      min s   median s   (median of per-round ratios unified/plain)"
for case in $CASES; do
    for kind in unified plain; do
        awk -v c=$case -v k=$kind '$1==c && $2==k {print $4}' "$results" | sort -g > "$RUN/t"
        n=$(wc -l < "$RUN/t")
        printf '%-10s %-8s %7.2f %9.2f\n' "$case" "$kind" "$(head -n1 "$RUN/t")" "$(sed -n "$(( (n + 1) / 2 ))p" "$RUN/t")"
    done
    ratios=$(for r in $(seq "$ROUNDS"); do
        u=$(awk -v c=$case -v r=$r '$1==c && $2=="unified" && $3==r {print $4}' "$results")
        p=$(awk -v c=$case -v r=$r '$1==c && $2=="plain" && $3==r {print $4}' "$results")
        awk -v u="$u" -v p="$p" 'BEGIN { printf "%.4f\n", u / p }'
    done | sort -g)
    med=$(echo "$ratios" | sed -n "$(( (ROUNDS + 1) / 2 ))p")
    printf '%-10s ratio %s (%+.1f %%)   supervisor: %s\n' "$case" "$med" "$(awk -v m="$med" 'BEGIN { print (m - 1) * 100 }')" "$(cat "$RUN/stats-$case-1" 2>/dev/null)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
