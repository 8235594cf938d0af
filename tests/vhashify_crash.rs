//! kill -9 at many points of a run over thousands of files: after each, every
//! guest path still has its original content; the next run repairs what the
//! killed one left (immutable flags, staging names) and completes.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use vserver_rs_tests::unify::*;

const FILES_PER_GUEST: usize = 1200;

fn populate(root: &std::path::Path, guest: usize) {
    for i in 0..FILES_PER_GUEST {
        // Two thirds shared by all guests, the rest private; a few duplicates inside a guest.
        let content = if i % 3 == 2 { format!("private {guest} {i}\n") } else { format!("shared {}\n", i % 700) };
        write(&root.join(format!("usr/d{}/f{i}", i % 40)), content.repeat(1 + i % 5).as_bytes());
    }
}

#[test]
fn every_path_keeps_its_content_when_a_run_is_killed_anywhere() {
    let Some(f) = Fixture::new("crash") else { return };
    let roots: Vec<PathBuf> = (0..3).map(|i| f.guest(&format!("c{i}"), 200 + i as u32)).collect();
    for (i, r) in roots.iter().enumerate() {
        populate(r, i);
    }
    let before: Vec<_> = roots.iter().map(|r| snapshot(r)).collect();
    let points = ["walk-dir", "adopted", "unfreeze", "before-link", "linked-tmp", "exchanged", "unlinked", "refrozen"];
    let mut kills = 0;
    for (round, n) in [1u32, 3, 50, 400, 1500].into_iter().enumerate() {
        for p in points {
            // Back to private copies, so every run has the whole job to do again.
            for i in 0..3 {
                f.vhashify_ok(&["--revert", &format!("c{i}")]);
            }
            f.vhashify_ok(&["--gc"]);
            let status = f.command().arg("--all").env("VHASHIFY_TEST_CRASH", format!("{p}:{}", n + round as u32)).status().unwrap();
            if status.signal() == Some(libc::SIGKILL) {
                kills += 1;
            }
            let now: Vec<_> = roots.iter().map(|r| snapshot(r)).collect();
            assert_eq!(now, before, "content changed after a kill at {p}:{n}");
            assert!(status.signal() == Some(libc::SIGKILL) || status.success(), "run failed at {p}:{n}: {status}");
        }
    }
    assert!(kills >= 20, "only {kills} runs were actually killed: the crash points are not reached");

    let sum = f.vhashify_ok(&["--all"]);
    assert_eq!(sum["errors"], 0, "{sum}");
    assert!(!f.store().join(".vhashify/dirty").exists(), "dirty marker left after a clean run");
    assert_eq!(fs::read_dir(f.store().join(".vhashify/staging")).unwrap().count(), 0, "staging not empty");
    for e in store_entries(&f.store()) {
        assert!(is_immutable(&e), "{} lost its immutable flag", e.display());
    }
    let again = f.vhashify_ok(&["--all"]);
    assert_eq!(again["linked"], 0, "{again}");
    assert_eq!(again["hashed"], 0, "an unchanged tree needs no read: {again}");
    // Only the private files (one guest each, so never unified) need a stat.
    assert_eq!(again["files_scanned"], 1200, "{again}");
    assert_eq!(again["unshared"], 1200, "{again}");
    for (i, r) in roots.iter().enumerate() {
        let own = r.join("usr/d2/f2");
        assert!(!is_immutable(&own) && fs::metadata(&own).unwrap().nlink() == 1, "guest {i}'s private file was unified");
    }
    let shared = ino(&roots[0].join("usr/d0/f0"));
    assert!(roots.iter().all(|r| ino(&r.join("usr/d0/f0")) == shared));
    let now: Vec<_> = roots.iter().map(|r| snapshot(r)).collect();
    assert_eq!(now, before);
}
