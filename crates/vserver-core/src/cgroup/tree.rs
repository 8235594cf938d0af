//! Walking a cgroup tree by descriptor: the guest names the sub-cgroups it
//! makes below payload, and deep trees of long names would exceed PATH_MAX
//! as paths. Reading every process below a cgroup, and removing a tree
//! deepest first.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys::file;

/// Deepest nesting walked; `vserver/NAME` caps it at MAX_DEPTH below itself.
const WALK_DEPTH: u32 = 64;

/// Calls `visit` on `top` and every cgroup below it (by descriptor: the
/// guest names the sub-cgroups, and deep trees of long names would exceed
/// PATH_MAX as paths), skipping the children of `top` named in `skip`. A
/// cgroup that disappears meanwhile (systemd removing a unit's) is skipped.
pub(super) fn for_each_cgroup(top: &Path, skip: &[&str], visit: &mut dyn FnMut(BorrowedFd) -> io::Result<()>) -> io::Result<()> {
    let fd = match open_top(top) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", top.display()))),
    };
    walk(&fd, skip, visit, 0).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", top.display())))
}

fn walk(dir: &OwnedFd, skip: &[&str], visit: &mut dyn FnMut(BorrowedFd) -> io::Result<()>, depth: u32) -> io::Result<()> {
    if depth > WALK_DEPTH {
        return Err(io::Error::other("cgroup tree nested too deeply"));
    }
    visit(dir.as_fd())?;
    for name in subdirs(dir)? {
        if depth == 0 && skip.iter().any(|s| name.as_slice() == s.as_bytes()) {
            continue;
        }
        match open_dir(dir.as_fd(), &name) {
            Ok(child) => walk(&child, &[], visit, depth + 1)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes `top` and every cgroup below it, deepest first. `known`: the
/// children `top` usually has and nothing below them (a guest's `payload`
/// and `supervisor`), removed by name first, a system call each; the walk
/// is for the trees a guest made below them. rmdir(2) of a cgroup that
/// holds a process or a child fails (EBUSY), so trying it never removes
/// what the walk would keep.
pub(super) fn remove_tree(top: &Path, known: &[&str]) -> io::Result<()> {
    if remove_by_name(top, known)? {
        return Ok(());
    }
    let fd = open_top(top)?;
    remove_below(&fd, 0)?;
    drop(fd);
    fs::remove_dir(top)
}

/// True when `top`'s `known` children and `top` itself are gone; false
/// when one of them is busy (the walk takes over). NotFound for a missing `top`.
fn remove_by_name(top: &Path, known: &[&str]) -> io::Result<bool> {
    for child in known {
        match fs::remove_dir(top.join(child)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return Ok(false),
        }
    }
    match fs::remove_dir(top) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => Ok(false),
    }
}

fn remove_below(dir: &OwnedFd, depth: u32) -> io::Result<()> {
    if depth > WALK_DEPTH {
        return Err(io::Error::other("cgroup tree nested too deeply"));
    }
    for name in subdirs(dir)? {
        match open_dir(dir.as_fd(), &name) {
            Ok(child) => remove_below(&child, depth + 1)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        match file::unlink_at(dir.as_fd(), &cstring(&name)?, libc::AT_REMOVEDIR) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY;

/// The top cgroup directory, by path (never through a final symlink).
fn open_top(path: &Path) -> io::Result<OwnedFd> {
    Ok(fs::OpenOptions::new().read(true).custom_flags(DIR_FLAGS | libc::O_NOFOLLOW).open(path)?.into())
}

/// The child cgroup `name` of `at` (never through a symlink).
fn open_dir(at: BorrowedFd, name: &[u8]) -> io::Result<OwnedFd> {
    file::open_at(at, &cstring(name)?, DIR_FLAGS, 0)
}

fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Names of the sub-directories (child cgroups) of a cgroup directory.
fn subdirs(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut d = nix::dir::Dir::openat(
        Some(dir.as_raw_fd()),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if entry.file_type() == Some(nix::dir::Type::Directory) {
            out.push(name.to_vec());
        }
    }
    Ok(out)
}

/// Appends the pids in `cgroup.procs` of the cgroup open as `dir`.
pub(super) fn read_procs_at(dir: BorrowedFd, out: &mut Vec<i32>) -> io::Result<()> {
    use std::io::Read;
    let mut f = match file::open_at(dir, c"cgroup.procs", libc::O_RDONLY, 0) {
        Ok(fd) => fs::File::from(fd),
        // Removed meanwhile, or a fixture directory without the file.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    match f.read_to_string(&mut text) {
        Ok(_) => {}
        // ENODEV: the cgroup was removed between open and read.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(()),
        Err(e) => return Err(e),
    }
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    Ok(())
}
