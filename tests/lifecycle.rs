//! Guest lifecycle from the outside and from the inside: real busybox guests
//! built, started, entered and stopped with the real `vserver` binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require_busybox, require_root, stdout, wait_until};

fn ready() -> bool {
    require_root() && require_busybox()
}

#[test]
fn busybox_guest_starts_runs_commands_and_stops_cleanly() {
    if !ready() {
        return;
    }
    let w = World::new("life");
    let (g, _) = w.busybox_guest("bb");
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    w.ok(&g, &["start"]);
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(0));
    assert_eq!(w.vserver(&[&g, "running"]).status.code(), Some(0));

    // stdin, stdout and the exit code pass through exec.
    let mut child = w
        .cmd("vserver")
        .args([&g, "exec", "/bin/sh", "-c", "read x; echo got:$x; exit 42"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(stdout(&out).trim(), "got:hello");

    // As util-vserver: starting a running guest and stopping a stopped one
    // warn and succeed (idempotent scripts rely on it).
    let again = w.vserver(&[&g, "start"]);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("vserver '{g}' already running")));

    w.ok(&g, &["stop"]);
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    let stopped = w.vserver(&[&g, "stop"]);
    assert_eq!(stopped.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&stopped.stderr).contains(&format!("vserver '{g}' is not running")));
    w.assert_nothing_left(&g);
}

