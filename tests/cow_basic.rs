//! Copy-on-write on two unified busybox guests: inside one, unified files
//! are appended to, truncated, renamed over, removed, linked, chmod'ed,
//! chown'ed, touched and given xattrs. Each call succeeds there, on a
//! private copy; the other guest's files and the store entries stay byte for
//! byte what they were, immutable; a later vhashify shares what is equal
//! again. A guest user without the rights gets no private copy.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vserver_rs_tests::cow::{cgroup2_root, install_attack_tool, xattrs, CowGuest};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::unify::{digest, is_immutable, store_entries, write};
use vserver_rs_tests::{describe, require, require_busybox, require_root, run};

/// Files both guests have, identical: name, content, mode.
const FILES: &[(&str, &str, u32)] = &[
    ("usr/lib/append.so", "appended to\n", 0o644),
    ("usr/lib/trunc.so", "truncated\n", 0o644),
    ("usr/lib/replaced", "renamed over\n", 0o755),
    ("usr/lib/removed", "unlinked\n", 0o644),
    ("usr/lib/moved", "renamed away\n", 0o644),
    ("usr/lib/linked", "linked\n", 0o644),
    ("usr/share/mode", "chmod'ed\n", 0o644),
    ("usr/share/owner", "chown'ed\n", 0o644),
    ("usr/share/times", "touched\n", 0o644),
    ("usr/share/xattr", "xattr set\n", 0o644),
    ("usr/share/same", "rewritten with the same content\n", 0o644),
    ("usr/share/kept", "nobody touches this\n", 0o644),
];

struct Two {
    w: World,
    a: String,
    b: String,
}

fn setup(tag: &str) -> Option<Two> {
    if !require_root() || !require_busybox() || !require(cgroup2_root().is_some(), "a cgroup2 mount with the freezer") {
        return None;
    }
    if let Err(e) = vserver_core::unify::cow::kernel_supported() {
        require(false, &e.to_string());
        return None;
    }
    let w = World::new(tag);
    let (a, _) = w.busybox_guest("cowa");
    let (b, _) = w.busybox_guest("cowb");
    for g in [&a, &b] {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
        for (rel, content, mode) in FILES {
            let p = w.guest_root(g).join(rel);
            write(&p, content.as_bytes());
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
        }
    }
    let t = Two { w, a, b };
    t.vhashify(&["--all"]);
    for (rel, ..) in FILES {
        assert_eq!(ino(&t.at(&t.a, rel)), ino(&t.at(&t.b, rel)), "{rel} not unified");
        assert!(is_immutable(&t.at(&t.a, rel)));
    }
    Some(t)
}

impl Two {
    fn at(&self, g: &str, rel: &str) -> PathBuf {
        self.w.guest_root(g).join(rel)
    }

