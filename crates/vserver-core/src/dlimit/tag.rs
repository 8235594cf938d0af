//! Tagging a guest's tree with its project id: every directory and regular
//! file gets the xid as project id, directories also the inherit flag, so
//! whatever is created in them later is the guest's too (and the kernel
//! refuses to link or rename a file of another project into them).
//!
//! The tree is the guest's and hostile: it is walked descriptor by
//! descriptor with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_XDEV), never following a symlink, never leaving the
//! filesystem (another filesystem mounted inside is not this limit's
//! business), never opening a device, fifo or socket. Files opened for the
//! ioctl are opened O_RDONLY|O_NONBLOCK and checked to be what the
//! directory listing said. The top directory is tagged last, so a walk that
//! was interrupted is done again in full next time.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::sys::stat::{fstat, SFlag};

use crate::sys::openat2::{openat2, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV};
use crate::sys::quota::{self as sys, FsXattr, FS_XFLAG_PROJINHERIT};

const FS_XFLAG_IMMUTABLE: u32 = 0x0000_0008;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TagSummary {
    pub directories: u64,
    pub files: u64,
    /// Symlinks, devices, fifos, sockets: charged to the project they were
    /// made in (new ones inherit), not changed by the walk.
    pub skipped_special: u64,
    /// Immutable files with more than one link: unified (vhashify) inodes
    /// shared with other guests, which stay with the project that has them.
    pub skipped_shared: u64,
    /// Mount points of other filesystems inside the tree.
    pub skipped_mounts: u64,
}

/// Is the top of the tree tagged with `projid` and the inherit flag?
pub fn is_tagged(root: &Path, projid: u32) -> io::Result<bool> {
    let fd = open_root(root)?;
    let x = sys::get_xattr(fd.as_fd())?;
    Ok(x.projid == projid && x.xflags & FS_XFLAG_PROJINHERIT != 0)
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    // The error text is nix's (as when nix::fcntl::open made this call).
    let opened = match CString::new(root.as_os_str().as_bytes()) {
        Ok(c) => crate::sys::file::open(&c, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        Err(_) => Err(Errno::EINVAL),
    };
    opened.map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", root.display())))
}

/// Tags the whole tree under `root` with `projid`.
pub fn tag_tree(root: &Path, projid: u32) -> io::Result<TagSummary> {
    let top = open_root(root)?;
    let mut summary = TagSummary::default();
    // (directory descriptor, its path for messages)
    let mut stack: Vec<(OwnedFd, PathBuf)> = vec![(top.try_clone()?, root.to_path_buf())];
    while let Some((dir, path)) = stack.pop() {
        for (name, kind) in entries(&dir, &path)? {
            let child = path.join(&name);
            match kind {
                Some(Type::Directory) => match open_beneath(&dir, &name, libc::O_DIRECTORY) {
                    Ok(fd) => {
                        set(&fd, projid, true, &child)?;
                        summary.directories += 1;
                        stack.push((fd, child));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => summary.skipped_mounts += 1,
                    Err(e) => return Err(with_path(e, &child)),
                },
                Some(Type::File) => {
                    let fd = match open_beneath(&dir, &name, libc::O_NONBLOCK | libc::O_NOCTTY) {
                        Ok(fd) => fd,
                        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                            summary.skipped_mounts += 1;
                            continue;
                        }
                        Err(e) => return Err(with_path(e, &child)),
                    };
                    let st = fstat(fd.as_raw_fd()).map_err(|e| with_path(e.into(), &child))?;
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                        return Err(with_path(io::Error::other("changed while being tagged"), &child));
                    }
                    let x = sys::get_xattr(fd.as_fd()).map_err(|e| with_path(e, &child))?;
                    if x.xflags & FS_XFLAG_IMMUTABLE != 0 && st.st_nlink > 1 {
                        summary.skipped_shared += 1;
                        continue;
                    }
                    set(&fd, projid, false, &child)?;
                    summary.files += 1;
                }
                _ => summary.skipped_special += 1,
            }
        }
    }
    set(&top, projid, true, root)?;
    summary.directories += 1;
    Ok(summary)
}

/// The names in a directory with their types (fstatat for DT_UNKNOWN).
fn entries(dir: &OwnedFd, path: &Path) -> io::Result<Vec<(String, Option<Type>)>> {
    let dup = nix::unistd::dup(dir.as_raw_fd()).map_err(|e| with_path(e.into(), path))?;
    let mut d = Dir::from_fd(dup).map_err(|e| with_path(e.into(), path))?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| with_path(e.into(), path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            Some(t) => Some(t),
            None => {
                let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), entry.file_name(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| with_path(e.into(), &path.join(&name)))?;
                match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                    SFlag::S_IFDIR => Some(Type::Directory),
                    SFlag::S_IFREG => Some(Type::File),
                    _ => None,
                }
            }
        };
        out.push((name, kind));
    }
    Ok(out)
}

fn open_beneath(dir: &OwnedFd, name: &str, extra: libc::c_int) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | extra;
    openat2(dir, Path::new(name), flags, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)
}

fn set(fd: &OwnedFd, projid: u32, inherit: bool, path: &Path) -> io::Result<()> {
    let old = sys::get_xattr(fd.as_fd()).map_err(|e| with_path(e, path))?;
    let xflags = if inherit { old.xflags | FS_XFLAG_PROJINHERIT } else { old.xflags };
    if old.projid == projid && old.xflags == xflags {
        return Ok(());
    }
    let new = FsXattr { projid, xflags, ..old };
    sys::set_xattr(fd.as_fd(), &new).map_err(|e| with_path(e, path))
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
