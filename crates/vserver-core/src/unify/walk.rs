//! Walking a guest tree the hostile-guest way: directory fd by directory fd,
//! each child opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
//! RESOLVE_NO_XDEV), so a symlink planted or swapped in anywhere fails to
//! open (ELOOP) and a mount point inside the guest is never entered (EXDEV).
//! A file whose directory entry names a store inode is already unified and
//! costs nothing beyond that entry: no stat, no read.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::dir::{Dir, Type};

use super::exclude::ExcludeList;
use super::hook;
use super::scan::FileId;
use super::summary::Summary;
use crate::sys::file as sys;

/// Deeper trees than this are not walked (a guest could make them to exhaust
/// our stack or fds).
const MAX_DEPTH: usize = 256;

/// A regular file worth hashing, as its directory entry and fstatat saw it.
#[derive(Clone)]
pub struct Candidate {
    pub dir: Arc<OwnedFd>,
    pub name: CString,
    /// Path relative to the guest root, no leading slash.
    pub rel: Vec<u8>,
    pub ino: u64,
    /// Its identity as the walk's fstatat saw it (not for store entries).
    pub id: Option<FileId>,
}

pub struct WalkRules<'a> {
    pub excludes: &'a ExcludeList,
    /// Inodes of store entries (empty in reflink mode: guests own their inodes).
    pub store_inodes: &'a HashSet<u64>,
    pub dev: u64,
    pub min_size: u64,
    pub insecure: bool,
    /// Emit the files that ARE store entries instead (for --revert).
    pub select_entries: bool,
}

/// Walks the tree below `root` (a directory fd), calling `emit` per candidate.
pub fn walk(root: OwnedFd, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    walk_dir(Arc::new(root), Vec::new(), 0, rules, sum, emit);
}

/// Walks below directory `dir`, which is `rel` inside the guest.
pub fn walk_at(dir: OwnedFd, rel: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    walk_dir(Arc::new(dir), rel, 0, rules, sum, emit);
}

fn walk_dir(dir: Arc<OwnedFd>, rel: Vec<u8>, depth: usize, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let entries = match read_entries(&dir) {
        Ok(e) => e,
        Err(e) => return sum.error(format!("{}: cannot read directory: {e}", show(&rel))),
    };
    hook::point("walk-dir", &rel);
    let mut subdirs = Vec::new();
    for (name, ino, kind) in entries {
        let child = join(&rel, name.as_bytes());
        match kind {
            Some(Type::File) | None if rules.select_entries => {
                if rules.store_inodes.contains(&ino) && !rules.excludes.is_excluded(&child) {
                    emit(Candidate { dir: dir.clone(), name, rel: child, ino, id: None });
                } else if kind.is_none() && is_dir(&dir, &name) {
                    subdirs.push((name, child));
                }
            }
            Some(Type::File) | None => {
                if rules.store_inodes.contains(&ino) {
                    sum.already_shared += 1;
                    continue;
                }
                if rules.excludes.is_excluded(&child) {
                    continue;
                }
                if kind.is_none() && is_dir(&dir, &name) {
                    subdirs.push((name, child));
                    continue;
                }
                consider_file(&dir, name, child, rules, sum, emit);
            }
            Some(Type::Directory) => subdirs.push((name, child)),
            _ => {} // symlinks, devices, fifos, sockets: never unified
        }
    }
    for (name, child) in subdirs {
        if !rules.excludes.must_enter(&child) {
            continue;
        }
        if depth >= MAX_DEPTH {
            sum.error(format!("{}: deeper than {MAX_DEPTH} levels, not walked", show(&child)));
            continue;
        }
        match open_subdir(&dir, &name, rules.dev) {
            Ok(Some(fd)) => walk_dir(Arc::new(fd), child, depth + 1, rules, sum, emit),
            Ok(None) => {}
            Err(e) => sum.error(format!("{}: cannot open directory: {e}", show(&child))),
        }
    }
}

fn consider_file(dir: &Arc<OwnedFd>, name: CString, rel: Vec<u8>, rules: &WalkRules, sum: &mut Summary, emit: &mut dyn FnMut(Candidate)) {
    let st = match sys::fstatat_nofollow(dir.as_fd(), &name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return,
        Err(e) => return sum.error(format!("{}: {e}", show(&rel))),
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_dev != rules.dev {
        return;
    }
    sum.files_scanned += 1;
    let setid = st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0;
    if (st.st_size as u64) < rules.min_size || (setid && !rules.insecure) {
        sum.skipped += 1;
        return;
    }
    emit(Candidate { dir: dir.clone(), name, rel, ino: st.st_ino, id: Some(FileId::of(&st)) });
}

/// Opens a child directory, or `None` when it is a mount point, on another
/// filesystem, or was swapped for a symlink (the guest may do that any time).
fn open_subdir(dir: &OwnedFd, name: &CString, dev: u64) -> std::io::Result<Option<OwnedFd>> {
    match sys::open_beneath(dir.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => Ok((sys::fstat(fd.as_fd())?.st_dev == dev).then_some(fd)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::ELOOP | libc::ENOTDIR | libc::ENOENT)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_dir(dir: &OwnedFd, name: &CString) -> bool {
    sys::fstatat_nofollow(dir.as_fd(), name).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

fn read_entries(dir: &OwnedFd) -> nix::Result<Vec<(CString, u64, Option<Type>)>> {
    let d = Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)?;
    let mut out = Vec::new();
    for e in d.into_iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push((CString::from(e.file_name()), e.ino(), e.file_type()));
        }
    }
    Ok(out)
}

pub fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        p.extend_from_slice(rel);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A guest path for messages: `/usr/bin/ls`.
pub fn show(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}
