//! Applying the guest's `fstab` inside its root. Targets are resolved with
//! openat2 confined to the guest root (a guest symlink such as
//! `/mnt -> /etc` means the guest's /etc, never the host's) and mounted
//! through the resulting descriptor.

use std::io;
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount, remount_readonly};
use crate::config::FstabEntry;

/// Filesystems vserver-rs mounts itself (fresh, masked); fstab lines for them,
/// as util-vserver's default fstab has, are skipped.
const MANAGED: &[(&str, &str)] = &[("proc", "/proc"), ("sysfs", "/sys"), ("devpts", "/dev/pts")];

pub fn is_managed(entry: &FstabEntry) -> bool {
    MANAGED.iter().any(|(t, p)| entry.fstype == *t && entry.target == Path::new(p))
}

pub fn apply(root: &GuestRoot, entries: &[FstabEntry]) -> io::Result<()> {
    for entry in entries.iter().filter(|e| !is_managed(e)) {
        apply_one(root, entry)?;
    }
    Ok(())
}

fn apply_one(root: &GuestRoot, e: &FstabEntry) -> io::Result<()> {
    if e.is_bind() {
        // The source is a host path the admin named; only the target is the guest's.
        let source_is_dir = std::fs::metadata(&e.source)
            .map_err(|err| io::Error::new(err.kind(), format!("fstab bind source {}: {err}", e.source)))?
            .is_dir();
        let target = if source_is_dir {
            root.ensure_dir(&e.target, Symlinks::InRoot, 0o755)?
        } else {
            root.ensure_file(&e.target, Symlinks::InRoot)?
        };
        let path = fd_path(&target);
        mount(Some(&e.source), &path, None, libc::MS_BIND | (e.flags & libc::MS_REC), None)?;
        let restrict = e.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if restrict != 0 {
            // A fresh descriptor: the old one points below the new mount.
            let mounted = if source_is_dir {
                root.ensure_dir(&e.target, Symlinks::InRoot, 0o755)?
            } else {
                root.ensure_file(&e.target, Symlinks::InRoot)?
            };
            remount_readonly_or(&fd_path(&mounted), restrict)?;
        }
        return Ok(());
    }
    let target = root.ensure_dir(&e.target, Symlinks::InRoot, 0o755)?;
    mount(Some(&e.source), &fd_path(&target), Some(&e.fstype), e.flags, Some(&e.data))
}

fn remount_readonly_or(path: &Path, restrict: libc::c_ulong) -> io::Result<()> {
    if restrict & libc::MS_RDONLY != 0 {
        remount_readonly(path, restrict & !libc::MS_RDONLY)
    } else {
        mount(None, path, None, libc::MS_BIND | libc::MS_REMOUNT | restrict, None)
    }
}