#[test]
fn inside_the_guest_only_the_guest_is_visible() {
    if !ready() {
        return;
    }
    let w = World::new("inside");
    let (g, _) = w.busybox_guest("in");
    w.write_conf(&g, "uts/nodename", "inside-host\n");
    w.write_conf(&g, "uts/domainname", "example.test\n");
    w.write_conf(&g, "rlimits/nofile", "123\n");
    w.write_conf(&g, "rlimits/core.hard", "0\n");
    w.ok(&g, &["start"]);

    // pid 1 is the guest's init; no host process is visible.
    let ps = w.sh_ok(&g, "for p in /proc/[0-9]*; do echo ${p#/proc/} $(cat $p/comm); done");
    let procs: Vec<&str> = ps.lines().collect();
    assert!(procs.contains(&"1 init"), "{ps}");
    assert!(procs.len() <= 4, "host processes visible in the guest:\n{ps}");

    assert_eq!(w.sh_ok(&g, "hostname").trim(), "inside-host");
    assert_eq!(w.sh_ok(&g, "cat /proc/sys/kernel/domainname").trim(), "example.test");

    // The bounding set is exactly the configured (default) one.
    let expected = vserver_core::caps::to_mask(&vserver_core::caps::default_bounding_set());
    let status = w.sh_ok(&g, "cat /proc/self/status");
    let bnd = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim().to_string();
    assert_eq!(u64::from_str_radix(&bnd, 16).unwrap(), expected, "{status}");
    assert!(status.contains("CapAmb:\t0000000000000000") && status.contains("CapInh:\t0000000000000000"));

    // /dev holds exactly the allowed nodes, and the console.
    let dev = w.sh_ok(&g, "ls -a /dev");
    let mut names: Vec<&str> = dev.split_whitespace().filter(|n| *n != "." && *n != "..").collect();
    names.sort();
    let mut expected: Vec<&str> = vserver_core::rootfs::dev::DEV_ENTRIES.to_vec();
    expected.push("console");
    expected.sort();
    assert_eq!(names, expected);
    assert!(w.sh(&g, "mknod /dev/sda b 8 0").status.code() != Some(0), "mknod must fail");

    // Masked /proc files cannot be opened at all, for reading or writing
    // (not an endless EOF for a reader like rsyslog's imklog, and no write
    // reaching /dev/null). Only files this kernel has are masked: check
    // those, and that there are some, so the check cannot pass vacuously.
    let present: Vec<&str> = vserver_core::rootfs::proc::MASKED_FILES.iter().copied().filter(|f| Path::new(f).exists()).collect();
    assert!(present.len() >= 3, "too few masked files on this kernel to check anything: {present:?}");
    for masked in &present {
        let read = w.sh(&g, &format!("cat {masked} > /dev/null"));
        assert!(!read.status.success(), "{masked} must not open for reading: {}", describe(&read));
        assert!(String::from_utf8_lossy(&read.stderr).contains("Permission denied"), "{masked}: {}", describe(&read));
        let write = w.sh(&g, &format!("echo h > {masked}"));
        assert!(!write.status.success(), "{masked} must not open for writing: {}", describe(&write));
    }
    assert!(!w.sh(&g, "echo 1 > /proc/sys/net/ipv4/ip_forward").status.success());
    assert!(!w.sh(&g, "touch /sys/x").status.success(), "/sys must be read-only");

    // rlimits applied before exec.
    assert_eq!(w.sh_ok(&g, "ulimit -n").trim(), "123");
    assert_eq!(w.sh_ok(&g, "ulimit -c").trim(), "0");

    // No cgroup filesystem to write to or move out through.
    assert_eq!(w.sh_ok(&g, "ls -A /sys/fs/cgroup 2>/dev/null | wc -l").trim(), "0");
    // Nothing of the host's descriptors: only stdin, stdout, stderr (and ls's own).
    let fds = w.sh_ok(&g, "ls /proc/self/fd | tr '\\n' ' '");
    let fds: Vec<u32> = fds.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(fds.iter().filter(|f| **f > 3).count() == 0, "host descriptors leaked: {fds:?}");

    // The environment is clean.
    let env = w.sh_ok(&g, "env | cut -d= -f1 | sort | tr '\\n' ' '");
    for var in env.split_whitespace() {
        assert!(
            ["PATH", "HOME", "TERM", "container", "PWD", "SHLVL", "USER", "LOGNAME", "SHELL"].contains(&var),
            "host variable {var} leaked: {env}"
        );
    }
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn seccomp_and_capabilities_block_what_reaches_past_the_namespaces() {
    if !ready() {
        return;
    }
    let w = World::new("sec");
    let (g, _) = w.busybox_guest("sec");
    w.ok(&g, &["start"]);
    for (what, script) in [
        ("a new user namespace", "unshare -U true"),
        ("a new mount namespace", "unshare -m true"),
        ("joining the host's namespaces", "nsenter -t 1 -m true"),
        ("mounting", "mount -t tmpfs none /mnt"),
        ("setting the clock", "date -s 2001-01-01 >/dev/null 2>&1; [ $(date +%Y) = 2001 ]"),
        ("loading modules", "insmod /nonexistent.ko"),
        ("raw sockets", "ping -c1 -W1 127.0.0.1"),
        ("changing the hostname", "hostname evil"),
    ] {
        let out = w.sh(&g, script);
        assert!(!out.status.success(), "{what} must fail in the guest: {}", describe(&out));
    }
    assert_eq!(w.sh_ok(&g, "hostname").trim(), g, "hostname must be unchanged");
    w.ok(&g, &["stop"]);
}

#[test]
fn chroot_escape_stays_in_the_guest() {
    if !ready() {
        return;
    }
    if !vserver_rs_tests::require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the escape program") {
        return;
    }
    let w = World::new("escape");
    let (g, _) = w.busybox_guest("esc");
    let bin = w.guest_root(&g).join("bin/escape");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/escape.c").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // A marker that exists only in the host's root directory would be listed
    // by a successful escape; the guest's own root has `linuxrc` from busybox.
    w.ok(&g, &["start"]);
    let top = w.sh_ok(&g, "/bin/escape");
    let names: Vec<&str> = top.lines().collect();
    assert!(names.contains(&"linuxrc"), "the escape should end at the guest's own root: {top}");
    for host_only in ["work", "boot", "lib64"] {
        if Path::new("/").join(host_only).exists() && !w.guest_root(&g).join(host_only).exists() {
            assert!(!names.contains(&host_only), "escaped to the host root: {top}");
        }
    }
    w.ok(&g, &["stop"]);
}

#[test]
fn personality_and_virtual_uptime() {
    if !ready() {
        return;
    }
    let w = World::new("pers");
    let (g, _) = w.busybox_guest("per");
    w.write_conf(&g, "personality", "linux32\n");
    w.write_conf(&g, "cflags", "VIRT_UPTIME\n");
    std::thread::sleep(Duration::from_millis(10));
    w.ok(&g, &["start"]);
    assert_eq!(w.sh_ok(&g, "uname -m").trim(), "i686");
    let uptime: f64 = w.sh_ok(&g, "cut -d' ' -f1 /proc/uptime").trim().parse().unwrap();
    assert!(uptime < 30.0, "guest uptime should start near 0, is {uptime}");
    let host: f64 = fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(host > uptime, "host {host} vs guest {uptime}");
    w.ok(&g, &["stop"]);
}

