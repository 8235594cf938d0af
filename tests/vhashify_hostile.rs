//! A hostile guest: symlinks planted to host files and directories, and a
//! directory swapped for a symlink while vhashify walks or links. No host file
//! may ever be linked, hashed into the store or made immutable.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vserver_rs_tests::unify::*;

const LIB: &[u8] = b"a library every guest has\n";

struct Host {
    dir: PathBuf,
}

impl Host {
    /// Host files with the very content guests hold: linking them would be possible.
    fn new(f: &Fixture) -> Host {
        let dir = f.dir.join("host/lib");
        write(&dir.join("libc.so"), LIB);
        write(&dir.join("secret"), b"host secret\n");
        Host { dir }
    }

    fn assert_untouched(&self, store: &Path) {
        for name in ["libc.so", "secret"] {
            let p = self.dir.join(name);
            let m = fs::metadata(&p).unwrap();
            assert_eq!(m.nlink(), 1, "host file {} got linked", p.display());
            assert!(!is_immutable(&p), "host file {} made immutable", p.display());
            assert!(store_entries(store).iter().all(|e| ino(e) != m.ino()), "host file in the store");
        }
        assert_eq!(fs::read(self.dir.join("libc.so")).unwrap(), LIB);
    }
}

fn guests(f: &Fixture, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let r = f.guest(&format!("h{i}"), 300 + i as u32);
            write(&r.join("usr/lib/libc.so"), LIB);
            write(&r.join("usr/lib/secret"), b"host secret\n");
            write(&r.join("usr/bin/tool"), b"tool\n");
            r
        })
        .collect()
}

#[test]
fn planted_symlinks_are_never_followed() {
    let Some(f) = Fixture::new("planted") else { return };
    let host = Host::new(&f);
    let roots = guests(&f, 2);
    symlink(host.dir.join("secret"), roots[0].join("usr/bin/evil")).unwrap();
    symlink(&host.dir, roots[0].join("usr/hostlib")).unwrap();
    fs::remove_dir_all(roots[1].join("usr/lib")).unwrap();
    symlink(&host.dir, roots[1].join("usr/lib")).unwrap();
    let sum = f.vhashify_ok(&["--all"]);
    host.assert_untouched(&f.store());
    assert!(sum["new_entries"].as_u64().unwrap() >= 1, "{sum}");
    assert_eq!(ino(&roots[0].join("usr/bin/tool")), ino(&roots[1].join("usr/bin/tool")));
}

/// A hook program that, at the given point and path, swaps `usr/lib` of the
/// guest for a symlink to the host directory (once).
fn swap_hook(f: &Fixture, point: &str, when_rel: &str, root: &Path, host: &Path) -> PathBuf {
    let script = f.dir.join(format!("hook-{point}"));
    let done = f.dir.join(format!("hook-{point}.done"));
    let lib = root.join("usr/lib");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = '{point}' ] && [ \"$2\" = '{when_rel}' ] && [ ! -e '{d}' ] || exit 0\n\
             touch '{d}'\nmv '{lib}' '{lib}.real' && ln -s '{host}' '{lib}'\n",
            d = done.display(),
            lib = lib.display(),
            host = host.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_directory_swapped_for_a_symlink_during_the_walk_is_not_entered() {
    let Some(f) = Fixture::new("swapwalk") else { return };
    let host = Host::new(&f);
    let roots = guests(&f, 2);
    // After usr/ was listed, before usr/lib is opened.
    let hook = swap_hook(&f, "walk-dir", "usr", &roots[1], &host.dir);
    let out = f.command().args(["--all", "--json"]).env("VHASHIFY_TEST_HOOK", &hook).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.dir.join("hook-walk-dir.done").exists(), "the hook never fired");
    host.assert_untouched(&f.store());
}

#[test]
fn a_directory_swapped_for_a_symlink_before_linking_is_not_linked_into() {
    let Some(f) = Fixture::new("swaplink") else { return };
    let host = Host::new(&f);
    let roots = guests(&f, 2);
    // Hashed already; the swap comes between hashing and the exchange.
    let hook = swap_hook(&f, "before-link", "usr/lib/libc.so", &roots[1], &host.dir);
    let out = f.command().args(["--all", "--json"]).env("VHASHIFY_TEST_HOOK", &hook).output().unwrap();
    assert!(f.dir.join("hook-before-link.done").exists(), "the hook never fired");
    host.assert_untouched(&f.store());
    // The guest's real directory (moved aside by the "attacker") holds its own, whole file.
    assert_eq!(fs::read(roots[1].join("usr/lib.real/libc.so")).unwrap(), LIB);
    let _ = out;
}

#[test]
fn racing_swaps_never_reach_the_host() {
    let Some(f) = Fixture::new("race") else { return };
    let host = Host::new(&f);
    let roots = guests(&f, 3);
    for i in 0..200 {
        write(&roots[2].join(format!("usr/lib/more{i}")), format!("more {i}\n").as_bytes());
        write(&roots[0].join(format!("usr/lib/more{i}")), format!("more {i}\n").as_bytes());
    }
    let lib = roots[2].join("usr/lib");
    let real = roots[2].join("usr/lib.real");
    let decoy = roots[2].join("usr/lib.link");
    symlink(&host.dir, &decoy).unwrap();
    for _ in 0..25 {
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (stop, lib, decoy) = (stop.clone(), lib.clone(), decoy.clone());
            std::thread::spawn(move || {
                let (a, b) = (
                    std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()).unwrap(),
                    std::ffi::CString::new(decoy.as_os_str().as_encoded_bytes()).unwrap(),
                );
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: valid NUL-terminated paths; swaps the real dir and the symlink.
                    unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
                }
            })
        };
        let _ = f.vhashify(&["--all"]);
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        host.assert_untouched(&f.store());
        // Put the real directory back where it belongs for the next round.
        if fs::symlink_metadata(&lib).unwrap().file_type().is_symlink() {
            let _ = real;
            let (a, b) = (
                std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()).unwrap(),
                std::ffi::CString::new(decoy.as_os_str().as_encoded_bytes()).unwrap(),
            );
            // SAFETY: as above.
            unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
        }
        f.vhashify_ok(&["--revert", "h2"]);
    }
}
