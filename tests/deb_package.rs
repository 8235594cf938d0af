//! The Debian package: `dpkg -i` installs it, the installed vserver-info
//! passes, a busybox guest builds, starts and stops with /usr/bin/vserver,
//! and `dpkg -r` / `dpkg -P` remove it cleanly. The .deb comes from
//! util/build-deb.sh (CI runs it before the tests): $VSERVER_DEB, or
//! <target>/debian/vserver-rs_*.deb.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use vserver_rs_tests::{describe, is_root, require, run};

const PACKAGE: &str = "vserver-rs";

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn find_deb() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VSERVER_DEB") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3)?.to_path_buf(); // target/<profile>/deps/<test>
    let mut debs: Vec<PathBuf> = fs::read_dir(target.join("debian"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vserver-rs_")))
        .collect();
    debs.sort();
    debs.pop()
}

fn installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    String::from_utf8_lossy(&out.stdout).contains("ok installed")
}

/// Purges the package if it is (still) on the machine.
struct PackageGuard;

impl Drop for PackageGuard {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-P", PACKAGE]).output();
    }
}

/// A temporary config root, guest base and run dir; stops the guest and
/// removes them on drop.
struct World {
    root: PathBuf,
    guest: String,
}

impl World {
    fn vserver(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/vserver");
        c.arg("--confdir")
            .arg(self.root.join("etc"))
            .arg("--vdirbase")
            .arg(self.root.join("vservers"))
            .arg("--rundir")
            .arg(self.root.join("run"))
            .arg(&self.guest)
            .args(args)
            .env_remove("VSERVER_CGROUP_ROOT");
        c
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if Path::new("/usr/bin/vserver").exists() {
            let _ = self.vserver(&["stop", "--timeout", "2"]).output();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn conffiles() -> Vec<PathBuf> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()).map(PathBuf::from).collect()
}

#[test]
fn the_package_installs_runs_a_guest_and_removes_cleanly() {
    if !require(is_root(), "dpkg -i needs root") || !require(Path::new("/bin/busybox").exists(), "busybox-static") {
        return;
    }
    let Some(deb) = find_deb() else {
        require(false, "no vserver-rs .deb: run util/build-deb.sh first (or set VSERVER_DEB)");
        return;
    };
    let clean = !installed() && !Path::new("/etc/vservers/.defaults").exists() && !Path::new("/usr/bin/vserver").exists();
    if !require(clean, "vserver-rs is not installed and /etc/vservers/.defaults does not exist (the test purges)") {
        return;
    }

    let had_etc = Path::new("/etc/vservers").exists();
    let had_run = Path::new("/run/vservers").exists();
    let _package = PackageGuard;
    ok(Command::new("dpkg").args(["-i", "--force-confold"]).arg(&deb));
    assert!(installed());
    let listed: Vec<PathBuf> = ok(Command::new("dpkg").args(["-L", PACKAGE])).lines().map(PathBuf::from).collect();
    let files: Vec<&PathBuf> = listed.iter().filter(|p| p.is_file()).collect();
    for wanted in [
        "/usr/bin/vserver",
        "/usr/bin/vserver-info",
        "/usr/bin/vhashify",
        "/usr/bin/vps",
        "/usr/bin/vtop",
        "/usr/bin/vkill",
        "/usr/bin/vwait",
        "/usr/bin/vuname",
        "/usr/bin/vapt-get",
        "/usr/bin/vdlimit",
        "/usr/lib/vserver-rs/vserver-complete",
        "/usr/share/doc/vserver-rs/README.md",
        "/usr/share/doc/vserver-rs/examples/etc-vservers/example/context",
        "/usr/share/doc/vserver-rs/examples/etc-vservers/.defaults/bcapabilities",
        "/usr/share/doc/vserver-rs/schemas/vserver-stat.json",
        "/lib/systemd/system/vservers.service",
    ] {
        assert!(files.iter().any(|p| p.as_path() == Path::new(wanted)), "{wanted} not in the package");
    }
    assert!(Path::new("/etc/vservers/.defaults").is_dir());
    assert!(Path::new("/run/vservers/.locks").is_dir(), "postinst made no lock dir");
    let units: Vec<&PathBuf> = files.iter().copied().filter(|p| p.starts_with("/lib/systemd/system")).collect();
    assert_eq!(units.len(), 4, "{units:?}");
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let out = run(Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&units));
        assert!(out.status.success() && out.stderr.is_empty(), "packaged units: {}", describe(&out));
    }
    let conf = conffiles();
    assert!(conf.iter().any(|p| p == Path::new("/etc/cron.d/vhashify")), "{conf:?}");
    let fields = ok(Command::new("dpkg-query").args(["-W", "-f=${Suggests}", PACKAGE]));
    assert!(fields.contains("bash-completion") && fields.contains("man-db"), "Suggests: {fields}");
    // The installed completion scripts run the installed completer.
    let bash = fs::read_to_string("/usr/share/bash-completion/completions/vserver").unwrap();
    assert!(bash.contains("/usr/lib/vserver-rs/vserver-complete"), "{bash}");

    let root = std::env::temp_dir().join(format!("vs-deb-{}", std::process::id()));
    let world = World { root: root.clone(), guest: format!("deb{}", std::process::id() % 100000) };
    fs::create_dir_all(root.join("etc/.defaults")).unwrap();
    fs::create_dir_all(root.join("vservers")).unwrap();
    // Before Landlock scoping (6.12) a guest on the host network starts only
    // when its config accepts shared abstract sockets (tests/support/guest.rs).
    if let vserver_core::net::abstract_unix::Support::Missing { .. } = vserver_core::net::abstract_unix::probe() {
        let flag = vserver_core::net::abstract_unix::SHARED_FLAG;
        fs::write(root.join("etc/.defaults/cflags"), format!("{flag}\n")).unwrap();
    }

    let out = run(Command::new("/usr/bin/vserver-info").env("VSERVER_VDIRBASE", root.join("vservers")));
    assert_eq!(out.status.code(), Some(0), "installed vserver-info: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cgroup.bpf"));
    let page = ok(Command::new("man").args(["-l", "/usr/share/man/man1/vserver.1.gz"]));
    assert!(page.contains("SYNOPSIS"), "{page}");

    let xid = (40000 + std::process::id() % 9000).to_string();
    ok(&mut world.vserver(&["build", "-m", "busybox", "--context", &xid]));
    ok(&mut world.vserver(&["start"]));
    let inside = run(&mut world.vserver(&["exec", "/bin/sh", "-c", "echo inside; exit 7"]));
    assert_eq!((inside.status.code(), String::from_utf8_lossy(&inside.stdout).trim()), (Some(7), "inside"), "{}", describe(&inside));
    let status = run(&mut world.vserver(&["status"]));
    assert_eq!(status.status.code(), Some(0), "{}", describe(&status));
    ok(&mut world.vserver(&["stop"]));
    assert_eq!(run(&mut world.vserver(&["status"])).status.code(), Some(3));
    drop(world);

    ok(Command::new("dpkg").args(["-r", PACKAGE]));
    for f in &files {
        let kept = conf.iter().any(|c| c == *f);
        assert_eq!(f.exists(), kept, "after dpkg -r: {} {}", f.display(), if kept { "is gone" } else { "is left" });
    }
    // The kept cron file (a conffile until purge) does nothing and says nothing.
    let cron = fs::read_to_string("/etc/cron.d/vhashify").unwrap();
    let line = cron.lines().find(|l| !l.starts_with('#') && l.split_whitespace().nth(5) == Some("root")).unwrap();
    let cron_out = run(Command::new("/bin/sh").arg("-c").arg(line.splitn(7, char::is_whitespace).nth(6).unwrap()));
    assert!(cron_out.stdout.is_empty() && cron_out.stderr.is_empty(), "cron after dpkg -r: {}", describe(&cron_out));
    ok(Command::new("dpkg").args(["-P", PACKAGE]));
    for c in &conf {
        assert!(!c.exists(), "after dpkg -P: {} is left", c.display());
    }
    assert!(had_etc || !Path::new("/etc/vservers").exists(), "dpkg -P left /etc/vservers");
    assert!(had_run || !Path::new("/run/vservers").exists(), "postrm left /run/vservers");
}
