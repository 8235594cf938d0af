//! Package upgrades inside a unified Debian guest, with no manual step:
//! `dpkg -i` and `apt-get install --reinstall` of packages whose files are
//! unified, and `apt-get upgrade` from a local repository (the .debs are
//! fetched on the host with `apt-get download`, so the guest needs no
//! network). The other guest's files and the store stay as they were; a
//! later vhashify shares the reinstalled files again; `vhashify --revert
//! --package` reverts exactly a package's regular files.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vserver_rs_tests::cow::{cgroup2_root, CowGuest};
use vserver_rs_tests::debian::{downloaded_deb_version, installed_version, DebianInit};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::unify::{digest, is_immutable, store_entries};
use vserver_rs_tests::{describe, require, require_root, run};

/// Packages of the test guests with files in /usr (unified), reinstalled.
const REINSTALLED: &[&str] = &["less", "procps"];
/// Upgraded from a local repository with a made-up newer version.
const UPGRADED: &str = "cron";

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino()
}

/// The regular files a package has under /usr that vhashify unifies (not
/// empty, not setuid or setgid), from the guest's dpkg list.
fn usr_files(root: &Path, pkg: &str) -> Vec<String> {
    let list = fs::read_to_string(root.join(format!("var/lib/dpkg/info/{pkg}.list"))).unwrap();
    list.lines()
        .filter(|l| l.starts_with("/usr/"))
        .filter(|l| {
            fs::symlink_metadata(root.join(&l[1..])).is_ok_and(|m| m.file_type().is_file() && m.len() > 0 && m.mode() & 0o6000 == 0)
        })
        .map(|l| l[1..].to_string())
        .collect()
}

