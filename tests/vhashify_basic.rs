//! vhashify on three guests holding every kind of file it must or must not
//! unify: exactly the right files end up as one immutable inode, no path's
//! content changes, excluded paths stay untouched and a second run links
//! nothing.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use vserver_rs_tests::unify::*;

/// A file capability blob (VFS_CAP_REVISION_2, cap_net_raw permitted).
const CAP_BLOB: [u8; 20] = [0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn populate(root: &Path, idx: usize) {
    let busybox = fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    write(&root.join("usr/bin/busybox"), &busybox);
    chmod(&root.join("usr/bin/busybox"), 0o755);
    write(&root.join("usr/lib/libsame.so"), b"identical library\n");
    write(&root.join("usr/share/own"), format!("guest {idx} only\n").as_bytes());
    write(&root.join("usr/share/mode"), b"mode differs in guest 2\n");
    if idx == 2 {
        chmod(&root.join("usr/share/mode"), 0o600);
    }
    write(&root.join("usr/share/owner"), b"owner differs in guest 2\n");
    if idx == 2 {
        chown(&root.join("usr/share/owner"), 1000, 1000);
    }
    write(&root.join("usr/share/xattr"), b"xattr differs in guest 2\n");
    if idx == 2 {
        set_xattr(&root.join("usr/share/xattr"), "user.label", b"other");
    }
    write(&root.join("usr/bin/capped"), b"capability differs in guest 1\n");
    if idx == 1 {
        set_xattr(&root.join("usr/bin/capped"), "security.capability", &CAP_BLOB);
    }
    write(&root.join("usr/bin/suid"), b"setuid everywhere\n");
    chmod(&root.join("usr/bin/suid"), 0o4755);
    std::os::unix::fs::symlink("libsame.so", root.join("usr/lib/link.so")).unwrap();
    write(&root.join("usr/lib/hard1"), b"hard linked inside guest\n");
    fs::hard_link(root.join("usr/lib/hard1"), root.join("usr/lib/hard2")).unwrap();
    write(&root.join("usr/share/empty"), b"");
    let sparse = fs::File::create(root.join("usr/share/sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"start", 0).unwrap();
    sparse.write_all_at(b"end", (64 << 20) - 3).unwrap();
    write(&root.join("etc/config"), b"identical but excluded by default\n");
    write(&root.join("opt/private/key"), b"identical but excluded by the guest\n");
    write(&root.join("var/lib/shared"), b"identical, re-included with +\n");
}

struct Three {
    f: Fixture,
    roots: Vec<PathBuf>,
}

fn setup(tag: &str) -> Option<Three> {
    let f = Fixture::new(tag)?;
    let roots: Vec<PathBuf> = (0..3).map(|i| f.guest(&format!("g{i}"), 100 + i as u32)).collect();
    for (i, r) in roots.iter().enumerate() {
        populate(r, i);
    }
    fs::write(f.confdir.join("g0/apps/vunify/exclude"), "/opt/private\n+/var/lib/shared\n").unwrap();
    fs::create_dir_all(f.confdir.join(".defaults/apps/vunify")).unwrap();
    fs::write(f.confdir.join(".defaults/apps/vunify/exclude"), "/opt/private\n+/var/lib/shared\n").unwrap();
    Some(Three { f, roots })
}

impl Three {
    fn at(&self, i: usize, rel: &str) -> PathBuf {
        self.roots[i].join(rel)
    }
    fn inos(&self, rel: &str) -> Vec<u64> {
        (0..3).map(|i| ino(&self.at(i, rel))).collect()
    }
    fn snapshots(&self) -> Vec<std::collections::BTreeMap<PathBuf, String>> {
        self.roots.iter().map(|r| snapshot(r)).collect()
    }
}

#[test]
fn exactly_the_right_files_share_one_immutable_inode() {
    let Some(t) = setup("basic") else { return };
    let before = t.snapshots();
    let pre_hard = ino(&t.at(0, "usr/lib/hard1"));
    let sum = t.f.vhashify_ok(&["--all"]);
    assert_eq!(sum["errors"], 0, "{sum}");
    assert_eq!(t.snapshots(), before, "content, mode or owner of some path changed");

    for rel in ["usr/bin/busybox", "usr/lib/libsame.so", "usr/lib/hard1", "usr/share/sparse", "var/lib/shared"] {
        let inos = t.inos(rel);
        assert!(inos.iter().all(|&i| i == inos[0]), "{rel} not shared: {inos:?}");
        assert!(is_immutable(&t.at(0, rel)), "{rel} shared but not immutable");
    }
    assert_eq!(ino(&t.at(0, "usr/lib/hard2")), ino(&t.at(0, "usr/lib/hard1")));
    assert_eq!(ino(&t.at(0, "usr/lib/hard1")), pre_hard, "guest 0's own inode should have become the entry");
    for (rel, odd) in [("usr/share/mode", 2), ("usr/share/owner", 2), ("usr/share/xattr", 2), ("usr/bin/capped", 1)] {
        let inos = t.inos(rel);
        let others: Vec<u64> = (0..3).filter(|&i| i != odd).map(|i| inos[i]).collect();
        assert_eq!(others[0], others[1], "{rel}: the two equal copies should share");
        assert_ne!(inos[odd], others[0], "{rel}: the differing copy must not share");
    }
    let own = t.inos("usr/share/own");
    assert!(own[0] != own[1] && own[1] != own[2] && own[0] != own[2]);
    for rel in ["usr/bin/suid", "usr/share/empty", "etc/config", "opt/private/key"] {
        let inos = t.inos(rel);
        assert!(inos[0] != inos[1] && inos[1] != inos[2], "{rel} must not be unified: {inos:?}");
        assert!(!is_immutable(&t.at(0, rel)), "{rel} must not be immutable");
        assert_eq!(fs::metadata(t.at(0, rel)).unwrap().nlink(), 1, "{rel} must not be linked");
    }
    assert!(fs::symlink_metadata(t.at(0, "usr/lib/link.so")).unwrap().file_type().is_symlink());
    assert!(fs::symlink_metadata(t.at(0, "usr/share/sparse")).unwrap().blocks() < 1024, "sparse file lost its holes");
    for e in store_entries(&t.f.store()) {
        assert!(is_immutable(&e), "store entry {} not immutable", e.display());
    }

    let again = t.f.vhashify_ok(&["--all"]);
    assert_eq!(again["linked"], 0, "second run linked something: {again}");
    assert_eq!(again["new_entries"], 0, "{again}");
    assert!(again["already_shared"].as_u64().unwrap() >= 15, "{again}");
    assert_eq!(t.snapshots(), before);
}

#[test]
fn a_shared_file_cannot_be_written_without_cap_linux_immutable() {
    let Some(t) = setup("immutable") else { return };
    t.f.vhashify_ok(&["--all"]);
    let target = t.at(1, "usr/lib/libsame.so");
    assert!(is_immutable(&target));
    // What a guest process is: root without CAP_LINUX_IMMUTABLE in its bounding set.
    let jailed = |script: &str| {
        std::process::Command::new("setpriv")
            .args(["--bounding-set=-linux_immutable", "--", "/bin/sh", "-c", script])
            .arg("sh")
            .arg(&target)
            .status()
            .expect("setpriv (util-linux)")
    };
    assert!(!jailed("printf x >> \"$1\"").success(), "append to a shared file succeeded");
    assert!(!jailed("printf x > \"$1\"").success(), "truncating write to a shared file succeeded");
    assert!(!jailed("chattr -i \"$1\"").success(), "clearing the immutable flag succeeded");
    assert!(!jailed("rm -f \"$1\" && test ! -e \"$1\"").success(), "unlinking a shared file succeeded");
    assert!(jailed("chattr -i \"$1\" 2>/dev/null; true").success());
    assert!(is_immutable(&target));
    assert_eq!(fs::read(&target).unwrap(), b"identical library\n");
}

#[test]
fn dry_run_changes_nothing_and_counts_what_would_be_linked() {
    let Some(t) = setup("dry") else { return };
    let inos_before: Vec<u64> = t.inos("usr/bin/busybox");
    let sum = t.f.vhashify_ok(&["--all", "--dry-run"]);
    assert!(sum["linked"].as_u64().unwrap() >= 10, "{sum}");
    assert_eq!(t.inos("usr/bin/busybox"), inos_before);
    assert!(!t.f.store().exists(), "dry run created the store");
    assert!(!is_immutable(&t.at(0, "usr/bin/busybox")));
}

#[test]
fn revert_gives_private_writable_copies_and_gc_drops_unused_entries() {
    let Some(t) = setup("revert") else { return };
    t.f.vhashify_ok(&["--all"]);
    let before = t.snapshots();
    // A directory argument is skipped and named unless --recursive: `$(dpkg -L PKG)` lists /. and /usr.
    let out = t.f.vhashify(&["--revert", "g1", "/usr/lib/libsame.so", "usr/bin", "/."]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 directories not reverted") && err.contains("/usr/bin") && err.contains("--recursive"), "{err}");
    assert!(is_immutable(&t.at(1, "usr/bin/busybox")), "a directory argument was reverted without --recursive");
    assert!(!is_immutable(&t.at(1, "usr/lib/libsame.so")), "the file argument was not reverted");
    let refused = t.f.vhashify(&["--revert", "--recursive", "g1", "/."]);
    assert_eq!(refused.status.code(), Some(2), "--recursive / must be refused: {refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("whole guest"));
    let sum = t.f.vhashify_ok(&["--revert", "--recursive", "g1", "usr/bin"]);
    assert!(sum["reverted"].as_u64().unwrap() >= 1, "{sum}");
    assert!(!is_immutable(&t.at(1, "usr/bin/busybox")));
    assert_eq!(t.snapshots(), before, "revert changed content");
    let lib = t.at(1, "usr/lib/libsame.so");
    assert!(!is_immutable(&lib));
    assert_eq!(fs::metadata(&lib).unwrap().nlink(), 1);
    assert_ne!(ino(&lib), ino(&t.at(0, "usr/lib/libsame.so")));
    fs::write(&lib, b"upgraded\n").expect("a reverted file is writable");
    assert!(is_immutable(&t.at(1, "usr/share/sparse")), "a path not named was reverted");

    let whole = t.f.vhashify_ok(&["--revert", "g2"]);
    assert!(whole["reverted"].as_u64().unwrap() >= 5, "{whole}");
    t.f.vhashify_ok(&["--revert", "g0"]);
    let entries = store_entries(&t.f.store()).len();
    // g1 still links some entries (sparse, libs in usr/lib other than libsame...)
    let gc = t.f.vhashify_ok(&["--gc"]);
    let removed = gc["gc_removed"].as_u64().unwrap() as usize;
    assert!(removed > 0 && removed < entries, "gc removed {removed} of {entries}: {gc}");
    for e in store_entries(&t.f.store()) {
        assert!(fs::metadata(&e).unwrap().nlink() > 1, "gc left an unused entry");
    }
    assert_eq!(t.snapshots()[2], before[2]);
}

#[test]
fn usage_errors_lock_and_unknown_guests_have_clear_exit_codes() {
    let Some(t) = setup("cli") else { return };
    assert_eq!(t.f.vhashify(&[]).status.code(), Some(2));
    assert_eq!(t.f.vhashify(&["--all", "g0"]).status.code(), Some(2));
    assert_eq!(t.f.vhashify(&["--manually", "/tmp"]).status.code(), Some(2));
    let out = t.f.vhashify(&["nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"), "{}", String::from_utf8_lossy(&out.stderr));

    // Quiet on success when stdout is not a terminal.
    let quiet = t.f.vhashify(&["g0"]);
    assert!(quiet.status.success());
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty(), "not quiet: {quiet:?}");

    let lock = fs::File::open(t.f.store().join(".vhashify/lock")).unwrap();
    // SAFETY: flock on an fd we own.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let busy = t.f.vhashify(&["--no-wait", "g1"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("lock"), "{busy:?}");
    drop(lock);
    assert!(t.f.vhashify(&["--wait", "g1"]).status.success());
}
