//! The guest's confined root: its private mount tree, `fstab` mounts, fresh
//! `/run` (and `/tmp`) tmpfs, a fresh `/dev` with a pty as `/dev/console`, a
//! masked `/proc`, a read-only `/sys` (with a delegated cgroup2 mount for
//! systemd guests), and the `pivot_root` that
//! leaves the host's tree behind. The order in which `context::setup`
//! (`setup_guest`, in the guest's first process) calls these steps matters;
//! each step says what it needs before it.

pub mod cgroupfs;
pub mod console;
pub mod dev;
pub mod fstab;
pub mod pivot;
pub mod proc;
pub mod resolve;
pub mod tmpfs;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use resolve::GuestRoot;

/// mount(2) with error messages naming what was mounted where.
pub fn mount(source: Option<&str>, target: &Path, fstype: Option<&str>, flags: libc::c_ulong, data: Option<&str>) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let src = source.map(c).transpose()?;
    let tgt = CString::new(target.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let fst = fstype.map(c).transpose()?;
    let dat = data.filter(|d| !d.is_empty()).map(c).transpose()?;
    if let Err(e) = crate::sys::mount::mount(src.as_deref(), &tgt, fst.as_deref(), flags, dat.as_deref()) {
        return Err(io::Error::new(
            e.kind(),
            format!(
                "mounting {} ({}) on {}: {e}",
                source.unwrap_or("none"),
                fstype.unwrap_or(if flags & libc::MS_BIND != 0 { "bind" } else { "-" }),
                target.display()
            ),
        ));
    }
    Ok(())
}

/// The magic-link path of an O_PATH descriptor: mounting on it mounts on
/// exactly the directory the descriptor was opened on, whatever the guest
/// does to the path afterwards.
pub fn fd_path(fd: &OwnedFd) -> std::path::PathBuf {
    format!("/proc/self/fd/{}", fd.as_raw_fd()).into()
}

/// Step 1 in a new mount namespace: nothing mounted from here on may
/// propagate back to the host. systemd marks every mount shared; a slave
/// mount still receives the host's later mounts but sends nothing back.
pub fn stop_propagation() -> io::Result<()> {
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_SLAVE, None)
}

/// Remounts an existing bind mount read-only (bind mounts ignore MS_RDONLY
/// on the first call).
pub fn remount_readonly(target: &Path, extra: libc::c_ulong) -> io::Result<()> {
    mount(None, target, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | extra, None)
}
