#!/bin/sh
# exec speed, side by side in one run, commands interleaved round by round:
#   vserver NAME exec /bin/true   against   nsenter -t PID -a /bin/true
# on the same running busybox guest (issue 15's goal: median of per-round
# ratios <= 1.2x). A small C timer spawns each command and waits for it, so
# both sides pay the same harness cost. Prints min, median and the median of
# per-round ratios with the load average.
# Usage: util/bench-exec.sh [ROUNDS]   (as root; builds the release binaries)
set -eu
rounds=${1:-200}
cd "$(dirname "$0")/.."
V=$(util/build-release.sh -q | tail -n 1)/vserver
work=$(mktemp -d /tmp/vserver-bench-exec.XXXXXX)
export VSERVER_CONFDIR=$work/etc VSERVER_VDIRBASE=$work/vservers VSERVER_RUNDIR=$work/run
mkdir -p "$VSERVER_CONFDIR/.defaults"
cleanup() { "$V" benchx stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
"$V" benchx build -m busybox --context 4998 >/dev/null
"$V" benchx start
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VSERVER_RUNDIR/benchx/state.json" | head -n 1)

cat > "$work/timer.c" <<'C'
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
/* timer ROUNDS -- CMD_A... -- CMD_B...: prints "a_ns b_ns" per round, the
   order of a and b alternating between rounds. Both get /dev/null as
   stdin, stdout and stderr (as hyperfine gives them). */
static posix_spawn_file_actions_t null_stdio;
static double run(char **argv) {
    struct timespec t0, t1; pid_t pid; int st;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (posix_spawn(&pid, argv[0], &null_stdio, NULL, argv, environ)) { perror("spawn"); exit(1); }
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "%s failed\n", argv[0]); exit(1); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]), i, j = 3;
    char **a = argv + 3, **b;
    while (strcmp(argv[j], "--")) j++;
    argv[j] = NULL; b = argv + j + 1;
    posix_spawn_file_actions_init(&null_stdio);
    for (i = 0; i < 3; i++)
        posix_spawn_file_actions_addopen(&null_stdio, i, "/dev/null", i ? O_WRONLY : O_RDONLY, 0);
    for (i = 0; i < 10; i++) { run(a); run(b); }
    for (i = 0; i < n; i++) {
        double x, y;
        if (i % 2) { y = run(b); x = run(a); } else { x = run(a); y = run(b); }
        printf("%.0f %.0f\n", x, y);
    }
    return 0;
}
C
gcc -O2 -o "$work/timer" "$work/timer.c"
echo "== vserver exec /bin/true vs nsenter -t $pid -a /bin/true, $rounds interleaved rounds"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/timer" "$rounds" -- "$V" benchx exec /bin/true -- "$(command -v nsenter)" -t "$pid" -a /bin/true > "$work/times"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/times" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
a = [r[0] / 1e6 for r in rows]; b = [r[1] / 1e6 for r in rows]
ratios = [x / y for x, y in zip(a, b)]
print(f"vserver exec: min {min(a):.2f} ms, median {statistics.median(a):.2f} ms")
print(f"nsenter -a:   min {min(b):.2f} ms, median {statistics.median(b):.2f} ms")
print(f"ratio: min/min {min(a)/min(b):.2f}x, median/median {statistics.median(a)/statistics.median(b):.2f}x, "
      f"median of per-round ratios {statistics.median(ratios):.2f}x (goal <= 1.2x)")
PY