    fn vhashify(&self, args: &[&str]) -> serde_json::Value {
        let out = run(self.w.cmd("vhashify").arg("--json").args(args));
        assert!(out.status.success(), "vhashify {args:?}: {}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn store(&self) -> PathBuf {
        self.w.vdirbase.join(".hash")
    }
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino()
}

/// What a file is: content, mode, owner, times, xattrs, inode.
fn state(p: &Path) -> String {
    let m = fs::symlink_metadata(p).unwrap();
    format!("{:x} {:o} {}:{} {} {} {:?}", digest(p), m.mode(), m.uid(), m.gid(), m.mtime(), m.ino(), xattrs(p))
}

#[test]
fn changes_in_one_guest_land_on_private_copies_and_leave_the_other_and_the_store_alone() {
    let Some(t) = setup("cowbasic") else { return };
    let b_before: Vec<String> = FILES.iter().map(|(rel, ..)| state(&t.at(&t.b, rel))).collect();
    let entries_before: Vec<(PathBuf, u64)> = store_entries(&t.store()).into_iter().map(|e| (e.clone(), digest(&e))).collect();
    let a = CowGuest::new(&t.w, &t.a);
    install_attack_tool(&t.w.guest_root(&t.a));
    let (_, stats) = a.sh_ok(
        "set -e
         echo more >> /usr/lib/append.so
         : > /usr/lib/trunc.so
         echo new > /tmp/new && mv /tmp/new /usr/lib/replaced
         rm /usr/lib/removed
         mv /usr/lib/moved /usr/lib/moved.away
         ln /usr/lib/linked /usr/lib/linked.too
         chmod 600 /usr/share/mode
         chown 1:1 /usr/share/owner
         touch -d 2001-02-03 /usr/share/times
         /root/cowattack setxattr /usr/share/xattr user.cow yes
         cp /usr/share/same /tmp/same && cat /tmp/same > /usr/share/same
         cat /usr/lib/append.so /usr/lib/replaced",
    );
    assert!(stats.broken >= 10, "links broken: {stats:?}");
    let ra = |rel: &str| t.at(&t.a, rel);
    assert_eq!(fs::read_to_string(ra("usr/lib/append.so")).unwrap(), "appended to\nmore\n");
    assert_eq!(fs::read(ra("usr/lib/trunc.so")).unwrap(), b"");
    assert_eq!(fs::read_to_string(ra("usr/lib/replaced")).unwrap(), "new\n");
    assert!(!ra("usr/lib/removed").exists());
    assert!(!ra("usr/lib/moved").exists() && ra("usr/lib/moved.away").exists());
    assert_eq!(ino(&ra("usr/lib/linked")), ino(&ra("usr/lib/linked.too")));
    assert_eq!(fs::metadata(ra("usr/share/mode")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(ra("usr/share/owner")).unwrap().uid(), 1);
    // busybox touch -d keeps the time of day: any time on 2001-02-03.
    assert!((981158400..981158400 + 86400).contains(&fs::metadata(ra("usr/share/times")).unwrap().mtime()));
    assert!(xattrs(&ra("usr/share/xattr")).iter().any(|(n, v)| n == "user.cow" && v == b"yes"));
    assert!(!xattrs(&ra("usr/share/xattr")).iter().any(|(n, _)| n.starts_with("trusted.")), "the store's mark was copied");
    for rel in [
        "usr/lib/append.so",
        "usr/lib/trunc.so",
        "usr/share/mode",
        "usr/share/owner",
        "usr/share/times",
        "usr/share/xattr",
        "usr/lib/linked",
    ] {
        assert!(!is_immutable(&ra(rel)), "{rel} in guest a is still immutable");
        assert_ne!(ino(&ra(rel)), ino(&t.at(&t.b, rel)), "{rel} still shared");
    }
    // What a private copy keeps: owner, mode, times of the original.
    let kept = fs::metadata(ra("usr/lib/linked")).unwrap();
    let theirs = fs::metadata(t.at(&t.b, "usr/lib/linked")).unwrap();
    assert_eq!((kept.mode(), kept.uid(), kept.gid(), kept.mtime()), (theirs.mode(), theirs.uid(), theirs.gid(), theirs.mtime()));
    // The untouched file is still shared; no temporary names are left.
    assert_eq!(ino(&ra("usr/share/kept")), ino(&t.at(&t.b, "usr/share/kept")));
    let leftovers =
        run(std::process::Command::new("sh").arg("-c").arg(format!("find '{}' -name '.vhashify-cow-*'", t.w.guest_root(&t.a).display())));
    assert!(leftovers.stdout.is_empty(), "temporary names left: {}", describe(&leftovers));

    // The other guest and the store: byte for byte as before, immutable.
    let b_after: Vec<String> = FILES.iter().map(|(rel, ..)| state(&t.at(&t.b, rel))).collect();
    assert_eq!(b_after, b_before, "guest b changed");
    for (rel, ..) in FILES {
        assert!(is_immutable(&t.at(&t.b, rel)), "{rel} of guest b lost its flag");
    }
    for (e, d) in &entries_before {
        assert_eq!(digest(e), *d, "store entry {} changed", e.display());
        assert!(is_immutable(e), "store entry {} lost its flag", e.display());
    }

    // vhashify shares what is equal again.
    let sum = t.vhashify(&["--all"]);
    assert_eq!(sum["errors"], 0, "{sum}");
    assert_eq!(ino(&ra("usr/share/same")), ino(&t.at(&t.b, "usr/share/same")), "equal content not shared again");
    assert!(is_immutable(&ra("usr/share/same")));
    assert_ne!(ino(&ra("usr/lib/append.so")), ino(&t.at(&t.b, "usr/lib/append.so")), "different content shared");
}

#[test]
fn a_guest_can_neither_see_nor_forge_nor_remove_the_store_mark() {
    let Some(t) = setup("cowmark") else { return };
    let a = CowGuest::new(&t.w, &t.a);
    install_attack_tool(&t.w.guest_root(&t.a));
    assert!(xattrs(&t.at(&t.a, "usr/share/kept")).iter().any(|(n, _)| n == "trusted.vhashify"), "no mark on the host side");
    let (out, _) = a.sh("/root/cowattack getxattr /usr/share/kept trusted.vhashify; \
         /root/cowattack setxattr /root/cowattack trusted.vhashify 00 && echo FORGED; \
         /root/cowattack setxattr /usr/share/kept trusted.vhashify 00 && echo CHANGED; \
         echo done");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error No data available") || text.contains("error Operation not permitted"), "the mark is visible: {text}");
    assert!(!text.contains("value") && !text.contains("FORGED") && !text.contains("CHANGED"), "{text}");
    assert!(!xattrs(&t.at(&t.a, "root/cowattack")).iter().any(|(n, _)| n.starts_with("trusted.")));
    assert_eq!(ino(&t.at(&t.a, "usr/share/kept")), ino(&t.at(&t.b, "usr/share/kept")));
}

#[test]
fn a_guest_user_cannot_make_the_guest_lose_its_sharing() {
    let Some(t) = setup("cowuser") else { return };
    let a = CowGuest::new(&t.w, &t.a);
    // nobody (65534) may not write root's files: the call fails, no copy is made.
    let (out, stats) = a.sh(
        "su -s /bin/sh nobody -c 'echo x >> /usr/lib/append.so; chmod 777 /usr/share/mode; rm -f /usr/lib/removed; touch /usr/share/times'; \
         echo done",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stats.notifications >= 4, "the user's calls never reached the supervisor: {stats:?}");
    assert_eq!(stats.broken, 0, "a user's failed calls broke links: {stats:?}");
    for rel in ["usr/lib/append.so", "usr/share/mode", "usr/lib/removed", "usr/share/times"] {
        assert_eq!(ino(&t.at(&t.a, rel)), ino(&t.at(&t.b, rel)), "{rel} lost its sharing");
        assert!(is_immutable(&t.at(&t.a, rel)));
    }
}