#[test]
fn reboot_restarts_and_halt_stops() {
    if !ready() {
        return;
    }
    let w = World::new("reboot");
    let (g, _) = w.busybox_guest("rb");
    w.ok(&g, &["start"]);
    let state = |w: &World| vserver_core::runstate::RunState::load(&paths(w), &g).unwrap();
    let first = state(&w).unwrap().init;
    w.sh(&g, "reboot");
    wait_until("the guest to come back with a new init", Duration::from_secs(15), || {
        state(&w).is_some_and(|s| s.init != first && s.is_alive())
    });
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(0));
    w.sh(&g, "halt");
    wait_until("the guest to stop after halt", Duration::from_secs(15), || w.vserver(&[&g, "status"]).status.code() == Some(3));
    w.assert_nothing_left(&g);
}

fn host_has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim().to_string();
    const CAP_SYS_RESOURCE: u32 = 24;
    u64::from_str_radix(&eff, 16).unwrap() & (1 << CAP_SYS_RESOURCE) != 0
}

fn paths(w: &World) -> vserver_core::Paths {
    vserver_core::Paths {
        confdir: w.confdir.clone(),
        vdirbase: w.vdirbase.clone(),
        rundir: w.rundir.clone(),
        cgroup_root: "/sys/fs/cgroup".into(),
    }
}

