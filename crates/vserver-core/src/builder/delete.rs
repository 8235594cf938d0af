//! `vserver NAME delete`: removes a stopped guest's root and configuration.
//!
//! The tree is removed by descriptor, one directory descriptor open at a
//! time, so any depth works (a guest can make trees far deeper than
//! PATH_MAX) and no symlink is ever followed: a directory is entered with
//! openat(O_NOFOLLOW|O_DIRECTORY), and climbing back up through `..` is
//! checked against the device and inode recorded on the way down. A mount
//! point inside the tree is never entered.
//!
//! Unified files are immutable hard links shared with the hash store: the
//! guest's link is removed with the flag cleared just for the unlink and set
//! again on the shared inode, so the other guests' copies stay protected.
//! Store entries that no guest links to any more are removed afterwards (or,
//! when a vhashify run holds the store, reported for `vhashify --gc`).

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::error::{BuildError, Doing};
use super::guestfs::read_dir;
use crate::config::parse::read_path_entry;
use crate::paths::Paths;
use crate::runstate;
use crate::sys::file as sys;
use crate::unify;

/// What a delete did besides removing the guest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    /// Store entries only this guest linked to, removed: (count, bytes).
    pub store_freed: (u64, u64),
    /// Such entries left because the store was busy: (count, bytes, store).
    pub store_left: Option<(u64, u64, PathBuf)>,
}

pub fn delete_guest(paths: &Paths, name: &str) -> Result<DeleteReport, BuildError> {
    crate::paths::validate_guest_name(name).map_err(BuildError::InvalidName)?;
    if runstate::is_running(paths, name) {
        return Err(BuildError::RunningDelete { name: name.to_string() });
    }
    let confdir = paths.guest_confdir(name);
    let vdir = read_path_entry(&confdir.join("vdir"))?.unwrap_or_else(|| paths.default_vdir(name));
    if !confdir.exists() && std::fs::symlink_metadata(&vdir).is_err() {
        return Err(BuildError::NoSuchGuest { name: name.to_string(), confdir, vdir });
    }
    // First out of the hash store (its configuration says which store),
    // inside the unifier's windows: the guest's names of store entries go,
    // and entries no other guest links to.
    let released = unify::release_guest(paths, name)
        .map_err(|err| BuildError::UnifyStep { what: format!("taking guest {name:?} out of its hash store"), err })?;
    let mut report = DeleteReport { store_freed: (released.entries_removed, released.bytes_freed), store_left: None };
    if released.entries_left > 0 {
        let store = unify::config::store_candidates(paths, name)
            .ok()
            .and_then(|c| unify::config::pick_store(&c, &vdir, name).ok())
            .unwrap_or_else(|| unify::config::default_store(paths));
        report.store_left = Some((released.entries_left, released.bytes_left, store));
    }
    remove_tree(&vdir).doing(|| format!("removing guest root {}", vdir.display()))?;
    remove_tree(&confdir).doing(|| format!("removing {}", confdir.display()))?;
    let _ = remove_tree(&paths.guest_rundir(name));
    Ok(report)
}

/// What a removal found on the way.
#[derive(Debug, Default)]
struct Removed {
    /// Inodes of immutable files whose only remaining link (after ours went)
    /// may be a store entry.
    orphans: HashSet<u64>,
    orphan_bytes: u64,
}

/// Removes a file or a whole tree without following symlinks (the path
/// itself is host configuration and may be reached through symlinks).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    remove_tree_counting(path, &mut Removed::default())
}

fn remove_tree_counting(path: &Path, removed: &mut Removed) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let parent_path = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let parent = sys::open_at(cwd(), &cstr(parent_path)?, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| with_path(path, e))?;
    let name = cstr(Path::new(path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?))?;
    if meta.is_dir() {
        let dir = sys::open_at(parent.as_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| with_path(path, e))?;
        Remover { top_dev: sys::fstat(dir.as_fd())?.st_dev, removed }.contents(dir).map_err(|e| with_path(path, e))?;
    }
    let flag = if meta.is_dir() { libc::AT_REMOVEDIR } else { 0 };
    unlink_entry(parent.as_fd(), &name, flag, removed).map_err(|e| with_path(path, e))
}

/// Removes everything inside the directory `dir`.
pub fn remove_contents(dir: OwnedFd) -> io::Result<()> {
    let top_dev = sys::fstat(dir.as_fd())?.st_dev;
    Remover { top_dev, removed: &mut Removed::default() }.contents(dir)
}

/// A directory being emptied: how to find it again from its parent, and the
/// subdirectories still to do.
struct Level {
    name: CString,
    dev: u64,
    ino: u64,
    pending: Vec<CString>,
}

struct Remover<'a> {
    top_dev: u64,
    removed: &'a mut Removed,
}

