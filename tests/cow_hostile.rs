//! A hostile unified guest against copy-on-write and vhashify. Guest A holds
//! read-only descriptors of shared inodes and keeps trying fchmod, fchown,
//! fsetxattr and reopening them for writing (calls the supervisor never
//! sees: only the immutable flag stops them); it swaps a directory of
//! unified files with a look-alike in a loop and pokes paths through it,
//! through symlinks aimed at the host and at the other guests' trees, and
//! through a copy of another guest's host path planted in its own tree.
//! Meanwhile guest B keeps getting its links broken (its own writes) and
//! vhashify keeps linking them again: windows, again and again. None of A's
//! descriptor calls may ever succeed, and the store, guest C and the host
//! file must stay exactly as they were.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vserver_rs_tests::cow::{cgroup2_root, install_attack_tool, xattrs, CowGuest};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::unify::{digest, is_immutable, store_entries, write};
use vserver_rs_tests::{describe, require, require_busybox, require_root, run};

const FILES: usize = 60;
const SECONDS: u64 = 15;

fn state(p: &Path) -> String {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    format!("{:x} {:o} {}:{} {:?} immutable={}", digest(p), m.mode(), m.uid(), m.gid(), xattrs(p), is_immutable(p))
}

fn states(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| state(p)).collect()
}

#[test]
fn a_hostile_guest_never_changes_a_shared_inode_while_links_are_broken_and_made() {
    if !require_root() || !require_busybox() || !require(cgroup2_root().is_some(), "a cgroup2 mount with the freezer") {
        return;
    }
    let w = World::new("cowhostile");
    let names: Vec<String> = ["cowatk", "cowvic", "cowby"].iter().map(|b| w.busybox_guest(b).0).collect();
    let (a, b, c) = (&names[0], &names[1], &names[2]);
    for g in &names {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
        for i in 0..FILES {
            write(&w.guest_root(g).join(format!("usr/lib/n/f{i}")), format!("shared library {i}\n").repeat(50).as_bytes());
        }
    }
    let host_file = w.root.join("host-secret");
    write(&host_file, b"host secret\n");
    let ra = w.guest_root(a);
    // A's look-alike directory, and paths aimed out of its tree.
    for i in 0..FILES {
        write(&ra.join(format!("usr/lib/n.fake/f{i}")), format!("look-alike {i}\n").as_bytes());
    }
    symlink(format!("../../../../../../../../../..{}", host_file.display()), ra.join("usr/lib/up")).unwrap();
    symlink(&host_file, ra.join("usr/lib/abs")).unwrap();
    symlink(w.guest_root(b).join("usr/lib/n/f1"), ra.join("usr/lib/other")).unwrap();
    let planted = ra.join(w.guest_root(b).strip_prefix("/").unwrap()).join("usr/lib/n");
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    symlink("/usr/lib/n", &planted).unwrap();
    install_attack_tool(&ra);
    let sum = vhashify(&w);
    assert!(sum["linked"].as_u64().unwrap() >= 2 * FILES as u64, "{sum}");

    let c_files: Vec<PathBuf> = (0..FILES).map(|i| w.guest_root(c).join(format!("usr/lib/n/f{i}"))).collect();
    let entries = store_entries(&w.vdirbase.join(".hash"));
    assert!(entries.len() >= FILES);
    let (c_before, entries_before, host_before) = (states(&c_files), states(&entries), state(&host_file));

    let guest_a = CowGuest::new(&w, a);
    let guest_b = CowGuest::new(&w, b);
    let list: Vec<String> = (0..FILES).map(|i| format!("/usr/lib/n/f{i}")).collect();
    let attack = format!(
        "/root/cowattack fds {s} {list} > /tmp/fds.out 2>&1 &
         sleep 1
         /root/cowattack swap {s} /usr/lib/n /usr/lib/n.fake > /dev/null &
         /root/cowattack poke {s} {list} /usr/lib/up /usr/lib/abs /usr/lib/other {planted}/f2 > /dev/null &
         wait; cat /tmp/fds.out",
        s = SECONDS,
        list = list.join(" "),
        planted = Path::new("/").join(planted.strip_prefix(&ra).unwrap()).display(),
    );
    let attacker = guest_a.spawn(&["/bin/sh", "-c", &attack]);
    // B rewrites its files with the same content: its links break, vhashify makes them again.
    let victim = guest_b.spawn(&[
        "/bin/sh",
        "-c",
        &format!("end=$(( $(date +%s) + {SECONDS} )); while [ $(date +%s) -lt $end ]; do for f in /usr/lib/n/f*; do cat $f > /tmp/x && cat /tmp/x > $f; done; done"),
    ]);
    let mut vhashify_windows = 0;
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    while Instant::now() < deadline {
        vhashify_windows += vhashify(&w)["windows"].as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let (out_a, stats_a) = attacker.wait();
    let (out_b, stats_b) = victim.wait();
    assert!(out_a.status.success(), "attacker: {}", describe(&out_a));
    assert!(out_b.status.success(), "victim: {}", describe(&out_b));
    let report = String::from_utf8_lossy(&out_a.stdout).into_owned();
    eprintln!("attacker: {report} supervisor {stats_a:?}; victim supervisor {stats_b:?}; vhashify windows {vhashify_windows}");
    eprintln!("attacker stderr: {}", String::from_utf8_lossy(&out_a.stderr));
    assert!(stats_b.broken >= FILES as u64 && stats_b.windows >= 5, "too few links broken to have raced anything: {stats_b:?}");
    assert!(vhashify_windows >= 5, "vhashify opened too few windows: {vhashify_windows}");
    let descriptors: u64 = word_after(&report, "descriptors");
    assert!(descriptors as usize >= FILES / 2, "the attacker held too few shared descriptors: {report}");
    // Enough tries to have met every window (a VM under software emulation
    // managed 660 in the same time, far more than the windows opened).
    let tries = word_after(&report, "tries");
    assert!(tries > 200 && tries > 4 * (stats_b.windows + vhashify_windows), "too few tries to have raced the windows: {report}");
    assert_eq!(word_after(&report, "breaches"), 0, "a descriptor of a shared inode was changed: {report}");

    assert_eq!(states(&c_files), c_before, "a bystander guest's file changed");
    assert_eq!(states(&entries), entries_before, "a store entry changed");
    assert_eq!(state(&host_file), host_before, "the host file changed");
    for e in store_entries(&w.vdirbase.join(".hash")) {
        assert!(is_immutable(&e), "{} not immutable", e.display());
    }
    for i in 0..FILES {
        let f = w.guest_root(b).join(format!("usr/lib/n/f{i}"));
        assert_eq!(fs::read(&f).unwrap(), format!("shared library {i}\n").repeat(50).into_bytes(), "B's file changed");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o644, "B's file mode changed");
    }
    assert!(!guest_a.cgroup.is_frozen() && !guest_b.cgroup.is_frozen(), "a guest was left frozen");
    assert!(!w.rundir.join(".locks/unify-window.json").exists(), "a window journal was left");
}

fn vhashify(w: &World) -> serde_json::Value {
    let out = run(w.cmd("vhashify").args(["--json", "--all"]));
    assert!(out.status.success(), "vhashify: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn word_after(text: &str, word: &str) -> u64 {
    let mut it = text.split_whitespace();
    while let Some(t) = it.next() {
        if t == word {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no {word:?} in {text:?}")
}
