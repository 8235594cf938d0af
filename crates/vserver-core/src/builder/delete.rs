//! `vserver NAME delete`: removes a stopped guest's root and configuration.
//! Unified files are immutable hard links shared with the hash store; the
//! guest's link is removed and the flag restored on the shared inode, so the
//! other guests' copies stay protected.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::paths::Paths;
use crate::runstate;

const FS_IMMUTABLE_FL: libc::c_long = 0x10;

pub fn delete_guest(paths: &Paths, name: &str) -> Result<()> {
    if runstate::is_running(paths, name) {
        bail!("guest {name:?} is running; stop it first");
    }
    let vdir = crate::config::load_guest(paths, name).map(|g| g.vdir).unwrap_or_else(|_| paths.default_vdir(name));
    remove_tree(&vdir).with_context(|| format!("removing {}", vdir.display()))?;
    remove_tree(&paths.guest_confdir(name)).with_context(|| format!("removing {}", paths.guest_confdir(name).display()))?;
    let _ = fs::remove_dir_all(paths.guest_rundir(name));
    Ok(())
}

/// Removes a tree without following symlinks; immutable files (unified
/// ones) are unlinked with the flag cleared just for the unlink.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.is_dir() {
        return remove_file(path);
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        } else {
            remove_file(&entry.path())?;
        }
    }
    fs::remove_dir(path)
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => unlink_immutable(path),
        other => other,
    }
}

fn unlink_immutable(path: &Path) -> io::Result<()> {
    let f = fs::OpenOptions::new().read(true).custom_flags_nofollow().open(path)?;
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write a long we own.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if flags & FS_IMMUTABLE_FL == 0 {
        return fs::remove_file(path);
    }
    let cleared = flags & !FS_IMMUTABLE_FL;
    // SAFETY: as above.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &cleared) };
    let result = fs::remove_file(path);
    // The inode lives on in the hash store and the other guests: protect it again.
    // SAFETY: as above.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) };
    result
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NOFOLLOW)
    }
}
