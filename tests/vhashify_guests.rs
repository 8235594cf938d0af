//! vhashify and the life of guests: every window freezes every running
//! guest; a deleted guest's store entries that nobody else uses go with it;
//! a clone of a unified guest links its copies to the store again.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vserver_rs_tests::cow::{cgroup2_root, CowGuest};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::unify::{is_immutable, store_entries, write};
use vserver_rs_tests::{describe, require, require_busybox, require_root, run};

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino()
}

fn paths(w: &World) -> vserver_core::paths::Paths {
    vserver_core::paths::Paths {
        confdir: w.confdir.clone(),
        vdirbase: w.vdirbase.clone(),
        rundir: w.rundir.clone(),
        cgroup_root: "/sys/fs/cgroup".into(),
    }
}

/// Two unified busybox guests with a few shared files.
fn two(tag: &str) -> Option<(World, String, String)> {
    if !require_root() || !require_busybox() {
        return None;
    }
    let w = World::new(tag);
    let (a, _) = w.busybox_guest("vga");
    let (b, _) = w.busybox_guest("vgb");
    for g in [&a, &b] {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
        for i in 0..10 {
            write(&w.guest_root(g).join(format!("usr/lib/f{i}")), format!("file {i}\n").as_bytes());
        }
    }
    let out = run(w.cmd("vhashify").args(["--all"]));
    assert!(out.status.success(), "{}", describe(&out));
    Some((w, a, b))
}

#[test]
fn every_window_freezes_every_running_guest() {
    if !require(cgroup2_root().is_some(), "a cgroup2 mount with the freezer") {
        return;
    }
    let Some((w, a, b)) = two("vgwindow") else { return };
    let (ga, gb) = (CowGuest::new(&w, &a), CowGuest::new(&w, &b));
    let running = [ga.spawn(&["/bin/sleep", "30"]), gb.spawn(&["/bin/sleep", "30"])];
    // Something to link in a window: a file both guests got since.
    for g in [&a, &b] {
        write(&w.guest_root(g).join("usr/lib/new"), b"new in both\n");
    }
    // At each window, the hook records what the guests' cgroups say.
    let log = w.root.join("hook.log");
    let hook = w.root.join("hook.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\n[ \"$1\" = window-frozen ] || exit 0\nfor c in '{}' '{}'; do grep frozen \"$c/cgroup.events\" >> '{}'; done\n",
            ga.cgroup.dir.display(),
            gb.cgroup.dir.display(),
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(w.cmd("vhashify").args(["--all", "--json"]).env("VHASHIFY_TEST_HOOK", &hook));
    assert!(out.status.success(), "{}", describe(&out));
    let seen = fs::read_to_string(&log).expect("the hook never ran: no window was opened");
    assert!(!seen.is_empty() && seen.lines().all(|l| l == "frozen 1"), "a guest ran during a window: {seen}");
    assert!(!ga.cgroup.is_frozen() && !gb.cgroup.is_frozen(), "guests left frozen");
    assert_eq!(ino(&w.guest_root(&a).join("usr/lib/new")), ino(&w.guest_root(&b).join("usr/lib/new")));
    drop(running);
}

#[test]
fn releasing_a_deleted_guest_removes_the_entries_only_it_used() {
    let Some((w, a, b)) = two("vgrelease") else { return };
    let store = w.vdirbase.join(".hash");
    // b gives up f0..f3: their entries are now a's alone.
    let out = run(w.cmd("vhashify").args(["--revert", &b, "/usr/lib/f0", "/usr/lib/f1", "/usr/lib/f2", "/usr/lib/f3"]));
    assert!(out.status.success(), "{}", describe(&out));
    let before = store_entries(&store).len();
    let r = vserver_core::unify::release_guest(&paths(&w), &a).expect("release");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.entries_removed, 4, "{r}");
    assert!(r.unlinked >= 10, "{r}");
    assert!(r.bytes_freed > 0 && r.entries_left == 0, "{r}");
    assert_eq!(store_entries(&store).len(), before - 4);
    // Nothing of a is immutable any more: delete works as for any guest.
    let out = w.vserver(&[&a, "delete"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!w.guest_root(&a).exists());
    for i in 4..10 {
        let f = w.guest_root(&b).join(format!("usr/lib/f{i}"));
        assert!(is_immutable(&f) && fs::metadata(&f).unwrap().nlink() == 2, "b's f{i} lost its entry");
    }
    for e in store_entries(&store) {
        assert!(is_immutable(&e), "{} not immutable", e.display());
    }
}

#[test]
fn a_clone_of_a_unified_guest_is_linked_to_the_store_again() {
    let Some((w, a, _b)) = two("vgclone") else { return };
    let (c, xid) = w.new_guest_name("vgc");
    let src = w.guest_root(&a).display().to_string();
    w.ok(&c, &["build", "-m", "clone", "--context", &xid.to_string(), "--", &src]);
    fs::create_dir_all(w.guest_conf(&c).join("apps/vunify")).unwrap();
    write(&w.guest_root(&c).join("usr/lib/only-in-clone"), b"private\n");
    let sum = vserver_core::unify::link_clone(&paths(&w), &c).expect("link_clone");
    assert_eq!(sum.errors, 0, "{:?}", sum.error_messages);
    assert_eq!(sum.new_entries, 0, "no new entries from a clone");
    for i in 0..10 {
        let rel = format!("usr/lib/f{i}");
        assert_eq!(ino(&w.guest_root(&c).join(&rel)), ino(&w.guest_root(&a).join(&rel)), "{rel} not linked");
    }
    assert_eq!(ino(&w.guest_root(&c).join("bin/busybox")), ino(&w.guest_root(&a).join("bin/busybox")));
    assert!(!is_immutable(&w.guest_root(&c).join("usr/lib/only-in-clone")));
}
