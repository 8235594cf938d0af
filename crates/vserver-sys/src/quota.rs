//! Project quotas and the project id attributes of files (FS_IOC_FSGETXATTR).
//!
//! The raw calls disk limits are made of: project ids on inodes
//! (FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR) and project quotas
//! (quotactl_fd(2), Linux 5.14, which takes a descriptor of any file on the
//! filesystem instead of the name of its block device).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::check;

/// `struct fsxattr` of <linux/fs.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct FsXattr {
    pub xflags: u32,
    pub extsize: u32,
    pub nextents: u32,
    pub projid: u32,
    pub cowextsize: u32,
    pub pad: [u8; 8],
}

/// New files and directories take the directory's project id.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

/// The project id and xflags of a file (FS_IOC_FSGETXATTR).
pub fn get_xattr(fd: BorrowedFd) -> io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: the ioctl fills a struct fsxattr we own.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x as *mut FsXattr) })?;
    Ok(x)
}

/// Sets the project id and xflags of a file (FS_IOC_FSSETXATTR).
pub fn set_xattr(fd: BorrowedFd, x: &FsXattr) -> io::Result<()> {
    // SAFETY: the ioctl reads a struct fsxattr we own.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR, x as *const FsXattr) })?;
    Ok(())
}

/// `struct if_dqblk` of <linux/quota.h>: block figures in 1024-byte units
/// (QIF_DQBLKSIZE), except `curspace`, which is in bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DqBlk {
    pub bhardlimit: u64,
    pub bsoftlimit: u64,
    pub curspace: u64,
    pub ihardlimit: u64,
    pub isoftlimit: u64,
    pub curinodes: u64,
    pub btime: u64,
    pub itime: u64,
    pub valid: u32,
}

/// `struct fs_quota_stat` (Q_XGETQSTAT): only the flags are used.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FsQuotaStat {
    version: i8,
    flags: u16,
    pad: i8,
    rest: [u64; 9],
}

pub const QIF_BLIMITS: u32 = 1;
pub const QIF_ILIMITS: u32 = 4;
const PRJQUOTA: u32 = 2;
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;
const Q_XGETQSTAT: u32 = (b'X' as u32) << 8 | 5;
/// Project quota usage is counted / limits are enforced (fs_quota_stat flags).
pub const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
pub const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;

fn qcmd(cmd: u32) -> u32 {
    (cmd << 8) | PRJQUOTA
}

/// quotactl_fd(2). Private: `addr` must point to the struct `cmd` reads or
/// writes, which only the three callers below know.
fn quotactl_fd(fd: BorrowedFd, cmd: u32, id: u32, addr: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: quotactl_fd with a live descriptor and a buffer of the size
    // the command expects (the callers pass their own structs).
    check(unsafe { libc::syscall(libc::SYS_quotactl_fd, fd.as_raw_fd(), cmd, id, addr) })?;
    Ok(())
}

/// The project quota state flags of the filesystem `fd` is on.
pub fn project_quota_flags(fd: BorrowedFd) -> io::Result<u16> {
    let mut st = FsQuotaStat::default();
    // Q_XGETQSTAT's type argument is ignored; the state covers all types.
    quotactl_fd(fd, (Q_XGETQSTAT << 8) | PRJQUOTA, 0, (&mut st as *mut FsQuotaStat).cast())?;
    Ok(st.flags)
}

/// The usage and limits of project `id` on the filesystem `fd` is on (Q_GETQUOTA).
pub fn get_project(fd: BorrowedFd, id: u32) -> io::Result<DqBlk> {
    let mut q = DqBlk::default();
    quotactl_fd(fd, qcmd(Q_GETQUOTA), id, (&mut q as *mut DqBlk).cast())?;
    Ok(q)
}

/// Sets the block and inode limits of project `id` (Q_SETQUOTA).
pub fn set_project_limits(fd: BorrowedFd, id: u32, limits: &DqBlk) -> io::Result<()> {
    let mut q = *limits;
    q.valid = QIF_BLIMITS | QIF_ILIMITS;
    quotactl_fd(fd, qcmd(Q_SETQUOTA), id, (&mut q as *mut DqBlk).cast())
}
