//! A util-vserver configuration on a real Debian guest (sysvinit's rc
//! scripts under the built-in init, sshd, cron, rsyslog, nginx): the limits
//! and settings reach the services the rc scripts start, the scriptlets run
//! around them (a post-start one asks the guest with `vserver NAME exec`, as
//! admins' scriptlets do), and the kill sequence ends the guest.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use vserver_rs_tests::debian::DebianInit;
use vserver_rs_tests::guest::World;
use vserver_rs_tests::{bin, describe, unique};

/// The guest's processes, as the host sees them (payload and below).
fn guest_pids(g: &str) -> Vec<i32> {
    let layout = vserver_core::cgroup::Layout::detect(Path::new("/sys/fs/cgroup")).unwrap();
    vserver_core::cgroup::GuestCgroup::for_guest(&layout, g).pids().unwrap_or_default()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

#[test]
fn a_util_vserver_configuration_on_a_debian_sysv_guest() {
    let w = World::new("compatdeb");
    let ip = format!("127.203.{}.{}", std::process::id() % 250, 10 + unique() % 200);
    let Some((g, _)) = w.debian_guest("deb", DebianInit::Sysv, &[]) else { return };
    let log = w.root.join("post-start.log");
    for (file, content) in [
        ("interfaces/dev", "lo\n"),
        ("interfaces/mask", "255.255.255.255\n"),
        ("interfaces/0/ip", &format!("{ip}\n")),
        ("apps/init/runlevel.start", "2\n"),
        ("apps/init/killseq", "15\n3\n9\n"),
        ("nice", "3\n"),
        ("ulimits/nofile", "4000\n"),
        ("cgroup/memory.limit_in_bytes", "268435456\n"),
        ("sysctl/0/setting", "kernel.msgmax\n"),
        ("sysctl/0/value", "16000\n"),
    ] {
        w.write_conf(&g, file, content);
    }
    let script = w.guest_conf(&g).join("scripts/post-start");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::write(
        &script,
        format!("#!/bin/sh\n\"{}\" \"$2\" exec pgrep -x sshd >/dev/null && echo sshd-up >> {}\n", bin("vserver").display(), log.display()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

    let out = w.vserver(&[&g, "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(fs::read_to_string(&log).unwrap_or_default(), "sshd-up\n", "the post-start scriptlet saw the rc scripts' sshd");

    // The services the rc scripts started carry the guest's settings.
    let pids = guest_pids(&g);
    let sshd = *pids.iter().find(|p| comm(**p) == "sshd").unwrap_or_else(|| panic!("no sshd among {pids:?}"));
    let stat = fs::read_to_string(format!("/proc/{sshd}/stat")).unwrap();
    assert_eq!(stat.rsplit_once(')').unwrap().1.split_whitespace().nth(16), Some("3"), "nice of sshd");
    let limits = fs::read_to_string(format!("/proc/{sshd}/limits")).unwrap();
    let nofile = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert!(nofile.split_whitespace().any(|f| f == "4000"), "{nofile}");
    assert_eq!(w.sh_ok(&g, "cat /proc/sys/kernel/msgmax").trim(), "16000");
    let mem = ["/sys/fs/cgroup/memory/vserver", "/sys/fs/cgroup/vserver"]
        .iter()
        .map(|r| Path::new(r).join(&g))
        .find_map(|d| fs::read_to_string(d.join("memory.limit_in_bytes")).or_else(|_| fs::read_to_string(d.join("memory.max"))).ok())
        .unwrap();
    assert_eq!(mem.trim(), "268435456");
    let status = w.ok(&g, &["status"]);
    assert!(status.starts_with(&format!("Vserver '{g}' is running at context '")), "{status}");

    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
    assert!(guest_pids(&g).is_empty());
}
