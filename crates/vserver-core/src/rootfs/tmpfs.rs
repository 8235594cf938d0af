//! Fresh, size-limited tmpfs mounts made at every start, before the guest
//! runs: `/run` and `/run/lock` for every guest (stale pid files of the last
//! boot would name live processes of this one: pids repeat in a fresh pid
//! namespace), and `/tmp` for systemd guests (as systemd-nspawn does). A
//! mount point the guest's `fstab` names is left to fstab. Sizes are caps,
//! not reservations; the pages are charged to the guest's memory cgroup.

use std::io;
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount};
use crate::config::FstabEntry;

pub struct FreshTmpfs {
    pub target: &'static str,
    pub options: &'static str,
    pub flags: libc::c_ulong,
}

const NOSUID_NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// systemd's own /run (20% of RAM, 800k inodes).
pub const RUN: FreshTmpfs = FreshTmpfs { target: "/run", options: "mode=0755,size=20%,nr_inodes=800k", flags: NOSUID_NODEV };
/// Debian's /run/lock (5 MiB).
pub const RUN_LOCK: FreshTmpfs = FreshTmpfs { target: "/run/lock", options: "mode=1777,size=5m", flags: NOSUID_NODEV | libc::MS_NOEXEC };
/// systemd-nspawn's /tmp (10% of RAM, 400k inodes).
pub const TMP: FreshTmpfs = FreshTmpfs { target: "/tmp", options: "mode=1777,size=10%,nr_inodes=400k", flags: NOSUID_NODEV };

/// Mounts each of `mounts` (in order: a parent before what is inside it)
/// unless `fstab` has a line for that target. Targets are resolved in the
/// guest root (an old guest's `/run -> /var/run` is its own /var/run).
/// `owner`: host uid and gid of guest root in a user namespace.
pub fn mount_fresh(root: &GuestRoot, mounts: &[&FreshTmpfs], fstab: &[FstabEntry], owner: Option<(u32, u32)>) -> io::Result<()> {
    for m in mounts {
        if fstab.iter().any(|e| e.target == Path::new(m.target)) {
            continue;
        }
        let mut options = m.options.to_string();
        if let Some((uid, gid)) = owner {
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        let dir = root.ensure_dir(Path::new(m.target), Symlinks::InRoot, 0o755)?;
        mount(Some("tmpfs"), &fd_path(&dir), Some("tmpfs"), m.flags, Some(&options))?;
    }
    Ok(())
}
