//! `/sys/fs/cgroup` of a systemd guest: a writable cgroup2 mount made from
//! inside the guest's cgroup namespace, whose root is the guest's payload
//! cgroup (on hybrid hosts: the cgroup2 hierarchy; systemd then runs in
//! unified mode without controllers). The guest may make sub-cgroups and
//! write payload's own files, but everything stays bounded by
//! `vserver/NAME`, which is outside the namespace and not visible.

use std::io;
use std::path::Path;

use super::resolve::{GuestRoot, Symlinks};
use super::{fd_path, mount};

/// After the cgroup namespace exists and /sys is mounted (read-only): the
/// mount on top of it is the guest's own cgroup tree.
pub fn mount_delegated(root: &GuestRoot) -> io::Result<()> {
    let dir = root.ensure_dir(Path::new("sys/fs/cgroup"), Symlinks::Refuse, 0o755)?;
    mount(Some("cgroup2"), &fd_path(&dir), Some("cgroup2"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
}
