//! Per-guest disk limits (the paper's context disk limits, util-vserver's
//! `dlimits/`) as project quotas: the guest's tree carries its xid as
//! project id (inherited by everything created in it), and the filesystem's
//! project quota for that id holds the limits. ext4 needs the `project` and
//! `quota` features and the `prjquota` mount option, XFS the `prjquota`
//! mount option. A guest that reaches its limit gets EDQUOT; the host and
//! other guests are not affected.
//!
//! util-vserver's `reserved` (a share of the space only root could use) has
//! no counterpart in project quotas, which know no users: it becomes the
//! quota's soft limit, `space_total * (100 - reserved) / 100` (and the same
//! share of the inodes), which quota tools report as exceeded; the hard
//! limit is `space_total` for everyone, guest root included.
//!
//! Entry points: [`preflight`] refuses a start that cannot be limited (the
//! filesystem lacks project quota), [`apply`] tags the tree (the first time)
//! and sets the limits, [`usage`] reads usage and limits back for
//! `vdlimit`, `vlimit --stats` and `vserver-stat`.

pub mod fs;
pub mod probe;
pub mod tag;

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::dlimits::{self, DiskLimit};
use crate::config::Guest;
use crate::sys::quota::{self, DqBlk};
pub use fs::{Filesystem, QuotaState};

/// Checks, before anything changes, that every disk limit of the guest can
/// be enforced: the directory exists, is on the guest root's filesystem, and
/// that filesystem enforces project quotas. The error names the guest, the
/// entry, the filesystem and what to change.
pub fn preflight(guest: &Guest) -> Result<Vec<DiskLimit>, DiskLimitError> {
    let limits = dlimits::load(&guest.confdir)?;
    for limit in &limits {
        check_one(guest, limit)?;
    }
    Ok(limits)
}

fn check_one(guest: &Guest, limit: &DiskLimit) -> Result<(), DiskLimitError> {
    let which = || format!("guest {:?}: disk limit {}", guest.name, limit.entry.display());
    let stat = |what: String, path: &Path| {
        std::fs::metadata(path).map_err(|err| DiskLimitError::Stat { limit: which(), what: format!("{what} {}", path.display()), err })
    };
    let dir_meta = stat("directory".into(), &limit.directory)?;
    let root_meta = stat("the guest root".into(), &guest.vdir)?;
    if dir_meta.dev() != root_meta.dev() {
        return Err(DiskLimitError::NotOnRootFilesystem { limit: which(), root: guest.vdir.clone(), dir: limit.directory.clone() });
    }
    let fs = Filesystem::of(&limit.directory).map_err(DiskLimitError::Filesystem)?;
    let state = fs::quota_state(&limit.directory).map_err(|err| DiskLimitError::QuotaState { limit: which(), fs: fs.describe(), err })?;
    match state {
        QuotaState::Enforced => Ok(()),
        QuotaState::AccountingOnly => {
            Err(DiskLimitError::NotEnforced { limit: which(), fs: fs.describe(), mount_point: fs.mount_point.clone() })
        }
        QuotaState::Off => Err(DiskLimitError::NoQuota { limit: which(), fs: fs.describe(), how: fs.how_to_enable() }),
    }
}

