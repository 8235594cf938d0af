//! Finding the file a guest task's path names, as the task itself would:
//! from its own root (`/proc/TID/root`), its working directory or the
//! directory descriptor it passed, following its symlinks but never out of
//! its root (openat2 RESOLVE_IN_ROOT / RESOLVE_BENEATH, no /proc magic
//! links). Every descriptor is O_PATH: nothing is opened for real.
//!
//! The guest may change its tree at any moment, so what is found here is a
//! guess at what the kernel will find when the call runs. That is enough:
//! a wrong guess costs at most a link broken that need not have been (in the
//! task's own tree), or a call the kernel then refuses with EPERM.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Symlinks followed for one path at most (the kernel's limit).
const MAX_LINKS: usize = 40;

/// A guest task whose paths are resolved: its root directory.
pub struct Task {
    pub tid: i32,
    root: OwnedFd,
}

/// A regular file found: its directory, its name there, its status.
pub struct Found {
    pub parent: OwnedFd,
    pub name: CString,
    pub stx: libc::statx,
}

enum Base {
    Root,
    Dir(OwnedFd),
}

impl Task {
    pub fn open(tid: i32) -> io::Result<Task> {
        Ok(Task { tid, root: open_proc(tid, "root")? })
    }

    /// The device and inode of the task's root (to know it again).
    pub fn root_id(&self) -> io::Result<(u64, u64)> {
        let st = crate::sys::file::fstat(self.root.as_fd())?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Opens a file of the task's tree for reading (as the task would
    /// resolve its absolute path; never a device or fifo).
    pub fn open_in_root(&self, path: &[u8]) -> io::Result<std::fs::File> {
        let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = crate::sys::file::open_in_root(self.root.as_fd(), &c, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)?;
        if crate::sys::file::fstat(fd.as_fd())?.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(std::fs::File::from(fd))
    }

    /// The names in a directory of the task's tree.
    pub fn list_dir(&self, path: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let c = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = crate::sys::file::open_in_root(self.root.as_fd(), &c, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let dir = nix::dir::Dir::from_fd(fd.into_raw_fd()).map_err(io::Error::from)?;
        Ok(dir.into_iter().flatten().map(|e| e.file_name().to_bytes().to_vec()).filter(|n| n != b"." && n != b"..").collect())
    }

    /// Where a relative path starts: the working directory or the
    /// directory descriptor (of this task: /proc/TID/fd/N).
    fn start(&self, dirfd: i32) -> io::Result<OwnedFd> {
        if dirfd == libc::AT_FDCWD {
            open_proc(self.tid, "cwd")
        } else if dirfd >= 0 {
            open_proc(self.tid, &format!("fd/{dirfd}"))
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }

    /// The regular file `path` names, or None (no such file, not a regular
    /// file, or a resolution we cannot repeat faithfully).
    pub fn find(&self, dirfd: i32, path: &[u8], follow: bool) -> io::Result<Option<Found>> {
        if path.is_empty() || path.ends_with(b"/") {
            return Ok(None); // a descriptor call (AT_EMPTY_PATH), or a directory
        }
        let (mut base, mut rest) =
            if path[0] == b'/' { (Base::Root, path.to_vec()) } else { (Base::Dir(self.start(dirfd)?), path.to_vec()) };
        for _ in 0..=MAX_LINKS {
            let (dir, last) = split_last(&rest);
            if last.is_empty() || last == b"." || last == b".." {
                return Ok(None);
            }
            let Some(parent) = self.open_dir(&base, dir)? else { return Ok(None) };
            let name = CString::new(last).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let stx = match statx(parent.as_fd(), &name) {
                Ok(s) => s,
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            match u32::from(stx.stx_mode) & libc::S_IFMT {
                libc::S_IFREG => return Ok(Some(Found { parent, name, stx })),
                libc::S_IFLNK if follow => {
                    let target = readlink(parent.as_fd(), &name)?;
                    base = if target.starts_with(b"/") { Base::Root } else { Base::Dir(parent) };
                    rest = target;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Opens directory `rel` of `base` as the task would reach it.
    fn open_dir(&self, base: &Base, rel: &[u8]) -> io::Result<Option<OwnedFd>> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let dir = match base {
            Base::Root => return quiet(openat2(self.root.as_fd(), rel, IN_ROOT)),
            Base::Dir(d) => d,
        };
        if same_inode(dir.as_fd(), self.root.as_fd())? {
            return quiet(openat2(self.root.as_fd(), rel, IN_ROOT));
        }
        match openat2(dir.as_fd(), rel, BENEATH) {
            // Climbs above its start (`..`, an absolute symlink): start again
            // from the root with the start directory's own path in front.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => match self.path_of(dir.as_fd())? {
                Some(mut p) => {
                    p.push(b'/');
                    p.extend_from_slice(rel);
                    quiet(openat2(self.root.as_fd(), &p, IN_ROOT))
                }
                None => Ok(None),
            },
            other => quiet(other),
        }
    }

    /// The path of `dir` below the task's root, checked by resolving it
    /// again: the kernel prints a path of another mount namespace relative
    /// to that namespace's root, which is the guest's `/` unless the task
    /// chrooted (then the root's own path is taken off).
    fn path_of(&self, dir: BorrowedFd) -> io::Result<Option<Vec<u8>>> {
        let (Some(d), Some(r)) = (fd_path(dir), fd_path(self.root.as_fd())) else { return Ok(None) };
        let below = if r == b"/" {
            d
        } else if d == r {
            b"/".to_vec()
        } else if d.starts_with(&r) && d.get(r.len()) == Some(&b'/') {
            d[r.len()..].to_vec()
        } else {
            return Ok(None);
        };
        match openat2(self.root.as_fd(), &below, IN_ROOT) {
            Ok(again) if same_inode(again.as_fd(), dir)? => Ok(Some(below)),
            _ => Ok(None),
        }
    }
}

fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EACCES | libc::ENAMETOOLONG | libc::EXDEV))
}

/// A directory that is not there (or not reachable) is no error here.
fn quiet(r: io::Result<OwnedFd>) -> io::Result<Option<OwnedFd>> {
    match r {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
const BENEATH: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

/// openat2(O_PATH|O_DIRECTORY) with the given resolution.
fn openat2(dir: BorrowedFd, rel: &[u8], resolve: u64) -> io::Result<OwnedFd> {
    if rel.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    crate::sys::openat2::openat2(&dir, Path::new(OsStr::from_bytes(rel)), libc::O_PATH | libc::O_DIRECTORY, 0, resolve)
}

/// /proc/TID/<what> (root, cwd, fd/N), opened O_PATH: the directory itself.
fn open_proc(tid: i32, what: &str) -> io::Result<OwnedFd> {
    let p = CString::new(format!("/proc/{tid}/{what}")).expect("no NUL");
    crate::sys::file::open(&p, libc::O_PATH)
}

/// statx of `name` in `dir`, not following a final symlink; an empty name
/// is `dir` itself.
pub use crate::sys::file::statx;

fn same_inode(a: BorrowedFd, b: BorrowedFd) -> io::Result<bool> {
    let (x, y) = (crate::sys::file::fstat(a)?, crate::sys::file::fstat(b)?);
    Ok((x.st_dev, x.st_ino) == (y.st_dev, y.st_ino))
}

fn readlink(dir: BorrowedFd, name: &std::ffi::CStr) -> io::Result<Vec<u8>> {
    crate::sys::file::readlink_at(dir, name)
}

/// The kernel's name of what a descriptor of ours refers to.
fn fd_path(fd: BorrowedFd) -> Option<Vec<u8>> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok().map(|p| p.into_os_string().into_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_component_is_split_off() {
        assert_eq!(split_last(b"/usr/bin/ls"), (&b"/usr/bin"[..], &b"ls"[..]));
        assert_eq!(split_last(b"/ls"), (&b"/"[..], &b"ls"[..]));
        assert_eq!(split_last(b"ls"), (&b""[..], &b"ls"[..]));
        assert_eq!(split_last(b"a/b"), (&b"a"[..], &b"b"[..]));
    }

    #[test]
    fn a_task_finds_its_own_files_and_never_leaves_its_root() {
        // Our own root is "/": relative and absolute paths, a symlink.
        let dir = std::env::temp_dir().join(format!("vs-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("d/f"), b"x").unwrap();
        std::os::unix::fs::symlink("d/f", dir.join("l")).unwrap();
        std::os::unix::fs::symlink("/etc/../../../../..", dir.join("up")).unwrap();
        let me = Task::open(std::process::id() as i32).unwrap();
        let abs = |p: &str| format!("{}/{p}", dir.display()).into_bytes();
        let f = me.find(libc::AT_FDCWD, &abs("d/f"), true).unwrap().expect("found");
        assert_eq!(f.name.as_bytes(), b"f");
        assert!(me.find(libc::AT_FDCWD, &abs("l"), true).unwrap().is_some(), "symlink followed");
        assert!(me.find(libc::AT_FDCWD, &abs("l"), false).unwrap().is_none(), "symlink itself is no regular file");
        assert!(me.find(libc::AT_FDCWD, &abs("d"), true).unwrap().is_none(), "a directory");
        assert!(me.find(libc::AT_FDCWD, &abs("nope"), true).unwrap().is_none());
        let dfd = std::fs::File::open(dir.join("d")).unwrap();
        let rel = me.find(dfd.as_raw_fd(), b"../d/f", true).unwrap().expect("climbs above its start, stays in the root");
        assert_eq!(rel.name.as_bytes(), b"f");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
