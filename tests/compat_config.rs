//! An /etc/vservers tree written as util-vserver admins write it, on real
//! busybox guests: every file's effect is checked from the host (the
//! guest's cgroup, its init's /proc entries, the host's addresses) or from
//! inside, and the scriptlets record their arguments, environment and
//! working directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vserver_core::cgroup::{GuestCgroup, Layout};
use vserver_core::limits::controller::{locate, Version};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require_busybox, require_root, unique};

fn ready() -> bool {
    require_root() && require_busybox()
}

fn paths(w: &World) -> vserver_core::Paths {
    vserver_core::Paths {
        confdir: w.confdir.clone(),
        vdirbase: w.vdirbase.clone(),
        rundir: w.rundir.clone(),
        cgroup_root: "/sys/fs/cgroup".into(),
    }
}

fn init_pid(w: &World, g: &str) -> i32 {
    vserver_core::runstate::RunState::load(&paths(w), g).unwrap().unwrap().init.pid
}

/// A controller's file of the guest's cgroup `vserver/NAME`, with the
/// cgroup version it is in.
fn cgroup_file(g: &str, controller: &str, v1: &str, v2: &str) -> (PathBuf, String) {
    let layout = Layout::detect(Path::new("/sys/fs/cgroup")).unwrap();
    let at = locate(&GuestCgroup::for_guest(&layout, g), controller).unwrap();
    let file = at.dir.join(if at.version == Version::V1 { v1 } else { v2 });
    let value = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (file, value.trim().to_string())
}