#[test]
fn package_upgrades_in_a_unified_guest_need_no_manual_step() {
    if !require_root() || !require(cgroup2_root().is_some(), "a cgroup2 mount with the freezer") {
        return;
    }
    let w = World::new("cowdeb");
    let Some((a, _)) = w.debian_guest("cowdeba", DebianInit::Sysv, &[]) else { return };
    let Some((b, _)) = w.debian_guest("cowdebb", DebianInit::Sysv, &[]) else { return };
    let (ra, rb) = (w.guest_root(&a), w.guest_root(&b));
    for g in [&a, &b] {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
    }
    // From the host's mirror, cached for runs without one (util/vm-suite.sh).
    let download = |pkg: &str| downloaded_deb_version(pkg, Some(&installed_version(&ra, pkg)));
    let mut reinstall = Vec::new();
    for pkg in REINSTALLED {
        let Some(deb) = download(pkg) else { return };
        reinstall.push(deb);
    }
    let Some(cron_deb) = download(UPGRADED) else { return };
    let sum = vhashify(&w, &["--all"]);
    assert!(sum["linked"].as_u64().unwrap() > 1000, "{sum}");
    let files: Vec<String> = REINSTALLED.iter().chain([&UPGRADED]).flat_map(|p| usr_files(&ra, p)).collect();
    assert!(files.len() > 20, "{files:?}");
    for f in &files {
        assert_eq!(ino(&ra.join(f)), ino(&rb.join(f)), "{f} not unified");
        assert!(is_immutable(&ra.join(f)));
    }
    let b_before: Vec<(u64, u64)> = files.iter().map(|f| (digest(&rb.join(f)), ino(&rb.join(f)))).collect();
    let entries: Vec<(PathBuf, u64)> = store_entries(&w.vdirbase.join(".hash")).into_iter().map(|e| (e.clone(), digest(&e))).collect();

    // The local repository with a newer cron, and the .debs, inside guest A.
    fs::create_dir_all(ra.join("root/debs")).unwrap();
    for d in &reinstall {
        fs::copy(d, ra.join("root/debs").join(d.file_name().unwrap())).unwrap();
    }
    make_repo(&cron_deb, &ra.join("srv/repo"));
    // No service starts inside the test's guest (as in any chroot).
    fs::write(ra.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").unwrap();
    fs::set_permissions(ra.join("usr/sbin/policy-rc.d"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let guest = CowGuest::new(&w, &a);
    let (_, dpkg) = guest.sh_ok("dpkg -i /root/debs/less_*.deb");
    let (_, apt) = guest.sh_ok("apt-get install -y -q --reinstall /root/debs/procps_*.deb");
    let (out, upgrade) = guest.sh_ok(
        "mkdir -p /etc/apt/disabled && mv /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/disabled/ 2>/dev/null
         echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list
         apt-get update -q && apt-get upgrade -y -q && dpkg-query -W -f='${Version}' cron",
    );
    eprintln!("dpkg -i: {dpkg:?}\napt-get --reinstall: {apt:?}\napt-get upgrade: {upgrade:?}");
    assert!(out.trim_end().ends_with("+cow1"), "cron was not upgraded: {out}");
    assert!(dpkg.broken > 0 && apt.broken > 0 && upgrade.broken > 0, "no link was broken");
    // dpkg's first backup link of a package breaks the package's other files too: few windows.
    assert!(dpkg.windows * 4 <= dpkg.broken && apt.windows * 4 <= apt.broken, "one window per file: {dpkg:?} {apt:?}");
    for f in &files {
        assert!(!is_immutable(&ra.join(f)), "{f} in guest a is still the shared inode");
        assert_ne!(ino(&ra.join(f)), ino(&rb.join(f)), "{f} still shared");
    }
    let b_after: Vec<(u64, u64)> = files.iter().map(|f| (digest(&rb.join(f)), ino(&rb.join(f)))).collect();
    assert_eq!(b_after, b_before, "guest b's files changed");
    for f in &files {
        assert!(is_immutable(&rb.join(f)), "{f} of guest b lost its flag");
    }
    for (e, d) in &entries {
        assert_eq!(digest(e), *d, "store entry {} changed", e.display());
        assert!(is_immutable(e));
    }

    // Reinstalled files are shared again; the upgraded ones differ (version strings).
    let sum = vhashify(&w, &["--all"]);
    assert_eq!(sum["errors"], 0, "{sum}");
    let reshared = REINSTALLED.iter().flat_map(|p| usr_files(&ra, p)).filter(|f| ino(&ra.join(f)) == ino(&rb.join(f))).count();
    assert!(reshared > 10, "only {reshared} reinstalled files are shared again");

    // --revert --package: exactly the package's regular files, in guest b.
    let sum = vhashify(&w, &["--revert", &b, "--package", "less"]);
    let less: Vec<String> = usr_files(&rb, "less");
    assert_eq!(sum["reverted"].as_u64().unwrap() as usize, less.len(), "{sum} {less:?}");
    for f in &less {
        assert!(!is_immutable(&rb.join(f)), "{f} not reverted");
    }
    assert!(is_immutable(&rb.join(&usr_files(&rb, "procps")[0])), "a file of another package was reverted");
    let missing = run(w.cmd("vhashify").args(["--revert", &b, "--package", "no-such-package"]));
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not installed"), "{}", describe(&missing));

    // The same through the real path: guest b booted by `vserver start`
    // (its monitor is the supervisor) and the reinstall run by `vserver exec`.
    let procps: Vec<String> = usr_files(&rb, "procps").into_iter().filter(|f| ino(&ra.join(f)) == ino(&rb.join(f))).collect();
    assert!(procps.len() > 5, "procps is shared again: {procps:?}");
    let a_before: Vec<u64> = procps.iter().map(|f| digest(&ra.join(f))).collect();
    fs::create_dir_all(rb.join("root/debs")).unwrap();
    let procps_deb = reinstall.iter().find(|d| d.file_name().unwrap().to_string_lossy().starts_with("procps_")).unwrap();
    fs::copy(procps_deb, rb.join("root/debs/procps.deb")).unwrap();
    fs::write(rb.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").unwrap();
    fs::set_permissions(rb.join("usr/sbin/policy-rc.d"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.ok(&b, &["start"]);
    let out = w.vserver(&[&b, "exec", "apt-get", "install", "-y", "-q", "--reinstall", "/root/debs/procps.deb"]);
    w.ok(&b, &["stop"]);
    assert!(out.status.success(), "apt-get --reinstall in a started unified guest: {}", describe(&out));
    for (f, d) in procps.iter().zip(&a_before) {
        assert_ne!(ino(&ra.join(f)), ino(&rb.join(f)), "{f}: guest b got no copy of its own");
        assert!(!is_immutable(&rb.join(f)), "{f} of guest b");
        assert!(is_immutable(&ra.join(f)), "{f} of guest a lost its flag");
        assert_eq!(digest(&ra.join(f)), *d, "{f} of guest a changed");
    }
    w.assert_nothing_left(&b);
}

fn vhashify(w: &World, args: &[&str]) -> serde_json::Value {
    let out = run(w.cmd("vhashify").arg("--json").args(args));
    assert!(out.status.success(), "vhashify {args:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A repository with `deb` repacked as version VERSION+cow1 (one file
/// changed, so something really is new), and its Packages index.
fn make_repo(deb: &Path, repo: &Path) {
    let work = repo.with_extension("work");
    fs::create_dir_all(repo).unwrap();
    let sh = |script: &str| {
        let out = run(Command::new("sh").arg("-c").arg(script).arg("sh").arg(deb).arg(&work).arg(repo));
        assert!(out.status.success(), "{script}: {}", describe(&out));
    };
    sh("dpkg-deb -R \"$1\" \"$2\" && sed -i 's/^Version: .*/&+cow1/' \"$2/DEBIAN/control\" \
        && echo 'cow test build' >> \"$2\"/usr/share/doc/cron/README \
        && dpkg-deb -b \"$2\" \"$3\"/cron_cow1.deb >/dev/null && rm -rf \"$2\" \
        && cd \"$3\" && dpkg-scanpackages . > Packages 2>/dev/null");
}
