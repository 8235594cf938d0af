//! A fresh `/dev` holding only the nodes a guest needs (the paper's "secure
//! device nodes"), a private devpts instance and `/dev/shm`. Nothing of the
//! host's /dev is visible; the guest has no CAP_MKNOD to add nodes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount};

/// (name, major, minor): the complete list of device nodes in a guest.
pub const DEVICE_NODES: &[(&str, u32, u32)] = &[
    ("full", 1, 7),
    ("null", 1, 3),
    ("random", 1, 8),
    ("tty", 5, 0),
    ("urandom", 1, 9),
    ("zero", 1, 5),
];

/// Everything in a guest's /dev: the nodes, `ptmx` (a symlink into the
/// private devpts), `pts/` and `shm/`.
pub const DEV_ENTRIES: &[&str] = &["full", "null", "ptmx", "pts", "random", "shm", "tty", "urandom", "zero"];

/// For the devices cgroup (v1): the nodes above, ptmx (5:2) and the pty
/// slaves (136:*).
pub const DEVICE_ALLOW_RULES: &[&str] =
    &["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"];

pub fn populate(root: &GuestRoot) -> io::Result<()> {
    let dev = root.ensure_dir(Path::new("dev"), Symlinks::Refuse, 0o755)?;
    mount(
        Some("tmpfs"),
        &fd_path(&dev),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=755,size=64k,nr_inodes=4096"),
    )?;
    // Reopen: the first descriptor is the directory underneath the tmpfs.
    let dev = root.ensure_dir(Path::new("dev"), Symlinks::Refuse, 0o755)?;
    for (name, major, minor) in DEVICE_NODES {
        mknod_char(&dev, name, *major, *minor)?;
    }
    symlinkat("pts/ptmx", &dev, "ptmx")?;
    let pts = root.ensure_dir(Path::new("dev/pts"), Symlinks::Refuse, 0o755)?;
    mount(
        Some("devpts"),
        &fd_path(&pts),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = root.ensure_dir(Path::new("dev/shm"), Symlinks::Refuse, 0o1777)?;
    mount(
        Some("shm"),
        &fd_path(&shm),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("static name")
}

fn mknod_char(dir: &OwnedFd, name: &str, major: u32, minor: u32) -> io::Result<()> {
    let n = cstr(name);
    // SAFETY: mknodat/fchmodat with a NUL-terminated name relative to a descriptor we own.
    let rc = unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(major, minor)) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("creating /dev/{name} in the guest: {e}")));
    }
    // The umask may have narrowed the mode.
    // SAFETY: as above.
    unsafe { libc::fchmodat(dir.as_raw_fd(), n.as_ptr(), 0o666, 0) };
    Ok(())
}

fn symlinkat(target: &str, dir: &OwnedFd, name: &str) -> io::Result<()> {
    let (t, n) = (cstr(target), cstr(name));
    // SAFETY: NUL-terminated strings and a descriptor we own.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