/// The "max" events of `pids.events` in a cgroup and every cgroup below it.
fn subtree_max_events(dir: &Path) -> u64 {
    let own = fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
    let own: u64 = own.lines().find_map(|l| l.strip_prefix("max ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let below: u64 = fs::read_dir(dir).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| subtree_max_events(&e.path())).sum();
    own + below
}

fn executable(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn lo_has(ip: &str) -> Option<u64> {
    let out = Command::new("ip").args(["-j", "-4", "addr", "show", "dev", "lo"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["addr_info"].as_array()?.iter().find(|a| a["local"] == ip).and_then(|a| a["prefixlen"].as_u64())
}

fn wait_for_file(p: &Path) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_util_vserver_configuration_takes_effect() {
    if !ready() {
        return;
    }
    let w = World::new("compat");
    let (g, xid) = w.busybox_guest("uv");
    let ip = format!("127.201.{}.{}", std::process::id() % 250, 10 + unique() % 200);
    let log = w.root.join("scriptlets.log");
    let conf = w.guest_conf(&g);

    // The configuration, file by file.
    for (file, content) in [
        ("name", "Compat Guest\n"),
        ("cgroup/memory.limit_in_bytes", "50331648\n"),
        ("cgroup/pids.max", "300\n"),
        ("schedule", "1\n4\n100\n1\n200\n0\n"),
        ("ulimits/nofile", "77\n"),
        ("nice", "5\n"),
        ("ionice/class", "3\n"),
        ("badness", "321\n"),
        ("personality", "linux\nADDR_NO_RANDOMIZE\n"),
        ("sysctl/0/setting", "kernel.shmmax\n"),
        ("sysctl/0/value", "33554433\n"),
        ("sysctl/1/setting", "kernel.domainname\n"),
        ("sysctl/1/value", "compat.example\n"),
        ("interfaces/dev", "lo\n"),
        ("interfaces/mask", "255.0.0.0\n"),
        ("interfaces/0/ip", &format!("{ip}\n")),
        ("interfaces/0/name", "cf\n"),
        ("fstab.remote", "none /mnt tmpfs size=1m 0 0\n"),
        ("apps/init/environment", "COMPAT_VAR=hello world\n"),
        ("apps/init/killseq", "USR1\n1\nKILL\n"),
        ("apps/init/mtab", "none / none rw 0 0\n"),
        ("apps/vdevmap/z/device", "/dev/myzero\n"),
        ("apps/vdevmap/z/target", "/dev/zero\n"),
        ("apps/vdevmap/z/remap", ""),
        ("apps/vdevmap/z/open", ""),
        ("apps/vshelper/action", "restart\n"),
        ("umask", "~newnet\n"),
        ("ncontext", &format!("{xid}\n")),
        ("tag", &format!("{xid}\n")),
        ("nflags", "lback_remap\n"),
        ("cflags", "namespace\n"),
        ("cpuset/name", "shared\n"),
        ("cpuset/cpus", "0\n"),
        ("uts/sysname", "Linux\n"),
        ("noisy", ""),
        ("frobnicate", "1\n"),
    ] {
        w.write_conf(&g, file, content);
    }
    // Scriptlets: each records its arguments, environment and directory; the
    // pre-start one also whether the network and the cgroup are there yet.
    // `cg`: host scriptlets run in the host's cgroups, never in the guest's
    // (where its limits and IP set would hold), also those the monitor runs.
    let rec = format!(
        r#"echo "$1 $2 name=$VSERVER_NAME dir=$VSERVER_DIR ctx=$S_CONTEXT cwd=$(pwd) cg=$(grep -q /vserver/{g}/ /proc/self/cgroup && echo guest || echo host)" >> {log}"#,
        log = log.display()
    );
    for stage in ["initialize", "prepre-start", "post-start", "pre-stop", "post-stop", "postpost-stop"] {
        executable(&conf.join("scripts").join(stage), &rec);
    }
    let net_up = format!("ip -4 addr show dev lo | grep -q ' {ip}/8 ' && echo net-up >> {}", log.display());
    executable(&conf.join("scripts/pre-start.d/20-second"), &format!("echo second >> {}", log.display()));
    executable(&conf.join("scripts/pre-start.d/10-first"), &format!("{rec}\n{net_up}"));
    // A sourced (non-executable) pre-start scriptlet sees the variables too.
    fs::write(conf.join("scripts/pre-start.d/30-sourced"), format!("echo \"sourced $1 $VSERVER_NAME\" >> {}\n", log.display())).unwrap();
    // .defaults: skipped where the guest has its own, run where it has none.
    executable(&w.confdir.join(".defaults/scripts/post-start"), &format!("echo default-post-start >> {}", log.display()));
    executable(&w.confdir.join(".defaults/scripts/pre-stop"), &format!("echo default-pre-stop >> {}", log.display()));
    fs::remove_file(conf.join("scripts/pre-stop")).unwrap();

    // Builds make /etc/mtab a link to /proc/self/mounts, which an initial mtab
    // leaves alone; older guests have a plain file, which it fills.
    let mtab = w.guest_root(&g).join("etc/mtab");
    let _ = fs::remove_file(&mtab);
    fs::write(&mtab, "").unwrap();
    let out = w.vserver(&[&g, "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: neither vserver-rs nor util-vserver reads a file of this name", conf.join("frobnicate").display())),
        "{err}"
    );
    let pid = init_pid(&w, &g);

    // cgroup/ files in the guest's cgroup (v1 names, translated on a v2 host).
    assert_eq!(cgroup_file(&g, "memory", "memory.limit_in_bytes", "memory.max").1, "50331648");
    assert_eq!(cgroup_file(&g, "pids", "pids.max", "pids.max").1, "300");
    // schedule: 1/4 of a CPU with a 200-token bucket.
    let (f, quota) = cgroup_file(&g, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "200000" || quota == "200000 800000", "{}: {quota}", f.display());
    assert_eq!(cgroup_file(&g, "cpuset", "cpuset.cpus", "cpuset.cpus").1, "0");
    // ulimits/, nice, ionice, badness, personality, environment.
    assert_eq!(w.sh_ok(&g, "ulimit -n").trim(), "77");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = stat.rsplit_once(')').unwrap().1;
    assert_eq!(after_comm.split_whitespace().nth(16), Some("5"), "nice of the guest's init: {stat}");
    let ionice = Command::new("ionice").args(["-p", &pid.to_string()]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ionice.stdout).trim(), "idle", "{}", describe(&ionice));
    assert_eq!(fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap().trim(), "321");
    assert_eq!(fs::read_to_string(format!("/proc/{pid}/personality")).unwrap().trim(), "00040000");
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.split(|b| *b == 0).any(|e| e == b"COMPAT_VAR=hello world"), "{:?}", String::from_utf8_lossy(&environ));
    // sysctl/ inside the guest's ipc and uts namespaces, the host's unchanged.
    assert_eq!(w.sh_ok(&g, "cat /proc/sys/kernel/shmmax").trim(), "33554433");
    assert_ne!(fs::read_to_string("/proc/sys/kernel/shmmax").unwrap().trim(), "33554433");
    assert_eq!(w.sh_ok(&g, "cat /proc/sys/kernel/domainname").trim(), "compat.example");
    // The address with the guest-wide device and mask, labelled.
    assert_eq!(lo_has(&ip), Some(8), "{ip}/8 on lo while the guest runs");
    // fstab.remote, the device map, the initial mtab.
    assert!(w.sh_ok(&g, "cat /proc/mounts").lines().any(|l| l.split_whitespace().nth(1) == Some("/mnt")));
    assert_eq!(w.sh_ok(&g, "head -c 3 /dev/myzero | od -An -tx1").split_whitespace().collect::<Vec<_>>(), ["00", "00", "00"]);
    assert!(!Path::new("/dev/myzero").exists());
    assert_eq!(fs::read_to_string(w.guest_root(&g).join("etc/mtab")).unwrap(), "none / none rw 0 0\n");
    // status names the guest as util-vserver does.
    let status = w.ok(&g, &["status"]);
    assert!(status.starts_with(&format!("Vserver '{g}' is running at context '{xid}'\nNumber of processes:  ")), "{status}");

    // killseq: the first signal reaches a guest process that traps it.
    // `wait` is interrupted at once by the signal, so the trap runs before busybox init's own shutdown.
    w.sh_ok(&g, "(trap 'echo got > /tmp/usr1; exit 0' USR1; sleep 1000 & wait) </dev/null >/dev/null 2>&1 &");
    std::thread::sleep(Duration::from_millis(300));
    w.ok(&g, &["stop"]);
    assert!(wait_for_file(&w.guest_root(&g).join("tmp/usr1")), "apps/init/killseq's USR1 never reached the guest");
    assert_eq!(lo_has(&ip), None, "the address goes with the guest");
    w.assert_nothing_left(&g);

    // The scriptlets ran in util-vserver's order, with its arguments.
    let confdir = conf.display().to_string();
    let vdir = w.guest_root(&g).display().to_string();
    let line = |stage: &str, cwd: &str, ctx: &str| format!("{stage} {g} name={g} dir={confdir} ctx={ctx} cwd={cwd} cg=host");
    let expected = vec![
        line("initialize", &confdir, ""),
        line("prepre-start", &confdir, &xid.to_string()),
        line("pre-start", &vdir, &xid.to_string()),
        "net-up".to_string(),
        "second".to_string(),
        format!("sourced pre-start {g}"),
        line("post-start", &vdir, &xid.to_string()),
        "default-pre-stop".to_string(),
        line("post-stop", &vdir, &xid.to_string()),
        line("postpost-stop", &vdir, &xid.to_string()),
    ];
    let got = fs::read_to_string(&log).unwrap();
    assert_eq!(got.lines().collect::<Vec<_>>(), expected, "{got}");
}

#[test]
fn network_namespace_options_and_its_own_sysctls() {
    if !ready() {
        return;
    }
    let w = World::new("compatns");
    for (file, content) in [("nflags", "HIDE_NETIF\n"), ("spaces/net", "")] {
        let (g, xid) = w.busybox_guest("ns");
        w.write_conf(&g, file, content);
        w.write_conf(&g, "interfaces/0/ip", "10.77.0.2\n");
        w.write_conf(&g, "interfaces/0/mask", "255.255.255.0\n");
        w.write_conf(&g, "sysctl/0/setting", "net.ipv4.tcp_fin_timeout\n");
        w.write_conf(&g, "sysctl/0/value", "37\n");
        let host_fin = fs::read_to_string("/proc/sys/net/ipv4/tcp_fin_timeout").unwrap();
        // pre-start runs once the veth pair is there.
        let seen = w.root.join(format!("veth-{g}"));
        executable(&w.guest_conf(&g).join("scripts/pre-start"), &format!("[ -e /sys/class/net/vs{xid} ] && touch {}", seen.display()));
        w.ok(&g, &["start"]);
        assert!(seen.exists(), "{file}: pre-start did not see the veth pair");
        assert_eq!(w.sh_ok(&g, "ls /sys/class/net | sort | tr '\\n' ' '").trim(), "eth0 lo", "{file}");
        assert!(w.sh_ok(&g, "ip -4 addr show dev eth0").contains("10.77.0.2/24"), "{file}: the mask as a prefix");
        assert!(Path::new(&format!("/sys/class/net/vs{xid}")).exists());
        assert_eq!(w.sh_ok(&g, "cat /proc/sys/net/ipv4/tcp_fin_timeout").trim(), "37");
        assert_eq!(fs::read_to_string("/proc/sys/net/ipv4/tcp_fin_timeout").unwrap(), host_fin, "the host's own setting");
        w.ok(&g, &["stop"]);
        w.assert_nothing_left(&g);
    }
}

#[test]
fn a_guest_without_nproc_gets_the_default_process_limit_and_a_fork_loop_stops_at_a_small_one() {
    if !ready() {
        return;
    }
    let w = World::new("compatpids");
    let (g, _) = w.busybox_guest("pd");
    w.ok(&g, &["start"]);
    assert_eq!(cgroup_file(&g, "pids", "pids.max", "pids.max").1, vserver_core::limits::defaults::PIDS_MAX.to_string());
    w.ok(&g, &["stop"]);
    // rlimits/nproc inf lifts it.
    w.write_conf(&g, "rlimits/nproc", "inf\n");
    w.ok(&g, &["start"]);
    assert_eq!(cgroup_file(&g, "pids", "pids.max", "pids.max").1, "max");
    w.ok(&g, &["stop"]);
    fs::remove_file(w.guest_conf(&g).join("rlimits/nproc")).unwrap();
    // A bounded fork loop against a small limit set for every guest in .defaults.
    fs::create_dir_all(w.confdir.join(".defaults/rlimits")).unwrap();
    fs::write(w.confdir.join(".defaults/rlimits/nproc"), "40\n").unwrap();
    w.ok(&g, &["start"]);
    let out = w.sh(&g, "n=0; while [ $n -lt 80 ]; do sleep 30 & n=$((n+1)); done 2>/dev/null; echo started; ps | wc -l");
    // The kernel counts a refused fork in the forking process's cgroup
    // (payload), or hierarchically on cgroup2 from 6.12 on: either way the
    // subtree of vserver/NAME has it.
    let (file, _) = cgroup_file(&g, "pids", "pids.events", "pids.events");
    let hits = subtree_max_events(file.parent().unwrap());
    assert!(hits > 0, "{}: no refused fork counted; {}", file.display(), describe(&out));
    let current: u64 = cgroup_file(&g, "pids", "pids.current", "pids.current").1.parse().unwrap();
    assert!(current <= 40, "{current} processes despite the limit");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

/// The monitor's scriptlets go back to the cgroup `vserver start` ran in;
/// when that is gone by the time they run (the admin's login session
/// ended), to the hierarchy's root, and they still run.
#[test]
fn monitor_scriptlets_run_when_the_cgroup_start_came_from_is_gone() {
    if !ready() {
        return;
    }
    let Some(v2) = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].iter().map(Path::new).find(|d| d.join("cgroup.controllers").exists())
    else {
        panic!("no cgroup2 mount on this host");
    };
    let w = World::new("gone");
    let (g, _) = w.busybox_guest("go");
    let log = w.root.join("scriptlets.log");
    for stage in ["pre-start", "post-stop"] {
        let rec = format!(r#"echo "$1 $(grep '^0::' /proc/self/cgroup)" >> {}"#, log.display());
        executable(&w.guest_conf(&g).join("scripts").join(stage), &rec);
    }
    // `vserver start` from a cgroup of its own, removed once the guest runs.
    let session = v2.join(format!("vstest-session-{}", unique()));
    fs::create_dir(&session).unwrap();
    let start = Command::new("sh")
        .arg("-c")
        .arg(format!("echo $$ > {}/cgroup.procs && exec \"$0\" {g} start", session.display()))
        .arg(vserver_rs_tests::bin("vserver"))
        .env("VSERVER_CONFDIR", &w.confdir)
        .env("VSERVER_VDIRBASE", &w.vdirbase)
        .env("VSERVER_RUNDIR", &w.rundir)
        .output();
    let _ = fs::remove_dir(&session);
    let start = start.unwrap();
    assert!(start.status.success(), "{}", describe(&start));
    assert!(!session.exists(), "the session cgroup must be gone before the stop");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
    let rel = |d: &Path| format!("/{}", d.strip_prefix(v2).unwrap().display());
    let got = fs::read_to_string(&log).unwrap();
    assert_eq!(got.lines().collect::<Vec<_>>(), [format!("pre-start 0::{}", rel(&session)), "post-stop 0::/".to_string()], "{got}");
}
