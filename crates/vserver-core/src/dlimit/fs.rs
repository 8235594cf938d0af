//! The filesystem a disk limit is on: its type, device and mount point
//! (from /proc/self/mountinfo, matched by device number), and whether it
//! counts and enforces project quotas. What to do when it does not is part
//! of the answer, since the admin has to do it.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::sys::quota;

pub const EXT4_MAGIC: i64 = 0xEF53;
pub const XFS_MAGIC: i64 = 0x5846_5342;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// ext4, xfs, tmpfs, ... (from mountinfo).
    pub fstype: String,
    /// The mount source: /dev/sda1, /dev/loop3, ...
    pub source: String,
    pub mount_point: PathBuf,
    pub magic: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaState {
    /// Project usage is counted and limits are enforced.
    Enforced,
    /// Counted, but limits would not be enforced.
    AccountingOnly,
    /// No project quota on this filesystem.
    Off,
}

impl Filesystem {
    /// The filesystem `path` is on.
    pub fn of(path: &Path) -> io::Result<Filesystem> {
        let meta = std::fs::metadata(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        // The field's type differs between libcs.
        #[allow(clippy::unnecessary_cast)]
        let magic = nix::sys::statfs::statfs(path).map(|s| s.filesystem_type().0 as i64).unwrap_or(0);
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        // The last matching line is the mount on top.
        let found = text.lines().rev().find_map(|l| parse_mountinfo(l).filter(|m| m.0 == (major, minor)));
        match found {
            Some((_, mount_point, fstype, source)) => Ok(Filesystem { fstype, source, mount_point, magic }),
            None => Ok(Filesystem {
                fstype: format!("filesystem 0x{magic:x}"),
                source: format!("device {major}:{minor}"),
                mount_point: path.to_path_buf(),
                magic,
            }),
        }
    }

    pub fn describe(&self) -> String {
        format!("{} ({} on {})", self.mount_point.display(), self.fstype, self.source)
    }

    /// What the admin must do so that project quotas are enforced here.
    pub fn how_to_enable(&self) -> String {
        let mp = self.mount_point.display();
        match self.magic {
            EXT4_MAGIC => format!(
                "ext4 needs the project and quota features and the prjquota mount option: unmount it, run \
                 `tune2fs -O project,quota -Q prjquota {src}` (the inodes must be 256 bytes or larger), and \
                 mount it with `-o prjquota` (add prjquota to its options in /etc/fstab); the kernel needs \
                 CONFIG_QUOTA and CONFIG_QFMT_V2 (Debian's has them)",
                src = self.source
            ),
            XFS_MAGIC => format!(
                "XFS turns project quotas on only at mount time: add prjquota to the options of {mp} in \
                 /etc/fstab and mount it again (a remount is not enough); the kernel needs CONFIG_XFS_QUOTA"
            ),
            _ => format!(
                "{} has no project quotas: put the guest on ext4 (with `tune2fs -O project,quota -Q prjquota`) \
                 or XFS (mounted with prjquota)",
                self.fstype
            ),
        }
    }
}

/// (device, mount point, fstype, source) of one mountinfo line.
fn parse_mountinfo(line: &str) -> Option<((u32, u32), PathBuf, String, String)> {
    let (left, right) = line.split_once(" - ")?;
    let f: Vec<&str> = left.split(' ').collect();
    let (maj, min) = f.get(2)?.split_once(':')?;
    let mount_point = PathBuf::from(unescape(f.get(4)?));
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape(r.next()?);
    Some(((maj.parse().ok()?, min.parse().ok()?), mount_point, fstype, source))
}

/// mountinfo writes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the filesystem `path` is on counts and enforces project quotas.
pub fn quota_state(path: &Path) -> io::Result<QuotaState> {
    let f = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    match quota::project_quota_flags(f.as_fd()) {
        Ok(flags) if flags & quota::FS_QUOTA_PDQ_ENFD != 0 => Ok(QuotaState::Enforced),
        Ok(flags) if flags & quota::FS_QUOTA_PDQ_ACCT != 0 => Ok(QuotaState::AccountingOnly),
        Ok(_) => Ok(QuotaState::Off),
        // No quota support on this filesystem (or in this kernel) at all.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS)
                    | Some(libc::ENOTTY)
                    | Some(libc::EINVAL)
                    | Some(libc::ENOENT)
                    | Some(libc::ESRCH)
                    | Some(libc::EOPNOTSUPP)
            ) =>
        {
            Ok(QuotaState::Off)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse() {
        let l = "36 35 8:1 / /vservers\\040x rw,relatime shared:1 - ext4 /dev/sda1 rw,prjquota";
        assert_eq!(parse_mountinfo(l), Some(((8, 1), PathBuf::from("/vservers x"), "ext4".into(), "/dev/sda1".into())));
        assert_eq!(parse_mountinfo("garbage"), None);
    }

    #[test]
    fn the_root_filesystem_is_found() {
        let fs = Filesystem::of(Path::new("/")).unwrap();
        assert_eq!(fs.mount_point, PathBuf::from("/"), "{fs:?}");
        assert!(!fs.fstype.is_empty());
    }

    #[test]
    fn remedies_name_the_device() {
        let fs = Filesystem { fstype: "ext4".into(), source: "/dev/sdb1".into(), mount_point: "/vservers".into(), magic: EXT4_MAGIC };
        assert!(fs.how_to_enable().contains("tune2fs -O project,quota -Q prjquota /dev/sdb1"));
        let fs = Filesystem { magic: XFS_MAGIC, fstype: "xfs".into(), ..fs };
        assert!(fs.how_to_enable().contains("prjquota"));
        let fs = Filesystem { magic: 0x0102_1994, fstype: "tmpfs".into(), ..fs };
        assert!(fs.how_to_enable().starts_with("tmpfs has no project quotas"));
    }
}