#[test]
fn stale_run_state_is_detected_and_never_kills_a_stranger() {
    if !ready() {
        return;
    }
    let w = World::new("stale");
    let (g, _) = w.busybox_guest("st");
    w.ok(&g, &["start"]);
    let p = paths(&w);
    let mut s = vserver_core::runstate::RunState::load(&p, &g).unwrap().unwrap();
    // The monitor dies (host crash, kill -9): the guest dies with it.
    unsafe { libc::kill(s.monitor.pid, libc::SIGKILL) };
    wait_until("the guest to die with its monitor", Duration::from_secs(5), || !s.init.is_alive());
    // util-vserver says "stopped" (exit 3) for a guest whose run file is stale.
    let st = w.vserver(&[&g, "status"]);
    assert_eq!(st.status.code(), Some(3), "{}", describe(&st));
    assert_eq!(stdout(&st), format!("Vserver '{g}' is stopped\n"));
    assert!(String::from_utf8_lossy(&st.stderr).contains("stale"));

    // A reused pid: the state names a live process (this test) whose start
    // time differs. Nothing may be sent to it.
    let me = vserver_core::runstate::ProcessId::of(std::process::id() as i32).unwrap();
    s.init = vserver_core::runstate::ProcessId { start_time: me.start_time + 1, ..me };
    s.monitor = s.init;
    s.save(&p).unwrap();
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    let stop = w.vserver(&[&g, "stop"]);
    assert!(stop.status.success(), "{}", describe(&stop));
    assert!(String::from_utf8_lossy(&stop.stderr).contains("stale"));
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    w.assert_nothing_left(&g);
    // A stale guest starts again.
    w.ok(&g, &["start"]);
    // Its monitor killed and the run dir wiped: the empty cgroup tree left
    // behind (payload, supervisor) is removed and made again at the next start.
    let s = vserver_core::runstate::RunState::load(&p, &g).unwrap().unwrap();
    unsafe { libc::kill(s.monitor.pid, libc::SIGKILL) };
    wait_until("the guest to die with its monitor", Duration::from_secs(5), || !s.init.is_alive());
    fs::remove_dir_all(w.rundir.join(&g)).unwrap();
    assert!(Path::new(&s.cgroups[0]).join("payload").is_dir(), "the test needs a leftover tree");
    w.ok(&g, &["start"]);
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn two_guests_may_not_share_an_xid() {
    if !ready() {
        return;
    }
    let w = World::new("xid");
    let (a, xid) = w.busybox_guest("xa");
    let (b, _) = w.busybox_guest("xb");
    w.write_conf(&b, "context", &format!("{xid}\n"));
    w.ok(&a, &["start"]);
    let out = w.vserver(&[&b, "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("context id {xid}")), "{}", describe(&out));
    w.assert_nothing_left(&b);
    w.ok(&a, &["stop"]);
    // Building a guest with a used xid is refused too.
    let (c, _) = w.new_guest_name("xc");
    let out = w.vserver(&[&c, "build", "-m", "skeleton", "--context", &xid.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!w.guest_conf(&c).exists(), "a refused build must leave nothing");
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    if !ready() {
        return;
    }
    let w = World::new("fail");
    let (g, _) = w.busybox_guest("fl");
    w.write_conf(&g, "fstab", "none /tmp tmpfs size=1m 0 0\n/nonexistent/source /mnt none bind 0 0\n");
    let out = w.vserver(&[&g, "start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/source"), "{err}");
    w.assert_nothing_left(&g);
    assert!(w.cmd("vserver").args([&g, "status"]).output().unwrap().status.code() == Some(3));
}

#[test]
fn fstab_targets_cannot_be_redirected_to_host_paths() {
    if !ready() {
        return;
    }
    let w = World::new("fstab");
    let (g, _) = w.busybox_guest("fs");
    // Guest root plants a symlink pointing at a host directory.
    let host_dir = w.root.join("host-only-dir");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("precious"), "host data").unwrap();
    std::os::unix::fs::symlink(&host_dir, w.guest_root(&g).join("evil")).unwrap();
    w.write_conf(&g, "fstab", "none /evil tmpfs size=1m 0 0\n");
    w.ok(&g, &["start"]);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&*host_dir.to_string_lossy()), "the host directory got mounted over");
    assert_eq!(fs::read_to_string(host_dir.join("precious")).unwrap(), "host data");
    // Inside, the symlink leads to the guest's own copy of that path, now a tmpfs.
    let inside = w.sh_ok(&g, &format!("grep ' {} tmpfs' /proc/mounts | wc -l", host_dir.display()));
    assert_eq!(inside.trim(), "1", "tmpfs should be mounted inside the guest at its own {}", host_dir.display());
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn malformed_configuration_gives_the_documented_errors() {
    if !ready() {
        return;
    }
    let w = World::new("badconf");
    let (g, _) = w.busybox_guest("bc");
    let cases: &[(&str, &str, &str)] = &[
        ("bcapabilities", "CHOWN\nCAP_TELEPORT\n", "bcapabilities:2: \"CAP_TELEPORT\" is not a Linux capability name"),
        ("cflags", "virt_mem\n", "no stock-kernel equivalent"),
        ("context", "1\n", "is not a context id"),
        ("rlimits/nofile", "12kX\n", "unknown suffix"),
        ("rlimits/openfd", "10\n", "no equivalent on a stock kernel"),
        ("interfaces/0/ip", "10.0.0.300\n", "\"10.0.0.300\" is not an IPv4 or IPv6 address"),
        ("apps/init/style", "upstart\n", "is not an init style"),
        ("namespaces", "pid\n", "is always a namespace of its own"),
        ("fstab", "none tmp tmpfs\n", "relative target"),
    ];
    let original_context = fs::read_to_string(w.guest_conf(&g).join("context")).unwrap();
    for (file, content, expected) in cases {
        w.write_conf(&g, file, content);
        let out = w.vserver(&[&g, "start"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(expected), "{file}: expected {expected:?} in: {err}");
        assert!(
            err.contains(&*w.guest_conf(&g).join(file.split('/').next().unwrap()).to_string_lossy()),
            "{file}: error should name the file: {err}"
        );
        let path = w.guest_conf(&g).join(file);
        if *file == "context" {
            fs::write(&path, &original_context).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        w.assert_nothing_left(&g);
    }
    let unknown = w.vserver(&["no-such-guest", "start"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such guest \"no-such-guest\""));
}

/// An admin who breaks a setting of a running guest (a typo in `rlimits/`)
/// can still stop it: `stop` reads only the guest's identity and init. A
/// broken identity or init file still stops `stop`, by name; `start` still
/// refuses the broken settings.
#[test]
fn a_setting_broken_while_the_guest_runs_does_not_keep_it_from_stopping() {
    if !ready() {
        return;
    }
    let w = World::new("brokenrun");
    let (g, _) = w.busybox_guest("br");
    w.ok(&g, &["start"]);
    w.write_conf(&g, "rlimits/nofile", "12kX\n");
    w.write_conf(&g, "bcapabilities", "CAP_TELEPORT\n");
    w.write_conf(&g, "apps/init/style", "upstart\n");
    let refused = w.vserver(&[&g, "stop", "--timeout", "0"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("apps/init/style:1: \"upstart\" is not an init style"),
        "{}",
        describe(&refused)
    );
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(0), "a refused stop must leave the guest running");
    fs::remove_file(w.guest_conf(&g).join("apps/init/style")).unwrap();
    w.ok(&g, &["stop", "--timeout", "0"]);
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    w.assert_nothing_left(&g);
    let start = w.vserver(&[&g, "start"]);
    assert_eq!(start.status.code(), Some(1), "{}", describe(&start));
    assert!(String::from_utf8_lossy(&start.stderr).contains("\"CAP_TELEPORT\" is not a Linux capability name"), "{}", describe(&start));
    w.assert_nothing_left(&g);
}

#[test]
fn sysv_style_runs_the_start_and_stop_commands() {
    if !ready() {
        return;
    }
    let w = World::new("sysv");
    let (g, _) = w.busybox_guest("sv");
    w.write_conf(&g, "apps/init/style", "sysv\n");
    w.write_conf(&g, "apps/init/cmd.start", "/bin/sh\n-c\necho started > /tmp/started; sleep 1000 &\n");
    w.write_conf(&g, "apps/init/cmd.stop", "/bin/sh\n-c\necho stopped > /stopped-marker\n");
    w.ok(&g, &["start"]);
    assert_eq!(w.sh_ok(&g, "cat /tmp/started").trim(), "started");
    // The built-in init is pid 1 and reaps orphans.
    w.sh_ok(&g, "sh -c 'sleep 0.1 &' ; sleep 0.3");
    let zombies = w.sh_ok(&g, "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l");
    assert_eq!(zombies.trim(), "0", "orphans must be reaped");
    w.ok(&g, &["stop"]);
    assert_eq!(fs::read_to_string(w.guest_root(&g).join("stopped-marker")).unwrap().trim(), "stopped");
    w.assert_nothing_left(&g);
}

#[test]
fn all_marked_starts_and_stops_marked_guests_only() {
    if !ready() {
        return;
    }
    let w = World::new("marked");
    let (a, _) = w.busybox_guest("ma");
    let (b, _) = w.busybox_guest("mb");
    let mark = format!("testmark{}", std::process::id());
    w.write_conf(&a, "apps/init/mark", &format!("{mark}\n"));
    let out = w.vserver(&["--all-marked", &mark, "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.vserver(&[&a, "status"]).status.code(), Some(0));
    assert_eq!(w.vserver(&[&b, "status"]).status.code(), Some(3));
    let out = w.vserver(&["--all-marked", &mark, "stop"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.vserver(&[&a, "status"]).status.code(), Some(3));
    w.assert_nothing_left(&a);
}

#[test]
fn clone_and_delete() {
    if !ready() {
        return;
    }
    let w = World::new("clone");
    let (a, xid) = w.busybox_guest("ca");
    w.write_conf(&a, "rlimits/nofile", "77\n");
    let (b, _) = w.new_guest_name("cb");
    w.ok(&b, &["build", "-m", "clone", "--", &a]);
    let bx: u32 = fs::read_to_string(w.guest_conf(&b).join("context")).unwrap().trim().parse().unwrap();
    assert_ne!(bx, xid, "a clone gets a new xid");
    w.ok(&b, &["start"]);
    assert_eq!(w.sh_ok(&b, "ulimit -n").trim(), "77");
    assert_eq!(w.sh_ok(&b, "hostname").trim(), b);
    // As util-vserver: a running guest is stopped, then deleted (no terminal here, so no question).
    w.ok(&b, &["delete"]);
    assert!(!w.guest_conf(&b).exists() && !w.guest_root(&b).exists());
    w.assert_nothing_left(&b);
}

#[test]
fn hashified_files_are_shared_and_a_running_guest_changes_only_its_own_copy() {
    if !ready() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let w = World::new("unified");
    let (a, _) = w.busybox_guest("ua");
    let (b, _) = w.busybox_guest("ub");
    let shared = "shared data\n".repeat(700);
    for g in [&a, &b] {
        fs::create_dir_all(w.guest_root(g).join("usr/share")).unwrap();
        for f in ["usr/share/shared-boot.txt", "usr/share/shared-exec.txt", "usr/share/shared-rm.txt"] {
            fs::write(w.guest_root(g).join(f), &shared).unwrap();
        }
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
    }
    // Together: a file only one guest has is never unified.
    let out = w.cmd("vhashify").arg("--all").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // Written by the guest's pid 1's child (busybox init runs rcS) through
    // the listener pid 1 handed to the monitor at start.
    let rcs = w.guest_root(&b).join("etc/init.d/rcS");
    let mut script = fs::read_to_string(&rcs).unwrap();
    script.push_str("echo booted >> /usr/share/shared-boot.txt\n");
    fs::remove_file(&rcs).unwrap();
    fs::write(&rcs, script).unwrap();
    fs::set_permissions(&rcs, fs::Permissions::from_mode(0o755)).unwrap();
    let ino = |g: &str, f: &str| fs::metadata(w.guest_root(g).join(f)).unwrap().ino();
    for f in ["bin/busybox", "usr/share/shared-boot.txt", "usr/share/shared-exec.txt", "usr/share/shared-rm.txt"] {
        assert_eq!(ino(&a, f), ino(&b, f), "both guests' {f} must be one inode");
    }
    w.ok(&b, &["start"]);
    // Processes that join (vserver exec) hand their own listeners over.
    w.sh_ok(&b, "echo changed >> /usr/share/shared-exec.txt && rm /usr/share/shared-rm.txt && [ ! -e /usr/share/shared-rm.txt ]");
    // Still forbidden: the flag itself (no CAP_LINUX_IMMUTABLE in a guest).
    let out = w.sh(&b, "chattr -i /bin/busybox");
    assert!(!out.status.success(), "a guest process must not clear the immutable flag of a shared file: {}", describe(&out));
    let read = |g: &str, f: &str| fs::read_to_string(w.guest_root(g).join(f)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !read(&b, "usr/share/shared-boot.txt").ends_with("booted\n") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(read(&b, "usr/share/shared-boot.txt").ends_with("booted\n"), "the guest's rcS changed its own copy");
    assert!(read(&b, "usr/share/shared-exec.txt").ends_with("changed\n"));
    for f in ["usr/share/shared-boot.txt", "usr/share/shared-exec.txt"] {
        assert_eq!(read(&a, f), shared, "the other guest's {f} is unchanged");
        assert_ne!(ino(&a, f), ino(&b, f), "{f}: the changed guest has its own copy now");
        assert!(vserver_rs_tests::unify::is_immutable(&w.guest_root(&a).join(f)), "{f} stays protected for the other guest");
    }
    assert!(w.guest_root(&a).join("usr/share/shared-rm.txt").exists(), "a removal in one guest leaves the other's file");
    assert_eq!(ino(&a, "bin/busybox"), ino(&b, "bin/busybox"), "what was not changed stays shared");
    w.ok(&b, &["stop"]);
    w.ok(&a, &["delete"]);
    assert!(w.guest_root(&b).join("bin/busybox").exists(), "deleting one guest keeps the other's shared files");
}

#[test]
fn enter_gives_a_login_shell_on_a_pty_inside_the_guest() {
    if !ready() {
        return;
    }
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let w = World::new("enter");
    let (g, _) = w.busybox_guest("en");
    w.ok(&g, &["start"]);
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    assert_eq!(unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) }, 0);
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    let mut master = fs::File::from(unsafe { OwnedFd::from_raw_fd(master) });
    let mut child = w
        .cmd("vserver")
        .args([&g, "enter"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    master.write_all(b"echo tty=$(tty) host=$(hostname) sum=$((40+2)); exit 5\n").unwrap();
    let status = child.wait().unwrap();
    let mut out = vec![0u8; 65536];
    let mut text = String::new();
    // SAFETY: non-blocking reads of what the session printed.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::F_SETFL, libc::O_NONBLOCK) };
    while let Ok(n) = master.read(&mut out) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&out[..n]));
    }
    assert_eq!(status.code(), Some(5), "the shell's exit code passes through: {text}");
    // pts/0 is the guest's /dev/console.
    assert!(text.contains(&format!("tty=/dev/pts/1 host={g} sum=42")), "{text}");
    w.ok(&g, &["stop"]);
}

#[test]
fn a_guest_root_reachable_by_host_users_is_refused() {
    if !ready() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let w = World::new("barrier");
    let (g, _) = w.busybox_guest("ba");
    assert_eq!(fs::metadata(&w.vdirbase).unwrap().permissions().mode() & 0o777, 0, "build sets the barrier");
    fs::set_permissions(&w.vdirbase, fs::Permissions::from_mode(0o755)).unwrap();
    let out = w.vserver(&[&g, "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("searchable by other users"), "{}", describe(&out));
    w.assert_nothing_left(&g);
}

#[test]
fn a_user_namespace_makes_guest_root_an_unprivileged_host_uid() {
    if !ready() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let w = World::new("userns");
    // Guests built while .defaults asks for a user namespace get shifted ids.
    fs::write(w.confdir.join(".defaults/namespaces"), "user\n").unwrap();
    let (g, xid) = w.busybox_guest("un");
    let base = vserver_core::context::userns::base(xid);
    assert_eq!(fs::metadata(w.guest_root(&g).join("bin/busybox")).unwrap().uid(), base);
    w.ok(&g, &["start"]);
    assert_eq!(w.sh_ok(&g, "id -u").trim(), "0", "root inside");
    assert_eq!(w.sh_ok(&g, "cat /proc/self/uid_map").split_whitespace().collect::<Vec<_>>(), ["0", &base.to_string(), "65536"]);
    let state = vserver_core::runstate::RunState::load(&paths(&w), &g).unwrap().unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", state.init.pid)).unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(uid, base.to_string(), "the guest's init is an unprivileged uid on the host");
    w.sh_ok(&g, "echo data > /root/made-inside");
    assert_eq!(fs::metadata(w.guest_root(&g).join("root/made-inside")).unwrap().uid(), base);
    // The same confinement as ever: the bounding set, /dev, no new namespaces.
    // The base entries and the console.
    assert_eq!(w.sh_ok(&g, "ls /dev | wc -l").trim(), (vserver_core::rootfs::dev::DEV_ENTRIES.len() + 1).to_string());
    assert!(!w.sh(&g, "unshare -U true").status.success());
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);

    // A tree that was not shifted is refused with a message saying why.
    fs::remove_file(w.confdir.join(".defaults/namespaces")).unwrap();
    let (h, _) = w.busybox_guest("un");
    w.write_conf(&h, "namespaces", "user\n");
    let out = w.vserver(&[&h, "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to uid 0"), "{}", describe(&out));
    w.assert_nothing_left(&h);
}

#[test]
fn devices_outside_the_list_cannot_be_opened_even_when_bound_in() {
    if !ready() {
        return;
    }
    let w = World::new("devcg");
    let (g, _) = w.busybox_guest("dv");
    // An admin's fstab (or a guest-root mistake) brings a host device node in.
    w.write_conf(&g, "fstab", "/dev/kmsg /kmsg bind bind 0 0\n/dev/zero /zero2 bind bind 0 0\n");
    w.ok(&g, &["start"]);
    let out = w.sh(&g, ": < /kmsg");
    assert!(!out.status.success(), "the host's kernel log must stay closed: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not permitted"), "{}", describe(&out));
    assert_eq!(w.sh_ok(&g, "head -c3 /zero2 | wc -c").trim(), "3", "a listed device works wherever it is");
    // The cgroup v2 device filter is attached (it is the only device control on v2-only hosts).
    let state = vserver_core::runstate::RunState::load(&paths(&w), &g).unwrap().unwrap();
    let v2 = state.cgroups.iter().find(|d| d.join("cgroup.controllers").exists()).expect("a cgroup v2 directory");
    if vserver_rs_tests::require(Command::new("bpftool").arg("version").output().is_ok(), "bpftool") {
        let out = Command::new("bpftool").args(["cgroup", "show"]).arg(v2).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("vs_devices"), "{}", describe(&out));
    }
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn console_run_tmpfs_cgroups_and_a_stop_that_runs_the_guests_shutdown() {
    if !ready() {
        return;
    }
    let w = World::new("console");
    let (g, _) = w.busybox_guest("co");
    // busybox init runs ::shutdown: actions on its way down (SIGINT from
    // `vserver stop` is its ctrl-alt-del, a reboot the stop turns into a halt).
    fs::write(
        w.guest_root(&g).join("etc/inittab"),
        "::sysinit:/etc/init.d/rcS\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/echo bye-from-the-guests-shutdown\n",
    )
    .unwrap();
    w.ok(&g, &["start"]);
    let console = w.rundir.join(&g).join("console.log");

    // /dev/console is a pty of the guest's own devpts, pid 1's stdio, and
    // what is written to it ends up in console.log.
    assert_eq!(w.sh_ok(&g, "stat -c %t /dev/console").trim(), "88", "major 136 (hex 88): a pty slave");
    assert_eq!(w.sh_ok(&g, "readlink /proc/1/fd/1").trim(), "/dev/console");
    w.sh_ok(&g, "echo written-to-the-console > /dev/console");
    wait_until("the console line in console.log", Duration::from_secs(5), || {
        fs::read_to_string(&console).unwrap_or_default().contains("written-to-the-console\n")
    });

    // /run and /run/lock are fresh tmpfs at every start.
    let mounts = w.sh_ok(&g, "cat /proc/mounts");
    for target in ["/run", "/run/lock"] {
        assert!(mounts.lines().any(|l| l.starts_with(&format!("tmpfs {target} tmpfs "))), "{target} tmpfs:\n{mounts}");
    }
    w.sh_ok(&g, "echo 4242 > /run/stale.pid");

    // Guest processes (pid 1 and joiners) score above host daemons for the
    // OOM killer, and guest root cannot lower that.
    let adj = vserver_core::context::GUEST_OOM_SCORE_ADJ.to_string();
    assert_eq!(w.sh_ok(&g, "cat /proc/1/oom_score_adj /proc/self/oom_score_adj").split_whitespace().collect::<Vec<_>>(), [&adj, &adj]);
    // The floor is set only by a writer with CAP_SYS_RESOURCE, which root
    // normally has (the build machine's root does not: then the score can
    // only be checked, and guest root could lower it back to 0, never below).
    if host_has_cap_sys_resource() {
        let lower = w.sh(&g, "echo 0 > /proc/self/oom_score_adj");
        assert!(!lower.status.success(), "guest root lowered its OOM score: {}", describe(&lower));
    } else {
        eprintln!("note: this host's root lacks CAP_SYS_RESOURCE; the OOM score floor cannot be checked here");
        assert!(!w.sh(&g, "echo -1 > /proc/self/oom_score_adj").status.success(), "guest root went below 0");
    }
    w.sh_ok(&g, "echo 600 > /proc/self/oom_score_adj");

    // pid 1 is in payload, the monitor in supervisor, both below vserver/NAME.
    let state = vserver_core::runstate::RunState::load(&paths(&w), &g).unwrap().unwrap();
    let in_cgroup = |pid: i32, child: &str| {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        text.lines().filter(|l| !l.contains("name=")).all(|l| l.ends_with(&format!("/vserver/{g}/{child}")))
    };
    assert!(in_cgroup(state.init.pid, "payload"), "pid 1 in payload");
    assert!(in_cgroup(state.monitor.pid, "supervisor"), "the monitor in supervisor");

    let out = w.vserver(&[&g, "stop"]);
    assert!(out.status.success(), "{}", describe(&out));
    let log = fs::read_to_string(&console).unwrap();
    assert!(log.contains("bye-from-the-guests-shutdown"), "the guest's shutdown ran:\n{log}");
    assert!(!log.contains("did not stop in time"), "the guest stopped by itself:\n{log}");
    let monitor_log = fs::read_to_string(w.rundir.join(&g).join("monitor.log")).unwrap_or_default();
    assert!(monitor_log.trim().is_empty(), "no error at a clean stop:\n{monitor_log}");
    w.assert_nothing_left(&g);

    // A new start: /run is empty again.
    w.ok(&g, &["start"]);
    assert!(!w.sh(&g, "test -e /run/stale.pid").status.success(), "/run kept a file of the last boot");
    // --timeout 0: no shutdown, the guest is killed at once.
    let before = fs::read_to_string(&console).unwrap().matches("bye-from-the-guests-shutdown").count();
    let out = w.vserver(&[&g, "stop", "--timeout", "0"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_to_string(&console).unwrap().matches("bye-from-the-guests-shutdown").count(), before);
    w.assert_nothing_left(&g);
}

#[test]
fn the_guests_pid_1_starts_with_a_clean_signal_state() {
    if !ready() {
        return;
    }
    let w = World::new("signals");
    let (g, _) = w.busybox_guest("sg");
    // A pid 1 that changes nothing about its signals.
    w.write_conf(&g, "apps/init/cmd.start", "/bin/sleep\n1000\n");
    w.ok(&g, &["start"]);
    let state = vserver_core::runstate::RunState::load(&paths(&w), &g).unwrap().unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", state.init.pid)).unwrap();
    let mask = |field: &str| u64::from_str_radix(status.lines().find_map(|l| l.strip_prefix(field)).unwrap().trim(), 16).unwrap();
    assert_eq!(mask("SigBlk:"), 0, "no signal blocked (the monitor's signalfd set must not leak):\n{status}");
    assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE not ignored:\n{status}");
    // A pid 1 without a handler ignores the stop request (the kernel drops
    // signals with the default action for a namespace's init): the monitor
    // kills it when the time is up.
    let t = Instant::now();
    w.ok(&g, &["stop", "--timeout", "1"]);
    assert!(t.elapsed() >= Duration::from_secs(1), "it was given its second");
    let log = fs::read_to_string(w.rundir.join(&g).join("console.log")).unwrap();
    assert!(log.contains("did not stop in time"), "{log}");
    w.assert_nothing_left(&g);
}
