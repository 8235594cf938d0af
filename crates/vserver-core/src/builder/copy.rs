//! Copying a guest tree for `build -m clone` (util-vserver's vclone), walked
//! by descriptor like the unifier walks it: every child is opened with
//! openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV) from its
//! parent's descriptor, files first as O_PATH so that a fifo or device is
//! never opened, so a symlink of the source is copied as a symlink and
//! never followed, and a mount point inside the source is not entered.
//!
//! Kept: owners (moved out of the source's user-namespace id range, if it
//! has one), modes, extended attributes, access and modification times,
//! hard links within the tree, sparse files (or shared extents, FICLONE,
//! where the filesystem can). Unified files (store entries) get one more
//! link to the same immutable inode instead of a copy. Not copied: device
//! nodes (a guest's /dev is made afresh at every start and devices outside
//! it cannot be opened from a guest) and sockets (they mean nothing without
//! their process).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::guestfs::{read_dir, readlinkat};
use crate::sys::file as sys;
use crate::unify::{self, ExcludeList};

/// Deeper source trees are refused (each level holds two descriptors).
const MAX_DEPTH: usize = 2000;

/// Maps owner ids of a source tree shifted for a user namespace
/// (`base + n`) back to `n`; ids outside that range stay as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdMap {
    pub from_base: u32,
}

impl IdMap {
    fn map(self, id: u32) -> u32 {
        let range = crate::config::idmap::RANGE;
        if self.from_base != 0 && (self.from_base..self.from_base + range).contains(&id) {
            id - self.from_base
        } else {
            id
        }
    }
}

pub struct CopyRules<'a> {
    pub excludes: ExcludeList,
    /// Directories whose content is left behind (stale run state).
    pub emptied: &'a [&'a str],
    pub ids: IdMap,
}

#[derive(Debug, Default)]
pub struct CopyReport {
    pub files: u64,
    pub unified_links: u64,
    pub devices_skipped: u64,
    pub sockets_skipped: u64,
    /// Mount points (and other filesystems) inside the source, not entered.
    pub mounts_skipped: Vec<String>,
}

/// A tree that could not be copied; the message names the entry (its path
/// in the source, from `/`) and what failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{rel}: the source tree is deeper than {} levels; not cloned", MAX_DEPTH)]
    TooDeep { rel: String },
    #[error("{rel}: {err}")]
    Stat { rel: String, err: io::Error },
    /// `what`: "cannot list", "copying symlink", ...
    #[error("{rel}: {what}: {err}")]
    Entry { rel: String, what: &'static str, err: io::Error },
}

/// A directory being copied: both descriptors, its entries and where we are.
struct Frame {
    src: OwnedFd,
    dst: OwnedFd,
    rel: Vec<u8>,
    entries: Vec<CString>,
    next: usize,
    st: libc::stat,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Copies the tree below `src` into the empty directory `dst`.
pub fn copy_tree(src: OwnedFd, dst: OwnedFd, rules: &mut CopyRules) -> Result<CopyReport, CopyError> {
    // The walk holds a descriptor pair per level.
    crate::sys::raise_fd_limit(Some(2 * MAX_DEPTH as u64 + 64));
    let st = sys::fstat(src.as_fd())?;
    let mut c = Copier { rules, dev: st.st_dev, links: HashMap::new(), report: CopyReport::default(), dst_root: dst.try_clone()? };
    let mut stack = vec![c.frame(src, dst, Vec::new(), st)?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.entries.get(top.next).cloned() else {
            let done = stack.pop().expect("not empty");
            c.finish_dir(&done)?;
            continue;
        };
        top.next += 1;
        let rel = join(&top.rel, name.as_bytes());
        if let Some(sub) = c.entry(top, &name, rel)? {
            if stack.len() >= MAX_DEPTH {
                return Err(CopyError::TooDeep { rel: show(&sub.rel) });
            }
            stack.push(sub);
        }
    }
    Ok(c.report)
}

struct Copier<'r, 'a> {
    rules: &'r mut CopyRules<'a>,
    dev: u64,
    /// Source (dev, ino) of files with several names -> the copy's path.
    links: HashMap<(u64, u64), Vec<u8>>,
    report: CopyReport,
    dst_root: OwnedFd,
}

impl Copier<'_, '_> {
    fn frame(&self, src: OwnedFd, dst: OwnedFd, rel: Vec<u8>, st: libc::stat) -> Result<Frame, CopyError> {
        let entries = if self.rules.emptied.iter().any(|e| e.as_bytes() == rel.as_slice()) {
            Vec::new()
        } else {
            read_dir(src.as_fd()).map_err(|e| failed(&rel, "cannot list", e))?.into_iter().map(|(n, _)| n).collect()
        };
        let xattrs = sys::xattrs(src.as_fd()).map_err(|e| failed(&rel, "extended attributes", e))?;
        Ok(Frame { src, dst, rel, entries, next: 0, st, xattrs })
    }

