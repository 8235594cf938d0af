//! util/install.sh into a temporary DESTDIR: exactly the listed files are
//! installed, and the uninstall removes exactly those, leaving guests'
//! configuration and changed configuration files alone.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vserver_rs_tests::{describe, Scratch, BINARIES};

const UNITS: &[&str] = &["vservers.service", "vservers@.service", "vhashify.service", "vhashify.timer"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>, where the tests' binaries were built.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    for b in BINARIES.iter().chain(&["vserver-docs", "vserver-complete"]) {
        assert!(dir.join(b).exists(), "{}/{b} is missing: run `cargo build --workspace` first", dir.display());
    }
    dir
}

fn install_sh(destdir: &Path, extra: &[&str]) -> Output {
    let out = Command::new("sh")
        .arg(repo().join("util/install.sh"))
        .args(extra)
        .env("DESTDIR", destdir)
        .env("PREFIX", "/usr")
        .env("BUILD_DIR", bin_dir())
        .env_remove("SYSCONFDIR")
        .env_remove("RUNDIR")
        .env_remove("SYSTEMDUNITDIR")
        .env_remove("TMPFILESDIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh {extra:?}: {}", describe(&out));
    out
}

/// Every file (and symlink) under `root`, relative.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn dirs(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.insert(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// What the install must put there: computed from the sources, not from the script.
fn expected_files() -> BTreeSet<String> {
    let docs = Scratch::new("docs");
    let out = Command::new(bin_dir().join("vserver-docs"))
        .args(["--completer", "/usr/lib/vserver-rs/vserver-complete"])
        .arg(&docs.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "vserver-docs: {}", describe(&out));
    let mut want = BTreeSet::new();
    for b in BINARIES {
        want.insert(format!("usr/bin/{b}"));
    }
    for page in files(&docs.0.join("man1")) {
        want.insert(format!("usr/share/man/man1/{page}"));
    }
    for (shell, dest) in [
        ("bash", "usr/share/bash-completion/completions"),
        ("zsh", "usr/share/zsh/site-functions"),
        ("fish", "usr/share/fish/vendor_completions.d"),
    ] {
        for f in files(&docs.0.join("completions").join(shell)) {
            want.insert(format!("{dest}/{f}"));
        }
    }
    for u in UNITS {
        want.insert(format!("usr/lib/systemd/system/{u}"));
    }
    want.insert("usr/lib/tmpfiles.d/vserver-rs.conf".into());
    want.insert("etc/cron.d/vhashify".into());
    for f in files(&repo().join("etc-vservers/.defaults")) {
        want.insert(format!("etc/vservers/.defaults/{f}"));
    }
    want.insert("usr/share/vserver-rs/install-manifest".into());
    want.insert("usr/lib/vserver-rs/vserver-complete".into());
    want.insert("usr/share/doc/vserver-rs/README.md".into());
    for f in files(&repo().join("etc-vservers")) {
        want.insert(format!("usr/share/doc/vserver-rs/examples/etc-vservers/{f}"));
    }
    for f in files(&repo().join("schemas")) {
        want.insert(format!("usr/share/doc/vserver-rs/schemas/{f}"));
    }
    want
}

fn manifest_files(destdir: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(destdir.join("usr/share/vserver-rs/install-manifest")).unwrap();
    text.lines().filter_map(|l| l.strip_prefix("f ")).map(|l| l.split_once(' ').unwrap().1.trim_start_matches('/').to_string()).collect()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_puts_exactly_the_listed_files_and_uninstall_takes_them_away() {
    let dest = Scratch::new("dest");
    install_sh(&dest.0, &[]);
    let want = expected_files();
    let have = files(&dest.0);
    assert_eq!(have, want, "installed files differ from the expected list");
    assert_eq!(manifest_files(&dest.0), want, "the manifest must list every installed file");
    for b in BINARIES {
        assert_eq!(mode(&dest.0.join("usr/bin").join(b)), 0o755, "{b}");
    }
    assert_eq!(mode(&dest.0.join("run/vservers")), 0o755);
    assert_eq!(mode(&dest.0.join("run/vservers/.locks")), 0o700);
    assert_eq!(mode(&dest.0.join("etc/cron.d/vhashify")), 0o644);
    let unit = fs::read_to_string(dest.0.join("usr/lib/systemd/system/vservers.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/vserver --all-marked default start"), "{unit}");
    for b in BINARIES {
        let installed = fs::read(dest.0.join("usr/bin").join(b)).unwrap();
        assert_eq!(installed, fs::read(bin_dir().join(b)).unwrap(), "{b} is not the built binary");
    }
    // The completion scripts run the installed completer.
    let bash = fs::read_to_string(dest.0.join("usr/share/bash-completion/completions/vserver")).unwrap();
    assert!(bash.contains("/usr/lib/vserver-rs/vserver-complete"), "{bash}");

    install_sh(&dest.0, &["--uninstall"]);
    assert_eq!(files(&dest.0), BTreeSet::new(), "uninstall left files");
    assert_eq!(dirs(&dest.0), BTreeSet::new(), "uninstall left directories");
}

#[test]
fn uninstall_never_touches_guests_or_changed_configuration() {
    let dest = Scratch::new("guests");
    // Before the install: a guest, and an admin's own .defaults/fstab.
    let guest = dest.0.join("etc/vservers/web1");
    fs::create_dir_all(guest.join("apps/init")).unwrap();
    fs::write(guest.join("context"), "101\n").unwrap();
    fs::write(guest.join("apps/init/mark"), "default\n").unwrap();
    let defaults = dest.0.join("etc/vservers/.defaults");
    fs::create_dir_all(&defaults).unwrap();
    fs::write(defaults.join("fstab"), "# the admin's fstab\n").unwrap();

    let out = install_sh(&dest.0, &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeping"), "{}", describe(&out));
    assert_eq!(fs::read_to_string(defaults.join("fstab")).unwrap(), "# the admin's fstab\n");
    assert!(!manifest_files(&dest.0).contains("etc/vservers/.defaults/fstab"));
    // After the install the admin edits a sample file.
    let edited = files(&repo().join("etc-vservers/.defaults")).into_iter().find(|f| f != "fstab").unwrap();
    fs::write(defaults.join(&edited), "# changed\n").unwrap();

    let out = install_sh(&dest.0, &["--uninstall"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("keeping {}", defaults.join(&edited).display())));
    let left = files(&dest.0);
    let want: BTreeSet<String> = [
        "etc/vservers/web1/context".to_string(),
        "etc/vservers/web1/apps/init/mark".to_string(),
        "etc/vservers/.defaults/fstab".to_string(),
        format!("etc/vservers/.defaults/{edited}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(left, want);
    assert!(!dest.0.join("usr").exists() && !dest.0.join("run").exists());
}

#[test]
fn a_second_install_is_still_removed_completely() {
    let dest = Scratch::new("twice");
    install_sh(&dest.0, &[]);
    install_sh(&dest.0, &[]);
    assert_eq!(files(&dest.0), expected_files());
    install_sh(&dest.0, &["--uninstall"]);
    assert_eq!(files(&dest.0), BTreeSet::new());
    assert_eq!(dirs(&dest.0), BTreeSet::new());
}

#[test]
fn uninstall_without_an_install_fails_and_bad_usage_exits_2() {
    let dest = Scratch::new("none");
    let out = Command::new("sh")
        .arg(repo().join("util/install.sh"))
        .arg("--uninstall")
        .env("DESTDIR", &dest.0)
        .env("PREFIX", "/usr")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("install-manifest not found"), "{}", describe(&out));
    let out = Command::new("sh").arg(repo().join("util/install.sh")).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
