#!/bin/sh
# Runs inside the vm-suite VM (from init.sh): the project's test executables
# with CI=1 (a privileged test that cannot run fails instead of skipping), one
# log per executable, a summary line each, then what the suite left behind.
set -u
src=$(cat /data/src-path)
mkdir -p "$src"
mount --bind /data/src "$src"
cd "$src"
export CI=1 RUST_BACKTRACE=1
threads=$(cat /data/threads 2>/dev/null || nproc)
mkdir -p /data/out/tests
echo "== vserver-info"
target/release/vserver-info; echo "vserver-info exit $?"
target/release/vserver-info --json > /data/out/vserver-info.json
echo "== tests (CI=1, --test-threads=$threads)"
failed=0
while read -r exe dir; do
    name=$(basename "$exe"); short=${name%-*}
    if [ -s /data/only ] && ! grep -qx "$short" /data/only; then continue; fi
    t0=$(date +%s)
    # stdin from /dev/null: the loop reads the list from its stdin, and a
    # test (or a process it starts) that reads stdin would eat the rest.
    (cd "$dir" && timeout 2400 "$exe" --test-threads="$threads") < /dev/null > "/data/out/tests/$short.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || failed=$((failed + 1))
    echo "$short exit $rc in $(( $(date +%s) - t0 )) s: $(grep '^test result' "/data/out/tests/$short.log" | tail -n 1)"
    grep -E '^test .* FAILED$' "/data/out/tests/$short.log" | sed 's/^/    /'
done < /data/tests.list
echo "== left behind (nothing expected below)"
find /sys/fs/cgroup -mindepth 1 -type d -name 'vserver*' -o -mindepth 1 -type d -name 'chbind*'
grep -E ' (/tmp|/var/tmp|/run/vserver)' /proc/self/mounts
self=$(readlink /proc/1/ns/pid)
for p in /proc/[0-9]*; do
    ns=$(readlink "$p/ns/pid" 2>/dev/null) || continue
    [ "$ns" = "$self" ] || echo "process ${p#/proc/} $(tr '\0' ' ' < "$p/cmdline" | cut -c1-80) in another pid namespace"
done
echo "== $failed test executable(s) failed"
cd / && umount "$src"
[ $failed -eq 0 ]
