//! `vhashify --reflink` for real, on loop-mounted XFS and btrfs images:
//! the guests' equal files come to share their extents (the space is freed)
//! while staying private, writable inodes; writing one changes nothing in
//! the other guest.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use vserver_rs_tests::guest::World;
use vserver_rs_tests::unify::{digest, is_immutable, write};
use vserver_rs_tests::{describe, require, require_busybox, require_root, run};

/// The World's guest base on a fresh filesystem image, mounted with an
/// auto-clearing loop device (freed on unmount; the World's drop unmounts).
fn mount_image(w: &World, mkfs: &str, args: &[&str]) -> bool {
    let img = w.root.join(format!("{mkfs}.img"));
    fs::File::create(&img).unwrap().set_len(1 << 30).unwrap();
    let out = run(Command::new(mkfs).args(args).arg(&img));
    assert!(out.status.success(), "{mkfs}: {}", describe(&out));
    let out = vserver_rs_tests::loop_mount(&img, &w.vdirbase, "");
    require(out.status.success(), &format!("a loop mount of a {mkfs} image: {}", describe(&out)))
}

fn free_bytes(p: &Path) -> u64 {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs is plain data written by the kernel.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, s a valid out pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail * s.f_frsize
}

fn shares_extents(p: &Path) -> bool {
    let out = run(Command::new("filefrag").arg("-v").arg(p));
    String::from_utf8_lossy(&out.stdout).contains("shared")
}

fn reflink_on(mkfs: &str, args: &[&str]) {
    if !require_root()
        || !require_busybox()
        || !require(
            Path::new(&format!("/usr/sbin/{mkfs}")).exists() || Path::new(&format!("/sbin/{mkfs}")).exists(),
            &format!("{mkfs} (apt-get install xfsprogs btrfs-progs)"),
        )
    {
        return;
    }
    let w = World::new(&format!("reflink-{mkfs}"));
    if !mount_image(&w, mkfs, args) {
        return;
    }
    let big: Vec<u8> = (0..(24u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let names: Vec<String> = ["rla", "rlb"].iter().map(|b| w.busybox_guest(b).0).collect();
    for g in &names {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
        write(&w.guest_root(g).join("usr/lib/big.so"), &big);
        write(&w.guest_root(g).join("usr/lib/small"), b"small\n");
    }
    run(&mut Command::new("sync"));
    let free_before = free_bytes(&w.vdirbase);
    let out = run(w.cmd("vhashify").args(["--reflink", "--all", "--json"]));
    assert!(out.status.success(), "vhashify --reflink on {mkfs}: {}", describe(&out));
    let sum: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    run(&mut Command::new("sync"));
    let freed = free_bytes(&w.vdirbase) as i64 - free_before as i64;
    let (a, b) = (w.guest_root(&names[0]), w.guest_root(&names[1]));
    eprintln!("{mkfs}: {sum}\nfreed {freed} bytes");
    assert!(sum["linked"].as_u64().unwrap() >= 3, "{sum}");
    // Both copies of the big file came to share extents: about one copy is
    // freed (the store's entry holds the same extents too).
    assert!(freed > (big.len() as i64) * 8 / 10, "{mkfs}: only {freed} bytes freed");
    for rel in ["usr/lib/big.so", "bin/busybox"] {
        let (pa, pb) = (a.join(rel), b.join(rel));
        assert_ne!(fs::metadata(&pa).unwrap().ino(), fs::metadata(&pb).unwrap().ino(), "{rel}: reflinks are separate inodes");
        assert!(!is_immutable(&pa) && !is_immutable(&pb), "{rel}: reflinked files stay writable");
        assert!(shares_extents(&pa), "{rel} does not share its extents");
    }
    // Writing one guest's copy leaves the other's alone.
    let before = digest(&b.join("usr/lib/big.so"));
    fs::OpenOptions::new().append(true).open(a.join("usr/lib/big.so")).unwrap().set_len(1000).unwrap();
    assert_eq!(digest(&b.join("usr/lib/big.so")), before);
    assert_eq!(fs::metadata(b.join("usr/lib/big.so")).unwrap().len(), big.len() as u64);
    // A second run reads only what changed since (the truncated file) and clones nothing again.
    let again = run(w.cmd("vhashify").args(["--reflink", "--all", "--json"]));
    assert!(again.status.success(), "{}", describe(&again));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    eprintln!("{mkfs} second run: {again}");
    assert_eq!(again["linked"], 0, "{again}");
    assert_eq!(again["hashed"], 1, "{again}");
    assert!(again["already_shared"].as_u64().unwrap() >= 5, "{again}");
    // The bytes-saved figure is what the filesystem really freed (one copy of each).
    let saved = sum["saved_bytes"].as_i64().unwrap();
    assert!(saved <= freed + (1 << 20) && saved >= freed - (1 << 20), "reported {saved}, freed {freed}");
}

#[test]
fn reflink_shares_extents_on_xfs() {
    reflink_on("mkfs.xfs", &["-q", "-m", "reflink=1"]);
}

#[test]
fn reflink_shares_extents_on_btrfs() {
    reflink_on("mkfs.btrfs", &["-q"]);
}