/// A disk limit that cannot be enforced or set, or its usage not read;
/// each names the guest and the `dlimits/` entry, the filesystem and what
/// to change.
#[derive(Debug, thiserror::Error)]
pub enum DiskLimitError {
    #[error(transparent)]
    Config(#[from] crate::conffile::ConfigError),
    #[error("{limit}: {what}: {err}")]
    Stat { limit: String, what: String, err: io::Error },
    #[error(
        "{limit}: the guest root {} is not on the filesystem of {} (the limit counts the guest's files on that filesystem)",
        root.display(),
        dir.display()
    )]
    NotOnRootFilesystem { limit: String, root: PathBuf, dir: PathBuf },
    /// Finding the filesystem of the directory (the message names it).
    #[error("{0}")]
    Filesystem(io::Error),
    #[error("{limit}: asking {fs} for its quota state: {err}")]
    QuotaState { limit: String, fs: String, err: io::Error },
    #[error(
        "{limit}: {fs} counts project quotas but does not enforce them: mount it with prjquota (or run `quotaon -P {}`)",
        mount_point.display()
    )]
    NotEnforced { limit: String, fs: String, mount_point: PathBuf },
    #[error("{limit}: {fs} has no project quota, so the limit could not be enforced; {how}")]
    NoQuota { limit: String, fs: String, how: String },
    /// Reading whether the tree is tagged (the message names it).
    #[error("{0}")]
    Tagged(io::Error),
    #[error("guest {guest:?}: tagging {} with project id {xid}: {err}", root.display())]
    Tag { guest: String, root: PathBuf, xid: u32, err: io::Error },
    #[error("guest {guest:?}: setting disk limit {}: {err}", entry.display())]
    Set { guest: String, entry: PathBuf, err: io::Error },
    #[error("reading the disk usage of project {xid} on {}: {err}", dir.display())]
    Usage { xid: u32, dir: PathBuf, err: io::Error },
}

/// Tags the guest's tree with its xid (a full walk only when its top is not
/// tagged yet) and sets every limit. Call after [`preflight`].
pub fn apply(guest: &Guest, limits: &[DiskLimit]) -> Result<(), DiskLimitError> {
    if limits.is_empty() {
        return Ok(());
    }
    if !tag::is_tagged(&guest.vdir, guest.xid).map_err(DiskLimitError::Tagged)? {
        tag::tag_tree(&guest.vdir, guest.xid).map_err(|err| DiskLimitError::Tag {
            guest: guest.name.clone(),
            root: guest.vdir.clone(),
            xid: guest.xid,
            err,
        })?;
    }
    for limit in limits {
        set_limits(&limit.directory, guest.xid, &Limits::from_config(limit)).map_err(|err| DiskLimitError::Set {
            guest: guest.name.clone(),
            entry: limit.entry.clone(),
            err,
        })?;
    }
    Ok(())
}

/// Limits in util-vserver's units (KiB, inodes, percent); `None`: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub space_total_kib: Option<u64>,
    pub inodes_total: Option<u64>,
    pub reserved_percent: u8,
}

impl Limits {
    pub fn from_config(l: &DiskLimit) -> Limits {
        Limits { space_total_kib: l.space_total_kib, inodes_total: l.inodes_total, reserved_percent: l.reserved_percent }
    }

    fn to_dqblk(self) -> DqBlk {
        let soft = |hard: Option<u64>| match (hard, self.reserved_percent) {
            (Some(h), r) if r > 0 => h * (100 - r as u64) / 100,
            _ => 0,
        };
        DqBlk {
            bhardlimit: self.space_total_kib.unwrap_or(0),
            bsoftlimit: soft(self.space_total_kib),
            ihardlimit: self.inodes_total.unwrap_or(0),
            isoftlimit: soft(self.inodes_total),
            ..Default::default()
        }
    }
}

/// Sets project `id`'s limits on the filesystem `on` is on.
pub fn set_limits(on: &Path, id: u32, limits: &Limits) -> io::Result<()> {
    let f = File::open(on).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", on.display())))?;
    quota::set_project_limits(f.as_fd(), id, &limits.to_dqblk()).map_err(|e| explain(on, e))
}

/// The kernel says ESRCH (or ENOSYS, EINVAL) when a filesystem has no
/// project quota turned on: say which filesystem, and what to do.
fn explain(on: &Path, e: io::Error) -> io::Error {
    if !matches!(e.raw_os_error(), Some(libc::ESRCH) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::ENOTTY)) {
        return e;
    }
    match Filesystem::of(on) {
        Ok(fs) => io::Error::new(e.kind(), format!("{} has no project quota turned on ({e}); {}", fs.describe(), fs.how_to_enable())),
        Err(_) => e,
    }
}

