//! Fixtures for the vhashify tests: a temporary config root, guest base and
//! run dir on a filesystem with FS_IMMUTABLE_FL, guests as plain directory
//! trees, and helpers to look at inodes, flags and content.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const FS_IMMUTABLE_FL: libc::c_int = 0x10;

/// Skips (returns None) when a precondition is missing, but panics when the
/// `CI` environment variable is set: privileged tests must really run there.
pub fn precondition(ok: bool, what: &str) -> Option<()> {
    if ok {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("precondition failed in CI: {what}");
    }
    eprintln!("SKIPPED: {what}");
    None
}

pub struct Fixture {
    pub dir: PathBuf,
    pub confdir: PathBuf,
    pub vdirbase: PathBuf,
    pub rundir: PathBuf,
}

impl Fixture {
    /// A fresh fixture, or None (skip) when not root or the temp fs lacks
    /// FS_IMMUTABLE_FL.
    pub fn new(tag: &str) -> Option<Fixture> {
        // SAFETY: geteuid has no preconditions.
        precondition(unsafe { libc::geteuid() } == 0, "vhashify tests need root")?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("vhashify-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let f = Fixture { confdir: dir.join("conf"), vdirbase: dir.join("guests"), rundir: dir.join("run"), dir };
        for d in [&f.confdir, &f.vdirbase, &f.rundir] {
            fs::create_dir_all(d).unwrap();
        }
        let probe = f.dir.join("probe");
        fs::write(&probe, b"x").unwrap();
        let ok = set_immutable(&probe, true).is_ok();
        let _ = set_immutable(&probe, false);
        precondition(ok, &format!("{} does not support FS_IMMUTABLE_FL (chattr +i)", f.dir.display()))?;
        Some(f)
    }

    /// A guest that takes part in unification, with an empty root.
    pub fn guest(&self, name: &str, xid: u32) -> PathBuf {
        let conf = self.confdir.join(name);
        fs::create_dir_all(conf.join("apps/vunify")).unwrap();
        fs::write(conf.join("context"), format!("{xid}\n")).unwrap();
        let root = self.vdirbase.join(name);
        fs::create_dir_all(&root).unwrap();
        root
    }

    pub fn store(&self) -> PathBuf {
        self.vdirbase.join(".hash")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(binary("vhashify"));
        c.arg("--confdir").arg(&self.confdir).arg("--vdirbase").arg(&self.vdirbase).arg("--rundir").arg(&self.rundir);
        c.env_remove("VHASHIFY_TEST_CRASH").env_remove("VHASHIFY_TEST_HOOK");
        c
    }

    pub fn vhashify(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run vhashify")
    }

    /// Runs vhashify with --json and returns the summary; panics on failure.
    pub fn vhashify_ok(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.vhashify(&all);
        assert!(out.status.success(), "vhashify {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json summary")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        clear_immutable_below(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The target dir's binary (the tests run from `target/<profile>/deps`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join(name);
    assert!(bin.exists(), "{} missing: run `cargo build --workspace` first", bin.display());
    bin
}

pub fn set_immutable(path: &Path, on: bool) -> std::io::Result<()> {
    let f = fs::File::open(path)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write one int.
    unsafe {
        if libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        flags = if on { flags | FS_IMMUTABLE_FL } else { flags & !FS_IMMUTABLE_FL };
        if libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn is_immutable(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else { return false };
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::FS_IOC_GETFLAGS, &mut flags) };
    r == 0 && flags & FS_IMMUTABLE_FL != 0
}

/// Clears the immutable flag on every regular file below `dir` (never
/// following symlinks) so the tree can be removed.
pub fn clear_immutable_below(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            clear_immutable_below(&e.path());
        } else if ft.is_file() && is_immutable(&e.path()) {
            let _ = set_immutable(&e.path(), false);
        }
    }
}

pub fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).ino()
}

/// A digest of a file's content (streamed, so large sparse files are fine).
pub fn digest(path: &Path) -> u64 {
    let mut f = fs::File::open(path).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    h.finish()
}

/// What every path below `root` is: content digest for files, target for
/// symlinks, plus mode/owner. Used to prove nothing changed but inodes.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    snap(root, root, &mut out);
    out
}

fn snap(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let what = if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            snap(root, &p, out);
            "dir".into()
        } else {
            format!("file {:x} size {}", digest(&p), m.len())
        };
        out.insert(rel, format!("{what} mode {:o} {}:{}", m.mode(), m.uid(), m.gid()));
    }
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a value buffer of its length.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

pub fn write(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// Every store entry path (`ab/cdef…`).
pub fn store_entries(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(fans) = fs::read_dir(store) else { return out };
    for fan in fans.flatten() {
        if fan.file_name().len() != 2 {
            continue;
        }
        for e in fs::read_dir(fan.path()).unwrap().flatten() {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
