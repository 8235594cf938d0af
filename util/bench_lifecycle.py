#!/usr/bin/env python3
"""The driver of util/bench-lifecycle.sh (see there). Everything it makes lives
in a temporary directory and in LXC containers named vsbench-PID-*; all of it
is removed at the end, also after an error or ^C."""

import argparse
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PEERS_NET = "lxc.net.0.type = empty"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    """utime+stime+cutime+cstime of a process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def rss_anon_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def timed(cmd, env=None, extra_cpu_pid=None, stderr=None):
    """Wall seconds and CPU seconds of one command (its own and its waited-for
    descendants', plus a helper process's, e.g. the guest's monitor). stdin
    and stdout are /dev/null; the exec rounds pass stderr=DEVNULL too, so
    every command gets the same stdio and what is measured is the join, not a
    relay (with a terminal or a file as stderr, `vserver exec` allocates a pty
    or relays through a pipe, since a guest process never gets a host
    terminal or file; nsenter passes them)."""
    c0, e0 = child_cpu(), proc_cpu(extra_cpu_pid) if extra_cpu_pid else 0.0
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    wall = time.perf_counter() - t0
    cpu = child_cpu() - c0 + ((proc_cpu(extra_cpu_pid) - e0) if extra_cpu_pid else 0.0)
    return wall, cpu


def ms(x):
    return f"{x * 1e3:.2f} ms"


def report(title, ours, anchors, unit=ms):
    """ours: list of values; anchors: {name: list of values of the same rounds}."""
    print(f"{title}")
    print(f"  vserver-rs      min {unit(min(ours))}, median {unit(statistics.median(ours))}")
    for name, vals in anchors.items():
        ratios = [o / a for o, a in zip(ours, vals) if a > 0]
        print(f"  {name:<15} min {unit(min(vals))}, median {unit(statistics.median(vals))}; ratio min "
              f"{min(ours) / min(vals):.2f}x, median {statistics.median(ours) / statistics.median(vals):.2f}x, "
              f"median of per-round ratios {statistics.median(ratios):.2f}x")


class Bench:
    def __init__(self, bindir):
        self.bin = bindir
        self.tmp = tempfile.mkdtemp(prefix="vsbench.", dir="/var/tmp")
        self.env = dict(os.environ,
                        VSERVER_CONFDIR=f"{self.tmp}/etc",
                        VSERVER_VDIRBASE=f"{self.tmp}/vservers",
                        VSERVER_RUNDIR=f"{self.tmp}/run")
        os.makedirs(f"{self.tmp}/etc/.defaults")
        self.guests = []
        self.lxc = []
        self.tag = f"vsbench-{os.getpid()}"

    # --- our guests ---
    def vs(self, *args, check=True):
        quiet = {} if check else {"stderr": subprocess.DEVNULL}
        return subprocess.run([f"{self.bin}/vserver", *args], env=self.env, check=check,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **quiet)

    def build(self, name, xid, address=None, method=("busybox",), method_args=()):
        cmd = [name, "build", "-m", *method, "--context", str(xid)]
        if address:
            cmd += ["--interface", f"lo:{address}/32"]
        if method_args:
            cmd += ["--", *method_args]
        self.guests.append(name)
        self.vs(*cmd)

    def state(self, name):
        with open(f"{self.tmp}/run/{name}/state.json") as f:
            return json.load(f)

    # --- LXC containers ---
    def lxc_create(self, n):
        name = f"{self.tag}-{n}"
        subprocess.run(["lxc-create", "-q", "-t", "busybox", "-n", name], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lxc.append(name)
        cfg = f"/var/lib/lxc/{name}/config"
        lines = [l for l in open(cfg) if not l.startswith("lxc.net.0.")]
        lines.append(PEERS_NET + "\n")
        open(cfg, "w").writelines(lines)
        return name

    def lxc_start(self, name):
        subprocess.run(["lxc-start", "-d", "-n", name], check=True)
        subprocess.run(["lxc-wait", "-n", name, "-s", "RUNNING"], check=True)

    def lxc_pid(self, name):
        return int(subprocess.run(["lxc-info", "-pH", "-n", name], check=True, capture_output=True, text=True).stdout)

    def cleanup(self):
        for g in self.guests:
            self.vs(g, "stop", "--timeout", "2", check=False)
        for c in self.lxc:
            subprocess.run(["lxc-stop", "-k", "-n", c], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["lxc-destroy", "-f", "-n", c], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for g in self.guests:
            self.vs(g, "delete", "--force", check=False)
        subprocess.run(["chattr", "-R", "-i", self.tmp], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def bench_exec(b, rounds):
    b.build("bexec", 4990, address="127.0.250.1")
    b.vs("bexec", "start")
    st = b.state("bexec")
    init, monitor = st["init"]["pid"], st["monitor"]["pid"]
    c = b.lxc_create("exec")
    b.lxc_start(c)
    cmds = {
        "vserver-rs": ([f"{b.bin}/vserver", "bexec", "exec", "/bin/true"], monitor),
        "nsenter -a": (["nsenter", "-t", str(init), "-a", "/bin/true"], None),
        "lxc-attach": (["lxc-attach", "-n", c, "--", "/bin/true"], None),
    }
    for _ in range(10):  # warm up caches
        for cmd, pid in cmds.values():
            timed(cmd, b.env, pid, subprocess.DEVNULL)
    wall = {k: [] for k in cmds}
    cpu = {k: [] for k in cmds}
    for _ in range(rounds):
        order = list(cmds)
        random.shuffle(order)
        for k in order:
            w, u = timed(cmds[k][0], b.env, cmds[k][1], subprocess.DEVNULL)
            wall[k].append(w)
            cpu[k].append(u)
    ours = wall.pop("vserver-rs")
    report(f"exec /bin/true, {rounds} interleaved rounds, stdio /dev/null (wall time)", ours, wall)
    ours_cpu = cpu.pop("vserver-rs")
    report("exec /bin/true (CPU time: the command, its children, and for vserver-rs the guest's monitor)",
           ours_cpu, cpu)
    b.vs("bexec", "stop")
    subprocess.run(["lxc-stop", "-k", "-n", c], check=True)


def bench_start_stop(b, rounds):
    b.build("bstart", 4991, address="127.0.250.2")
    c = b.lxc_create("start")
    start = {"vserver-rs": [], "lxc-start+wait": []}
    stop = {"vserver-rs": [], "lxc-stop -k": []}
    for _ in range(rounds):
        order = ["ours", "lxc"]
        random.shuffle(order)
        for k in order:
            if k == "ours":
                start["vserver-rs"].append(timed([f"{b.bin}/vserver", "bstart", "start"], b.env)[0])
                # --timeout 0: kill at once, as lxc-stop -k does (a plain stop
                # first runs the guest's own shutdown).
                stop["vserver-rs"].append(timed([f"{b.bin}/vserver", "bstart", "stop", "--timeout", "0"], b.env)[0])
            else:
                t0 = time.perf_counter()
                b.lxc_start(c)
                start["lxc-start+wait"].append(time.perf_counter() - t0)
                stop["lxc-stop -k"].append(timed(["lxc-stop", "-k", "-n", c])[0])
    ours = start.pop("vserver-rs")
    report(f"start of a busybox guest with one address on lo, {rounds} interleaved rounds", ours, start)
    ours = stop.pop("vserver-rs")
    report(f"stop --timeout 0 (kill), {rounds} interleaved rounds", ours, stop)


def bench_many(b, n, blocks=2, rounds=12):
    names = [f"bmany{i}" for i in range(n)]
    for i, name in enumerate(names):
        b.build(name, 5000 + i, address=f"127.0.251.{i + 1}")
    conts = [b.lxc_create(f"many{i}") for i in range(n)]
    # One of ours, then one LXC container, and so on: both sequences see the
    # machine's load alike.
    times, lxc_times = [], []
    for name, c in zip(names, conts):
        times.append(timed([f"{b.bin}/vserver", name, "start"], b.env)[0])
        t0 = time.perf_counter()
        b.lxc_start(c)
        lxc_times.append(time.perf_counter() - t0)
    k = max(1, n // 10)
    tenths = lambda t: ", ".join(ms(statistics.median(t[i:i + k])) for i in range(0, n, k))
    print(f"{n} guests started one after another, each followed by one LXC container: medians of each {k} starts")
    for side, t in (("vserver-rs", times), ("lxc", lxc_times)):
        print(f"  {side:<15} {tenths(t)}; last {k} / first {k}: "
              f"{statistics.median(t[-k:]) / statistics.median(t[:k]):.2f}x")
    ours = [rss_anon_kb(b.state(name)["monitor"]["pid"]) for name in names]
    theirs = []
    for c in conts:
        ppid = open(f"/proc/{b.lxc_pid(c)}/stat").read().rsplit(")", 1)[1].split()[1]
        theirs.append(rss_anon_kb(int(ppid)))
    kb = lambda v: f"{v} KB"
    print(f"monitor anonymous memory per running guest ({n} each)")
    print(f"  vserver-rs monitor  median {kb(statistics.median(ours))}, max {kb(max(ours))}")
    print(f"  [lxc monitor]       median {kb(statistics.median(theirs))}, max {kb(max(theirs))}; "
          f"ratio of medians {statistics.median(ours) / statistics.median(theirs):.2f}x")
    start_with_others_running(b, names, conts, blocks, rounds)


def start_with_others_running(b, names, conts, blocks, rounds):
    """Flatness: the start of one more guest (and of one more LXC container)
    while the N others run and while none does, in alternating blocks, so
    that the machine's load drifts alike for both; LXC's change is the anchor
    for what the kernel's own work with N more cgroups, programs and
    addresses costs."""
    n = len(names)
    b.build("bmanyx", 4999, address="127.0.252.1")
    extra = b.lxc_create("manyx")
    got = {("vserver-rs", True): [], ("vserver-rs", False): [], ("lxc", True): [], ("lxc", False): []}

    def one_round(others_up):
        for side in random.sample(["vserver-rs", "lxc"], 2):
            if side == "vserver-rs":
                got[(side, others_up)].append(timed([f"{b.bin}/vserver", "bmanyx", "start"], b.env)[0])
                b.vs("bmanyx", "stop", "--timeout", "0")
            else:
                t0 = time.perf_counter()
                b.lxc_start(extra)
                got[(side, others_up)].append(time.perf_counter() - t0)
                subprocess.run(["lxc-stop", "-k", "-n", extra], check=True)

    # The kernel finishes a mass start or stop in its own time (cgroups and
    # their programs are released by work items): measured after a pause.
    settle = 3
    for block in range(blocks):
        if block > 0:
            for name in names:
                b.vs(name, "start")
            for c in conts:
                b.lxc_start(c)
        time.sleep(settle)
        for _ in range(rounds):
            one_round(True)
        for name in names:
            b.vs(name, "stop", "--timeout", "0")
        for c in conts:
            subprocess.run(["lxc-stop", "-k", "-n", c], check=True)
        time.sleep(settle)
        for _ in range(rounds):
            one_round(False)
    print(f"start of one more guest with {n} others running vs none ({blocks} alternating blocks of {rounds} rounds)")
    for side in ("vserver-rs", "lxc"):
        up, idle = got[(side, True)], got[(side, False)]
        print(f"  {side:<15} none running: median {ms(statistics.median(idle))}; {n} running: median "
              f"{ms(statistics.median(up))}; ratio {statistics.median(up) / statistics.median(idle):.2f}x")


def nspawn_ready(tree, timeout=60):
    """Seconds from launching `systemd-nspawn -b` until the container's systemd
    reports READY=1 (nspawn passes it on with --notify-ready=yes)."""
    d = tempfile.mkdtemp(prefix="vsbench-notify.")
    path = f"{d}/notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(timeout)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    t0 = time.perf_counter()
    p = subprocess.Popen(["systemd-nspawn", "-q", "-b", "-D", tree, "--notify-ready=yes", "--network-veth=no",
                          "--register=no", "--keep-unit"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while b"READY=1" not in s.recv(4096):
            pass
        return time.perf_counter() - t0
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        s.close()
        shutil.rmtree(d, ignore_errors=True)


def bench_debian(b, rounds):
    services = "openssh-server,nginx-light,cron,rsyslog"
    b.build("bdsd", 4992, address="127.0.250.3", method=("debootstrap",),
            method_args=("-d", "bookworm", f"--include={services}"))
    b.build("bdsv", 4993, address="127.0.250.4", method=("debootstrap", "--initstyle", "sysv"),
            method_args=("-d", "bookworm", f"--include={services}"))
    tree = f"{b.tmp}/nspawn-tree"
    subprocess.run(["cp", "-a", f"{b.tmp}/vservers/bdsd", tree], check=True)
    ours, theirs, sysv = [], [], []
    for _ in range(rounds):
        if random.random() < 0.5:
            ours.append(timed([f"{b.bin}/vserver", "bdsd", "start"], b.env)[0])
            b.vs("bdsd", "stop")
            theirs.append(nspawn_ready(tree))
        else:
            theirs.append(nspawn_ready(tree))
            ours.append(timed([f"{b.bin}/vserver", "bdsd", "start"], b.env)[0])
            b.vs("bdsd", "stop")
        sysv.append(timed([f"{b.bin}/vserver", "bdsv", "start"], b.env)[0])
        b.vs("bdsv", "stop")
    report(f"Debian systemd guest, start to ready (READY=1), {rounds} interleaved rounds", ours,
           {"nspawn -b": theirs}, unit=lambda x: f"{x:.2f} s")
    print(f"Debian sysv guest with {services}, start: min {min(sysv):.2f} s, median {statistics.median(sysv):.2f} s")
    shutil.rmtree(tree, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=200, help="exec rounds (start/stop: a quarter)")
    ap.add_argument("--guests", type=int, default=50)
    ap.add_argument("--debian", action="store_true")
    ap.add_argument("--only", default="exec,start,many,debian")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-lifecycle: needs root")
    only = set(a.only.split(","))
    b = Bench(a.bin)
    print(f"load average at start: {loadavg()} ({os.cpu_count()} CPUs)")
    try:
        if "exec" in only:
            bench_exec(b, a.rounds)
        if "start" in only:
            bench_start_stop(b, max(10, a.rounds // 4))
        if "many" in only:
            bench_many(b, a.guests)
        if a.debian and "debian" in only:
            bench_debian(b, 5)
    finally:
        b.cleanup()
        print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
