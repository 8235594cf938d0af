#!/bin/bash
# Benchmark: vserver-stat against `ps -e -o pid,vsz,rss,utime,stime,cgroup`
# on the same machine state: 20 running contexts holding 2,000 processes.
#
# The contexts are made the way a guest's are: a cgroup vserver/NAME in every
# hierarchy (cgroup v2, or the v1 controllers of a hybrid host), a process
# tree moved into it, and the run state file the monitor writes. Everything
# is removed again on exit, also on Ctrl-C.
#
# Usage: util/bench-vserver-stat.sh [path/to/vserver-stat]
#   GUESTS=20 PER_GUEST=100 RUNS=30 override the sizes.
# Needs root, hyperfine and a release build (cargo build --release -p vserver-stat).
# Target: vserver-stat takes at most 1.5x the time of ps.
set -euo pipefail

BIN=${1:-${CARGO_TARGET_DIR:-target}/release/vserver-stat}
GUESTS=${GUESTS:-20}
PER_GUEST=${PER_GUEST:-100}
RUNS=${RUNS:-30}
CG=/sys/fs/cgroup

[ "$(id -u)" = 0 ] || { echo "bench-vserver-stat: needs root" >&2; exit 2; }
[ -x "$BIN" ] || { echo "bench-vserver-stat: $BIN is missing; run cargo build --release -p vserver-stat" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "bench-vserver-stat: hyperfine is not installed" >&2; exit 2; }

work=$(mktemp -d /tmp/bench-vserver-stat.XXXXXX)
rundir=$work/run
mkdir -p "$rundir"
dirs_file=$work/cgroup-dirs
made_parents=$work/made-parents
: >"$dirs_file"
: >"$made_parents"

# The hierarchies a guest cgroup lives in.
hierarchies() {
    if [ -e $CG/cgroup.controllers ]; then
        echo $CG
        return
    fi
    for h in $CG/*; do
        [ -L "$h" ] || [ ! -e "$h/cgroup.procs" ] && continue
        case ,$(basename "$h"), in
            *,cpu,* | *,cpuacct,* | *,cpuset,* | *,memory,* | *,pids,*) echo "$h" ;;
        esac
        [ -e "$h/cgroup.controllers" ] && echo "$h"
    done
}

cleanup() {
    set +e
    # Kill every process of every bench cgroup, then remove the directories (deepest first).
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        while read -r d; do
            [ -e "$d/cgroup.procs" ] && xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null
        done <"$dirs_file"
        sleep 0.2
        left=0
        while read -r d; do
            [ -d "$d" ] && { rmdir "$d" 2>/dev/null || left=1; }
        done <"$dirs_file"
        [ $left = 0 ] && break
    done
    while read -r p; do rmdir "$p" 2>/dev/null; done <"$made_parents"
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

start_time() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat"; }

echo "setting up $GUESTS contexts with $PER_GUEST processes each..."
for i in $(seq 1 "$GUESTS"); do
    name=bench$i-$$
    dirs=()
    for h in $(hierarchies); do
        parent=$h/vserver
        if [ ! -d "$parent" ]; then
            mkdir "$parent" && echo "$parent" >>"$made_parents"
        fi
        if [ -e "$h/cgroup.controllers" ]; then
            for c in cpu memory pids; do
                grep -qw $c "$h/cgroup.controllers" && for d in "$h" "$parent"; do echo "+$c" >"$d/cgroup.subtree_control" 2>/dev/null || true; done
            done
        fi
        mkdir "$parent/$name"
        echo "$parent/$name" >>"$dirs_file"
        if [ -e "$parent/$name/cpuset.cpus" ] && [ ! -e "$h/cgroup.controllers" ]; then
            for f in cpuset.cpus cpuset.mems; do
                [ -n "$(cat "$parent/$f")" ] || cat "$h/$f" >"$parent/$f"
                cat "$parent/$f" >"$parent/$name/$f"
            done
        fi
        dirs+=("$parent/$name")
    done
    # The subshell joins the cgroup first, then becomes the context's "init"
    # and forks the rest, so every process is in the context from birth.
    (
        for d in "${dirs[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
        exec sh -c 'i=1; while [ $i -lt '"$PER_GUEST"' ]; do sleep 3600 & i=$((i+1)); done; wait'
    ) &
    init=$!
    disown "$init"
    json_dirs=$(printf '"%s",' "${dirs[@]}")
    mkdir -p "$rundir/$name"
    cat >"$rundir/$name/state.json" <<EOF
{"name": "$name", "xid": $((1000 + i)), "init": {"pid": $init, "start_time": $(start_time $init)},
 "monitor": {"pid": $$, "start_time": $(start_time $$)}, "started_at": $(date +%s), "cgroups": [${json_dirs%,}]}
EOF
done

# Wait until every context holds all its processes.
first_dirs=$(awk '(NR - 1) % '"$(hierarchies | wc -l)"' == 0' "$dirs_file")
for _ in $(seq 1 200); do
    total=0
    for d in $first_dirs; do total=$((total + $(wc -l <"$d/cgroup.procs"))); done
    [ "$total" -ge $((GUESTS * PER_GUEST)) ] && break
    sleep 0.1
done
echo "contexts: $GUESTS, processes in them: $total, processes on the host: $(ls -d /proc/[0-9]* | wc -l)"
"$BIN" --rundir "$rundir" | head -4
echo "..."

hyperfine --warmup 3 --runs "$RUNS" -N --export-json "$work/result.json" \
    -n vserver-stat "$BIN --rundir $rundir" \
    -n ps "ps -e -o pid,vsz,rss,utime,stime,cgroup"

python3 - "$work/result.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, ps = r["vserver-stat"]["mean"], r["ps"]["mean"]
print(f"vserver-stat {ours*1000:.2f} ms, ps {ps*1000:.2f} ms: ratio {ours/ps:.2f}x (target <= 1.5x)")
EOF
