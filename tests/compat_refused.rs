//! util-vserver files a stock kernel cannot honour, or that would weaken a
//! guest's confinement: `start` refuses each with a message naming the file
//! and why, and leaves nothing behind. So does a failing pre-start
//! scriptlet, and `disabled`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require_busybox, require_root, unique};

fn ready() -> bool {
    require_root() && require_busybox()
}

/// Writes the files, starts, expects a refusal naming `names` and saying
/// `why`, checks nothing is left, removes the files again.
fn refused(w: &World, g: &str, files: &[(&str, &str)], names: &str, why: &str) {
    for (f, content) in files {
        w.write_conf(g, f, content);
    }
    let out = w.vserver(&[g, "start"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{files:?} must be refused: {}", describe(&out));
    let named = w.guest_conf(g).join(names);
    assert!(err.contains(&*named.to_string_lossy()), "{files:?}: the message must name {}: {err}", named.display());
    assert!(err.contains(why), "{files:?}: expected {why:?} in: {err}");
    w.assert_nothing_left(g);
    assert_eq!(w.vserver(&[g, "status"]).status.code(), Some(3));
    for (f, _) in files {
        let p = w.guest_conf(g).join(f);
        let _ = fs::remove_file(&p);
        // Directories the case made (interfaces/0, sysctl/0, ...) go too.
        let mut dir = p.parent().map(Path::to_path_buf);
        while let Some(d) = dir.filter(|d| *d != w.guest_conf(g)) {
            if fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }
}

#[test]
fn each_refused_file_is_named_and_nothing_is_left() {
    if !ready() {
        return;
    }
    let w = World::new("refused");
    let (g, xid) = w.busybox_guest("rf");
    let other = (xid + 1).to_string();
    // (files to write, the path the message must name, what it must say)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("nonamespace", "")], "nonamespace", "always has its own mount namespace"),
        (vec![("nonamespace-cleanup", "")], "nonamespace-cleanup", "always detached"),
        (vec![("capabilities", "CAP_NET_ADMIN\n")], "capabilities", "Linux 2.4"),
        (vec![("keepfds", "")], "keepfds", "no host descriptor"),
        (vec![("legacy", "")], "legacy", "legacy"),
        (vec![("spaces/mask", "0x1\n")], "spaces/mask", "raw namespace masks"),
        (vec![("spaces/net", &other)], "spaces/net", "share another guest's network namespace"),
        (vec![("sched/idle-time", "")], "sched/idle-time", "idle-time"),
        (vec![("sched/0/fill-rate", "1\n")], "sched/0", "per-CPU"),
        (vec![("cpuset/nocreate", "")], "cpuset/nocreate", "own cgroup"),
        (vec![("cpuset/cpu_exclusive", "1\n")], "cpuset/cpu_exclusive", "exclusive cpuset"),
        (vec![("interfaces/0/ip", "127.0.0.98\n"), ("interfaces/0/tun", "")], "interfaces/0/tun", "tun/tap"),
        (vec![("interfaces/0/ip", "127.0.0.98\n"), ("interfaces/0/indirect", "")], "interfaces/0/indirect", "dummy-interface"),
        (
            vec![("interfaces/0/ip", "10.0.0.5\n"), ("interfaces/0/dev", "eth0.5\n"), ("interfaces/vlandev", "")],
            "interfaces/0",
            "VLAN device",
        ),
        (vec![("sysctl/0/setting", "vm.swappiness\n"), ("sysctl/0/value", "10\n")], "sysctl/0/setting", "host-wide"),
        (vec![("sysctl/0/setting", "net.ipv4.ip_forward\n"), ("sysctl/0/value", "1\n")], "sysctl/0/setting", "the host's network"),
        (vec![("ulimits/rss", "100\n")], "ulimits/rss", "RLIMIT_RSS"),
        (vec![("devices", "c:1:1:r\n")], "devices", "physical memory"),
        (vec![("devices", "b:8:*\n")], "devices", "the host's disks"),
        (vec![("devices", "c:13:*\n")], "devices", "input devices"),
        (vec![("cgroup/devices.allow", "a *:* rwm\n")], "cgroup/devices.allow", "the host's devices"),
        (vec![("cgroup/name", "shared\n")], "cgroup/name", "shared with other guests"),
        (vec![("ncontext", &other)], "ncontext", "network context shared"),
        (vec![("tag", &other)], "tag", "tagged with the context id"),
        (vec![("noncontext", "")], "noncontext", "interfaces/unrestricted"),
        (vec![("uts/release", "2.6.32-vs2.3\n")], "uts/release", "cannot be set on a stock kernel"),
        (vec![("apps/vshelper/action", "halt\n")], "apps/vshelper/action", "is not restart"),
        (vec![("apps/vshelper/restart", "#!/bin/sh\n")], "apps/vshelper/restart", "per-event"),
        (vec![("umask", "newnet\n")], "umask", "CAP_SYS_ADMIN"),
        (vec![("nflags", "hide_lback\n")], "nflags", "HIDE_LBACK"),
        (vec![("ncapabilities", "TUN_CREATE\n")], "ncapabilities", "CAP_NET_ADMIN"),
        (vec![("netns/name", "web\n")], "netns/name", "named or shared network namespaces"),
        (vec![("interfaces/0/ip", "127.0.0.98\n"), ("interfaces/0/peer", "nonsense\n")], "interfaces/0/peer", "is not a peer address"),
        (vec![("apps/init/killseq", "15 5\n")], "apps/init/killseq", "kill sequence"),
        (vec![("sched/fill-rate", "1\n"), ("sched/interval", "4\n"), ("sched/tokens-min", "50\n")], "sched/tokens-min", "does not map"),
        (vec![("schedule", "1\n4\n")], "schedule", "six lines"),
        (vec![("cgroup/memory.limit_in_bytes", "64M\n"), ("rlimits/rss", "1000\n")], "cgroup/memory.limit_in_bytes", "keep one of them"),
        (vec![("personality", "linux\nNO_SUCH_FLAG\n")], "personality", "not a personality flag"),
        (vec![("disabled", "")], "disabled", "is disabled"),
    ];
    for (files, names, why) in &cases {
        refused(&w, &g, files, names, why);
    }
    // A block device that holds a filesystem the host has mounted (the one
    // these tests run from), named explicitly, is refused too.
    let dev = fs::metadata(std::env::current_exe().unwrap()).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if Path::new(&format!("/sys/dev/block/{major}:{minor}")).exists() {
        let line = format!("b:{major}:{minor}:r\n");
        refused(&w, &g, &[("devices", &line)], "devices", "mounted at");
    }
    // And the guest still starts once they are gone.
    w.ok(&g, &["start"]);
    w.ok(&g, &["stop"]);
}

#[test]
fn a_failing_pre_start_scriptlet_aborts_the_start_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let w = World::new("prestart");
    let (g, _) = w.busybox_guest("ps");
    let ip = format!("127.202.{}.{}", std::process::id() % 250, 10 + unique() % 200);
    w.write_conf(&g, "interfaces/0/ip", &format!("{ip}\n"));
    w.write_conf(&g, "interfaces/0/prefix", "8\n");
    w.write_conf(&g, "interfaces/0/dev", "lo\n");
    let marker = w.root.join("pre-start-saw-the-address");
    let script = w.guest_conf(&g).join("scripts/pre-start");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::write(
        &script,
        format!("#!/bin/sh\nip -4 addr show dev lo | grep -q ' {ip}/' && touch {}\necho refusing >&2\nexit 7\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let post_stop = w.root.join("post-stop-ran");
    let ps = w.guest_conf(&g).join("scripts/post-stop");
    fs::write(&ps, format!("#!/bin/sh\ntouch {}\n", post_stop.display())).unwrap();
    fs::set_permissions(&ps, fs::Permissions::from_mode(0o755)).unwrap();

    let out = w.vserver(&[&g, "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*script.to_string_lossy()) && err.contains("exit status: 7"), "{err}");
    assert!(marker.exists(), "pre-start runs once the guest's address is up");
    w.assert_nothing_left(&g);
    let lo = String::from_utf8_lossy(&Command::new("ip").args(["-4", "addr", "show", "dev", "lo"]).output().unwrap().stdout).into_owned();
    assert!(!lo.contains(&format!(" {ip}/")), "the address must be gone again: {lo}");
    assert!(!post_stop.exists(), "a start that never happened has no stop");

    // A failing prepre-start stops even earlier.
    fs::remove_file(&script).unwrap();
    let pp = w.guest_conf(&g).join("scripts/prepre-start");
    fs::write(&pp, "#!/bin/sh\nexit 3\n").unwrap();
    fs::set_permissions(&pp, fs::Permissions::from_mode(0o755)).unwrap();
    let out = w.vserver(&[&g, "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prepre-start"), "{}", describe(&out));
    w.assert_nothing_left(&g);
}

#[test]
fn a_disabled_guest_is_refused_by_start_and_skipped_by_all_marked() {
    if !ready() {
        return;
    }
    let w = World::new("disabled");
    let (a, _) = w.busybox_guest("da");
    let (b, _) = w.busybox_guest("db");
    for g in [&a, &b] {
        w.write_conf(g, "apps/init/mark", "compat\n");
    }
    w.write_conf(&b, "disabled", "");
    let out = w.vserver(&["--all-marked", "compat", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.vserver(&[&a, "status"]).status.code(), Some(0));
    assert_eq!(w.vserver(&[&b, "status"]).status.code(), Some(3), "a disabled guest is skipped");
    let out = w.vserver(&[&b, "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is disabled"), "{}", describe(&out));
    w.assert_nothing_left(&b);
    let out = w.vserver(&["--all-marked", "compat", "stop"]);
    assert!(out.status.success(), "{}", describe(&out));
    w.assert_nothing_left(&a);
}