    /// Copies one entry; a directory comes back as a frame to descend into.
    fn entry(&mut self, dir: &Frame, name: &CStr, rel: Vec<u8>) -> Result<Option<Frame>, CopyError> {
        let st = match sys::fstatat_nofollow(dir.src.as_fd(), name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(err) => return Err(CopyError::Stat { rel: show(&rel), err }),
        };
        if self.rules.excludes.is_excluded(&rel) && !(is_dir(&st) && self.rules.excludes.must_enter(&rel)) {
            return Ok(None);
        }
        let fail = |what, e| failed(&rel, what, e);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => return self.dir(dir, name, rel.clone(), st).map_err(|e| fail("copying directory", e)),
            libc::S_IFREG => self.file(dir, name, &rel, &st).map_err(|e| fail("copying", e))?,
            libc::S_IFLNK => self.symlink(dir, name, &st).map_err(|e| fail("copying symlink", e))?,
            libc::S_IFIFO => self.fifo(dir, name, &st).map_err(|e| fail("making fifo", e))?,
            libc::S_IFSOCK => self.report.sockets_skipped += 1,
            _ => self.report.devices_skipped += 1,
        }
        Ok(None)
    }

    fn dir(&mut self, parent: &Frame, name: &CStr, rel: Vec<u8>, st: libc::stat) -> io::Result<Option<Frame>> {
        if st.st_dev != self.dev {
            self.report.mounts_skipped.push(show(&rel));
            return Ok(None);
        }
        let src = match sys::open_beneath(parent.src.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                self.report.mounts_skipped.push(show(&rel));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let st = sys::fstat(src.as_fd())?;
        if st.st_dev != self.dev {
            self.report.mounts_skipped.push(show(&rel));
            return Ok(None);
        }
        sys::mkdir_at(parent.dst.as_fd(), name, 0o700)?;
        let dst = sys::open_at(parent.dst.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        self.frame(src, dst, rel, st).map(Some).map_err(io::Error::other)
    }

    fn finish_dir(&mut self, f: &Frame) -> Result<(), CopyError> {
        let apply = || -> io::Result<()> {
            sys::fchown(f.dst.as_fd(), self.rules.ids.map(f.st.st_uid), self.rules.ids.map(f.st.st_gid))?;
            sys::fchmod(f.dst.as_fd(), f.st.st_mode & 0o7777)?;
            for (n, v) in &f.xattrs {
                sys::set_xattr(f.dst.as_fd(), n, v)?;
            }
            sys::set_times(f.dst.as_fd(), &f.st)
        };
        apply().map_err(|e| failed(&f.rel, "owner, mode, xattrs or times", e))
    }

    fn file(&mut self, dir: &Frame, name: &CStr, rel: &[u8], seen: &libc::stat) -> io::Result<()> {
        // O_PATH first: whatever the name is now, opening it has no effect.
        let path_fd = sys::open_beneath(dir.src.as_fd(), name, libc::O_PATH)?;
        let st = sys::fstat(path_fd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino) {
            return Err(io::Error::other("changed while being copied"));
        }
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                if link_at(self.dst_root.as_fd(), first, dir.dst.as_fd(), name).is_ok() {
                    return Ok(());
                }
            }
        }
        let src = reopen(path_fd.as_fd())?;
        let dst = sys::open_at(dir.dst.as_fd(), name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
        copy_data(src.as_fd(), dst.as_fd(), st.st_size as u64)?;
        sys::fchown(dst.as_fd(), self.rules.ids.map(st.st_uid), self.rules.ids.map(st.st_gid))?;
        sys::fchmod(dst.as_fd(), st.st_mode & 0o7777)?;
        for (n, v) in sys::xattrs(src.as_fd())? {
            sys::set_xattr(dst.as_fd(), &n, &v)?;
        }
        sys::set_times(dst.as_fd(), &st)?;
        self.report.files += 1;
        if st.st_nlink > 1 {
            self.links.insert((st.st_dev, st.st_ino), rel.to_vec());
        }
        Ok(())
    }

    fn symlink(&mut self, dir: &Frame, name: &CStr, st: &libc::stat) -> io::Result<()> {
        let target = readlinkat(dir.src.as_fd(), name)?;
        let target = sys::cstr(target.as_os_str().as_encoded_bytes())?;
        sys::symlink_at(&target, dir.dst.as_fd(), name)?;
        self.own_and_time(dir.dst.as_fd(), name, st)
    }

    fn fifo(&mut self, dir: &Frame, name: &CStr, st: &libc::stat) -> io::Result<()> {
        sys::mkfifo_at(dir.dst.as_fd(), name, 0o600)?;
        self.own_and_time(dir.dst.as_fd(), name, st)?;
        sys::chmod_at(dir.dst.as_fd(), name, st.st_mode & 0o7777, 0)
    }

    /// Owner and times of an entry of the copy that is not opened (symlink, fifo).
    fn own_and_time(&self, dir: BorrowedFd, name: &CStr, st: &libc::stat) -> io::Result<()> {
        let (uid, gid) = (self.rules.ids.map(st.st_uid), self.rules.ids.map(st.st_gid));
        // AT_SYMLINK_NOFOLLOW: the entry itself.
        sys::chown_at(dir, name, uid, gid, libc::AT_SYMLINK_NOFOLLOW)?;
        let times = [
            libc::timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec },
            libc::timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec },
        ];
        sys::set_times_at(dir, name, &times, libc::AT_SYMLINK_NOFOLLOW)
    }
}

