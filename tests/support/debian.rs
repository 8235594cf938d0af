//! Real Debian guests for the tests, as admins build them: one
//! `vserver build -m debootstrap` per init flavour and test run (cached under
//! `target/test-cache/`, shared by the test processes through a lock), then
//! one `vserver build -m clone` of that tree per test guest.
//!
//! The first build needs the host's Debian mirror; without it the tests
//! that need a Debian guest are skipped outside CI and fail under CI. The
//! packages debootstrap downloads are kept in `target/test-cache/debs`
//! (`VSERVER_DEBOOTSTRAP_CACHE`), and a template is built again when the
//! builder's code changed (a fingerprint of its sources) or after three days.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::guest::World;
use super::{bin_dir, describe, require, run};

/// The services every Debian test guest has (issue 10's recipe).
pub const SERVICES: &[&str] = &["openssh-server", "nginx-light", "cron", "rsyslog"];

/// The suite the test guests are built from.
pub const SUITE: &str = "bookworm";

/// A cached template older than this is built again (outside CI the target
/// directory lives long).
const MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebianInit {
    /// systemd as the guest's pid 1 (init style `systemd`).
    Systemd,
    /// sysvinit's rc scripts under the built-in init (init style `sysv`).
    Sysv,
}

impl DebianInit {
    pub fn name(self) -> &'static str {
        match self {
            DebianInit::Systemd => "systemd",
            DebianInit::Sysv => "sysv",
        }
    }
}

/// The cache directory of this build tree: `target/test-cache`.
fn cache_root() -> PathBuf {
    bin_dir().parent().expect("target dir").join("test-cache")
}

/// Is the host's Debian mirror there? (A skip outside CI, a failure in it.)
pub fn require_mirror() -> bool {
    let ok = Command::new("debootstrap").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("sh")
            .args(["-c", "apt-get -qq --print-uris download base-files 2>/dev/null | grep -q ://"])
            .status()
            .is_ok_and(|s| s.success());
    require(ok, "debootstrap and the host's Debian mirror (apt-get update; apt-get install debootstrap)")
}

/// The root of a freshly debootstrapped guest with [`SERVICES`] and the
/// given init, built once per test run with the real `vserver build`.
/// None when the preconditions are missing (outside CI).
pub fn template(init: DebianInit) -> Option<PathBuf> {
    if !super::require_root() {
        return None;
    }
    let dir = cache_root().join(format!("debian-{SUITE}-{}", init.name()));
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.with_extension("lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let root = dir.join("vservers").join("template");
    let done = dir.join("complete");
    let fingerprint = format!("{:016x}\n", fingerprint());
    let fresh =
        fs::metadata(&done).and_then(|m| m.modified()).is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() < MAX_AGE)
            && fs::read_to_string(&done).is_ok_and(|f| f == fingerprint);
    if !fresh {
        // Only a build needs the mirror (a VM without network gets the
        // templates built on its host).
        if !require_mirror() {
            return None;
        }
        build_template(&dir, init);
        fs::write(&done, fingerprint).unwrap();
    }
    Some(root)
}

/// The sources that decide what a built template contains: when one of
/// them changes, the cached templates are built again.
fn fingerprint() -> u64 {
    let sources: &[&[u8]] = &[
        include_bytes!("debian.rs"),
        include_bytes!("../../crates/vserver-core/src/builder/mod.rs"),
        include_bytes!("../../crates/vserver-core/src/builder/debootstrap.rs"),
        include_bytes!("../../crates/vserver-core/src/builder/personalise.rs"),
        include_bytes!("../../crates/vserver-core/src/builder/resolv.rs"),
        include_bytes!("../../crates/vserver-core/src/builder/guestfs.rs"),
    ];
    // FNV-1a: stable across runs and Rust versions, unlike DefaultHasher.
    sources.iter().flat_map(|s| s.iter()).fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

fn build_template(dir: &Path, init: DebianInit) {
    let _ = vserver_core::builder::remove_tree(dir.join("vservers").as_path());
    let _ = fs::remove_dir_all(dir.join("etc"));
    fs::create_dir_all(dir.join("etc/.defaults")).unwrap();
    fs::create_dir_all(dir.join("vservers")).unwrap();
    // The init comes with --initstyle (systemd-sysv, or sysvinit-core
    // instead of it); the builder merges its packages with these.
    let mut include: Vec<&str> = SERVICES.to_vec();
    include.extend(["procps", "iproute2", "less"]);
    let include = format!("--include={}", include.join(","));
    let args =
        ["template", "build", "-m", "debootstrap", "--context", "49000", "--initstyle", init.name(), "--", "-d", SUITE, "--", &include];
    let out = run(Command::new(super::bin("vserver"))
        .args(args)
        .env("VSERVER_CONFDIR", dir.join("etc"))
        .env("VSERVER_VDIRBASE", dir.join("vservers"))
        .env("VSERVER_RUNDIR", dir.join("run"))
        .env("VSERVER_DEBOOTSTRAP_CACHE", cache_root().join("debs")));
    assert!(out.status.success(), "building the Debian {} template: {}", init.name(), describe(&out));
}

/// `PACKAGE`'s .deb from the host's mirror (`apt-get download`), cached
/// under `target/test-cache/debs-downloaded` like the templates, so a VM
/// without network can use what its host fetched. None when the mirror is
/// missing (outside CI).
pub fn downloaded_deb(package: &str) -> Option<PathBuf> {
    downloaded_deb_version(package, None)
}

/// The same for one version of the package (`apt-get download PKG=VERSION`).
pub fn downloaded_deb_version(package: &str, version: Option<&str>) -> Option<PathBuf> {
    let dir = cache_root().join("debs-downloaded");
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.join(".lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let version_of = |p: &Path| {
        let out = run(Command::new("dpkg-deb").arg("-f").arg(p).arg("Version"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cached = || {
        fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
                && version.is_none_or(|v| version_of(p) == v)
        })
    };
    if let Some(deb) = cached() {
        return Some(deb);
    }
    let what = match version {
        Some(v) => format!("{package}={v}"),
        None => package.to_string(),
    };
    let out = run(Command::new("apt-get").args(["download", "-qq", &what]).current_dir(&dir));
    if !require(out.status.success(), &format!("apt-get download {what} from the host's mirror: {}", describe(&out))) {
        return None;
    }
    cached()
}

/// The version of a package installed in a guest tree (its dpkg status).
pub fn installed_version(root: &Path, package: &str) -> String {
    let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let para = status
        .split("\n\n")
        .find(|p| p.lines().any(|l| l == format!("Package: {package}")))
        .unwrap_or_else(|| panic!("{package} not installed in {}", root.display()));
    para.lines().find_map(|l| l.strip_prefix("Version: ")).unwrap().to_string()
}

impl World {
    /// A Debian guest with [`SERVICES`] and `init`, cloned from the cached
    /// template; `interfaces` are `--interface` specs (`lo:127.x.y.z/32`).
    /// None when the preconditions are missing (outside CI).
    pub fn debian_guest(&self, base: &str, init: DebianInit, interfaces: &[&str]) -> Option<(String, u32)> {
        let template = template(init)?;
        let (name, xid) = self.new_guest_name(base);
        let xid_s = xid.to_string();
        let source = template.to_string_lossy().into_owned();
        let mut args = vec![name.as_str(), "build", "-m", "clone", "--context", &xid_s, "--initstyle", init.name()];
        for i in interfaces {
            args.extend(["--interface", i]);
        }
        args.extend(["--", source.as_str()]);
        self.ok(args[0], &args[1..]);
        Some((name, xid))
    }
}