impl Remover<'_> {
    /// Empties `top` holding one directory descriptor at a time.
    fn contents(&mut self, top: OwnedFd) -> io::Result<()> {
        let st = sys::fstat(top.as_fd())?;
        let mut cur = top;
        let mut levels = vec![Level { name: CString::default(), dev: st.st_dev, ino: st.st_ino, pending: Vec::new() }];
        levels[0].pending = self.clear_files(cur.as_fd())?;
        loop {
            let level = levels.last_mut().expect("the top level stays");
            if let Some(sub) = level.pending.pop() {
                let fd = match sys::open_at(cur.as_fd(), &sub, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(named(&sub, e)),
                };
                let st = sys::fstat(fd.as_fd())?;
                if st.st_dev != self.top_dev {
                    return Err(named(&sub, io::Error::other("is a mount point; unmount it first")));
                }
                cur = fd;
                let pending = self.clear_files(cur.as_fd())?;
                levels.push(Level { name: sub, dev: st.st_dev, ino: st.st_ino, pending });
                continue;
            }
            if levels.len() == 1 {
                return Ok(());
            }
            let done = levels.pop().expect("more than one level");
            let up = levels.last().expect("a parent level");
            let parent = sys::open_at(cur.as_fd(), c"..", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let pst = sys::fstat(parent.as_fd())?;
            if (pst.st_dev, pst.st_ino) != (up.dev, up.ino) {
                return Err(named(&done.name, io::Error::other("was moved while being removed")));
            }
            cur = parent;
            unlink_entry(cur.as_fd(), &done.name, libc::AT_REMOVEDIR, self.removed).map_err(|e| named(&done.name, e))?;
        }
    }

    /// Unlinks every non-directory in `dir`; returns the subdirectories.
    fn clear_files(&mut self, dir: BorrowedFd) -> io::Result<Vec<CString>> {
        let mut subdirs = Vec::new();
        for (name, kind) in read_dir(dir)? {
            let is_dir = match kind {
                Some(nix::dir::Type::Directory) => true,
                Some(_) => false,
                None => match sys::fstatat_nofollow(dir, &name) {
                    Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(named(&name, e)),
                },
            };
            if is_dir {
                subdirs.push(name);
            } else {
                unlink_entry(dir, &name, 0, self.removed).map_err(|e| named(&name, e))?;
            }
        }
        Ok(subdirs)
    }
}

/// unlinkat, clearing an immutable or append-only flag that stands in the
/// way: on the entry (a unified file: the flag is set again while other
/// links remain) or on the directory holding it.
fn unlink_entry(dir: BorrowedFd, name: &CStr, flag: libc::c_int, removed: &mut Removed) -> io::Result<()> {
    let first = match sys::unlink_at(dir, name, flag) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other,
    };
    let Err(e) = first else { return Ok(()) };
    if e.raw_os_error() != Some(libc::EPERM) {
        return Err(e);
    }
    if let Some(file) = open_flag_holder(dir, name)? {
        let flags = sys::get_flags(file.as_fd())?;
        let locked = flags & (sys::FS_IMMUTABLE_FL | sys::FS_APPEND_FL);
        if locked != 0 {
            sys::set_flags(file.as_fd(), flags & !locked)?;
            let result = sys::unlink_at(dir, name, flag);
            let st = sys::fstat(file.as_fd())?;
            if st.st_nlink > 0 {
                // Other names (the store, other guests) keep the inode: protect it again.
                sys::set_flags(file.as_fd(), flags)?;
            }
            if result.is_ok() && st.st_nlink == 1 && st.st_mode & libc::S_IFMT == libc::S_IFREG {
                removed.orphans.insert(st.st_ino);
                removed.orphan_bytes += st.st_blocks as u64 * 512;
            }
            return result;
        }
    }
    // The directory itself may be immutable or append-only: it goes too.
    let dflags = sys::get_flags(dir)?;
    let locked = dflags & (sys::FS_IMMUTABLE_FL | sys::FS_APPEND_FL);
    if locked == 0 {
        return Err(e);
    }
    sys::set_flags(dir, dflags & !locked)?;
    sys::unlink_at(dir, name, flag)
}

/// Opens an entry to read or change its inode flags: only regular files and
/// directories (opening a device or fifo could block or have side effects).
fn open_flag_holder(dir: BorrowedFd, name: &CStr) -> io::Result<Option<OwnedFd>> {
    let st = sys::fstatat_nofollow(dir, name)?;
    let extra = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => 0,
        libc::S_IFDIR => libc::O_DIRECTORY,
        _ => return Ok(None),
    };
    let fd = sys::open_at(dir, name, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | extra, 0)?;
    let now = sys::fstat(fd.as_fd())?;
    Ok(((now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)).then_some(fd))
}

fn cstr(p: &Path) -> io::Result<CString> {
    sys::cstr(p.as_os_str().as_encoded_bytes())
}

fn cwd() -> BorrowedFd<'static> {
    sys::cwd()
}

fn named(name: &CStr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", name.to_string_lossy()))
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A chain of directories deeper than PATH_MAX, made with *at calls.
    #[test]
    fn removes_a_tree_deeper_than_path_max() {
        let top = crate::config::parse::tests::tempdir().join("deep");
        std::fs::create_dir_all(&top).unwrap();
        let name = CString::new("d".repeat(200)).unwrap();
        let mut cur = sys::open_at(cwd(), &cstr(&top).unwrap(), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        for _ in 0..40 {
            sys::mkdir_at(cur.as_fd(), &name, 0o755).unwrap();
            std::fs::write(format!("/proc/self/fd/{}/f", cur.as_raw_fd()), b"x").unwrap();
            std::os::unix::fs::symlink("/", format!("/proc/self/fd/{}/up", cur.as_raw_fd())).unwrap();
            cur = sys::open_at(cur.as_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        }
        drop(cur);
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert!(Path::new("/proc/self").exists(), "the symlinks to / were not followed");
    }
}