/// Opens the regular file an O_PATH descriptor holds for reading. A lease a
/// guest holds makes the non-blocking open fail; then it waits (at most the
/// kernel's lease-break time) for the lease to go.
fn reopen(path_fd: BorrowedFd) -> io::Result<OwnedFd> {
    match sys::reopen_read(path_fd) {
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            std::fs::File::open(format!("/proc/self/fd/{}", path_fd.as_raw_fd())).map(OwnedFd::from)
        }
        other => other,
    }
}

/// Shared extents where the filesystem can, else a sparse copy; across
/// filesystems copy_file_range may refuse, then plain reads and writes.
fn copy_data(src: BorrowedFd, dst: BorrowedFd, size: u64) -> io::Result<()> {
    if size > 0 && sys::ficlone(dst, src).is_ok() {
        return Ok(());
    }
    match unify::copy::copy_content(src, dst, size) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS)) => {
            sys::ftruncate(dst, 0)?;
            copy_by_reads(src, dst, size)
        }
        other => other,
    }
}

fn copy_by_reads(src: BorrowedFd, dst: BorrowedFd, size: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0i64;
    while (off as u64) < size {
        let n = nix::sys::uio::pread(src, &mut buf, off)?;
        if n == 0 {
            break;
        }
        let mut done = 0usize;
        while done < n {
            done += nix::sys::uio::pwrite(dst, &buf[done..n], off + done as i64)?;
        }
        off += n as i64;
    }
    sys::ftruncate(dst, size as i64)
}

fn link_at(root: BorrowedFd, rel: &[u8], dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    let old = sys::cstr(rel)?;
    // `rel` lies in the copy, which only we write to, and passes only
    // through directories we made.
    sys::link_at(root, &old, dir, name, 0)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn failed(rel: &[u8], what: &'static str, err: io::Error) -> CopyError {
    CopyError::Entry { rel: show(rel), what, err }
}

fn show(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}
