//! Making a file that equals another: content (sparse-aware, or shared
//! extents with FICLONE) and metadata. Used for store entries of running
//! guests, private copies on --revert, and --reflink.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::hash::Meta;
use crate::sys::file as sys;

/// An unnamed file in `dir` (O_TMPFILE): nothing to clean up if we die.
pub fn tmpfile(dir: BorrowedFd) -> io::Result<OwnedFd> {
    sys::open_at(dir, c".", libc::O_TMPFILE | libc::O_RDWR, 0o600)
}

/// Copies the content of `src` to `dst`, keeping holes as holes.
pub fn copy_content(src: BorrowedFd, dst: BorrowedFd, size: u64) -> io::Result<()> {
    let mut pos = 0i64;
    while (pos as u64) < size {
        let Some(data) = sys::seek(src, pos, libc::SEEK_DATA)? else { break };
        let end = sys::seek(src, data, libc::SEEK_HOLE)?.unwrap_or(size as i64).min(size as i64);
        let (mut so, mut doff) = (data, data);
        while so < end {
            let want = (end - so) as usize;
            let n = sys::copy_range(src, &mut so, dst, &mut doff, want)?;
            if n == 0 {
                return Err(io::Error::other("file shrank while being copied"));
            }
        }
        pos = end;
    }
    sys::ftruncate(dst, size as i64)
}

/// Gives `dst` the owner, mode, xattrs and times of the original. Order
/// matters: chown clears setuid bits and security.capability, so it comes
/// first, then the mode, then the xattrs.
pub fn copy_meta(dst: BorrowedFd, meta: &Meta, st: &libc::stat) -> io::Result<()> {
    sys::fchown(dst, meta.uid, meta.gid)?;
    sys::fchmod(dst, meta.mode)?;
    for (name, value) in &meta.xattrs {
        sys::set_xattr(dst, name, value)?;
    }
    sys::set_times(dst, st)
}

/// Makes `fd`'s metadata equal `want` again after someone changed it.
pub fn restore_meta(fd: BorrowedFd, want: &Meta, have: &Meta) -> io::Result<()> {
    sys::fchown(fd, want.uid, want.gid)?;
    sys::fchmod(fd, want.mode)?;
    for (name, _) in &have.xattrs {
        if !want.xattrs.iter().any(|(n, _)| n == name) {
            sys::remove_xattr(fd, name)?;
        }
    }
    for (name, value) in &want.xattrs {
        sys::set_xattr(fd, name, value)?;
    }
    Ok(())
}

/// A private copy with shared extents where the filesystem can (XFS, btrfs:
/// nearly free), else a real copy.
pub fn private_copy_auto(src: BorrowedFd, st: &libc::stat, dir: BorrowedFd) -> io::Result<OwnedFd> {
    let meta = Meta::read(src, st, false)?;
    let dst = tmpfile(dir)?;
    match sys::ficlone(dst.as_fd(), src) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV | libc::ENOTTY)) => {
            copy_content(src, dst.as_fd(), st.st_size as u64)?
        }
        Err(e) => return Err(e),
    }
    copy_meta(dst.as_fd(), &meta, st)?;
    Ok(dst)
}

/// A full private copy of `src` as an unnamed file in `dir`.
pub fn private_copy(src: BorrowedFd, st: &libc::stat, dir: BorrowedFd, reflink: bool) -> io::Result<OwnedFd> {
    let meta = Meta::read(src, st, false)?;
    let dst = tmpfile(dir)?;
    if reflink {
        sys::ficlone(dst.as_fd(), src)?;
    } else {
        copy_content(src, dst.as_fd(), st.st_size as u64)?;
    }
    copy_meta(dst.as_fd(), &meta, st)?;
    Ok(dst)
}