/// Usage and limits of one project on one filesystem, for people and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// The configured directory (or the path asked about).
    pub directory: PathBuf,
    pub mount_point: PathBuf,
    pub project_id: u32,
    pub space_used_bytes: u64,
    /// Hard limit; `None` when unlimited.
    pub space_limit_bytes: Option<u64>,
    pub space_soft_limit_bytes: Option<u64>,
    pub inodes_used: u64,
    pub inodes_limit: Option<u64>,
    pub inodes_soft_limit: Option<u64>,
}

impl DiskUsage {
    /// util-vserver's `reserved`, read back from the soft limit.
    pub fn reserved_percent(&self) -> u64 {
        match (self.space_limit_bytes, self.space_soft_limit_bytes) {
            // Rounded: the soft limit was rounded down from a whole percentage.
            (Some(h), Some(s)) if h > 0 && s <= h => 100 - (s * 100 + h / 2) / h,
            _ => 0,
        }
    }
}

/// Reads project `id`'s usage and limits on the filesystem of `on`.
pub fn read_usage(on: &Path, id: u32) -> io::Result<DiskUsage> {
    let f = File::open(on).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", on.display())))?;
    let q = quota::get_project(f.as_fd(), id).map_err(|e| explain(on, e))?;
    let limit = |v: u64, unit: u64| (v > 0).then_some(v * unit);
    Ok(DiskUsage {
        directory: on.to_path_buf(),
        mount_point: Filesystem::of(on)?.mount_point,
        project_id: id,
        space_used_bytes: q.curspace,
        space_limit_bytes: limit(q.bhardlimit, 1024),
        space_soft_limit_bytes: limit(q.bsoftlimit, 1024),
        inodes_used: q.curinodes,
        inodes_limit: limit(q.ihardlimit, 1),
        inodes_soft_limit: limit(q.isoftlimit, 1),
    })
}

/// Usage and limits of every configured disk limit of a guest (none when
/// it has no `dlimits/`). This is what `vlimit --stats` and `vserver-stat`
/// show.
pub fn usage(guest_confdir: &Path, xid: u32) -> Result<Vec<DiskUsage>, DiskLimitError> {
    let limits = dlimits::load(guest_confdir)?;
    limits
        .iter()
        .map(|l| read_usage(&l.directory, xid).map_err(|err| DiskLimitError::Usage { xid, dir: l.directory.clone(), err }))
        .collect()
}

/// The lines `vlimit --stats` prints for a guest's disk limits.
pub fn stats_lines(usage: &[DiskUsage]) -> String {
    let mut out = String::new();
    for u in usage {
        let lim = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "disk {}: {} of {} bytes, {} of {} inodes (soft limits {} bytes, {} inodes)\n",
            u.mount_point.display(),
            u.space_used_bytes,
            lim(u.space_limit_bytes),
            u.inodes_used,
            lim(u.inodes_limit),
            lim(u.space_soft_limit_bytes),
            lim(u.inodes_soft_limit),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_becomes_the_soft_limit() {
        let l = Limits { space_total_kib: Some(1000), inodes_total: Some(200), reserved_percent: 5 };
        let q = l.to_dqblk();
        assert_eq!((q.bhardlimit, q.bsoftlimit, q.ihardlimit, q.isoftlimit), (1000, 950, 200, 190));
        let q = Limits { space_total_kib: None, inodes_total: Some(10), reserved_percent: 0 }.to_dqblk();
        assert_eq!((q.bhardlimit, q.bsoftlimit, q.ihardlimit, q.isoftlimit), (0, 0, 10, 0));
        let u = DiskUsage {
            directory: "/".into(),
            mount_point: "/".into(),
            project_id: 1,
            space_used_bytes: 0,
            space_limit_bytes: Some(8192 * 1024),
            space_soft_limit_bytes: Some(7782 * 1024),
            inodes_used: 0,
            inodes_limit: None,
            inodes_soft_limit: None,
        };
        assert_eq!(u.reserved_percent(), 5);
    }
}
