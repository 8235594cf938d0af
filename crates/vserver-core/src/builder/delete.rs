//! `vserver NAME delete`: removes a stopped guest's root and configuration.
//! Unified files are immutable hard links shared with the hash store; the
//! guest's link is removed and the flag restored on the shared inode, so the
//! other guests' copies stay protected.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::paths::Paths;
use crate::unify::sys;
use crate::runstate;

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
    if !sys::is_immutable(f.as_fd())? {
        return fs::remove_file(path);
    }
    sys::set_immutable(f.as_fd(), false)?;
    let result = fs::remove_file(path);
    // The inode lives on in the hash store and the other guests: protect it again.
    sys::set_immutable(f.as_fd(), true)?;
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
