//! Walking a cgroup tree by descriptor: the guest names the sub-cgroups it
//! makes below payload, and deep trees of long names would exceed PATH_MAX
//! as paths. Reading every process below a cgroup, and removing a tree
//! deepest first.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Deepest nesting walked; `vserver/NAME` caps it at MAX_DEPTH below itself.
const WALK_DEPTH: u32 = 64;

/// Calls `visit` on `top` and every cgroup below it (by descriptor: the
/// guest names the sub-cgroups, and deep trees of long names would exceed
/// PATH_MAX as paths), skipping the children of `top` named in `skip`. A
/// cgroup that disappears meanwhile (systemd removing a unit's) is skipped.
pub(super) fn for_each_cgroup(top: &Path, skip: &[&str], visit: &mut dyn FnMut(RawFd) -> io::Result<()>) -> io::Result<()> {
    let fd = match open_dir(libc::AT_FDCWD, top) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", top.display()))),
    };
    walk(&fd, skip, visit, 0).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", top.display())))
}

fn walk(dir: &OwnedFd, skip: &[&str], visit: &mut dyn FnMut(RawFd) -> io::Result<()>, depth: u32) -> io::Result<()> {
    if depth > WALK_DEPTH {
        return Err(io::Error::other("cgroup tree nested too deeply"));
    }
    visit(dir.as_raw_fd())?;
    for name in subdirs(dir)? {
        if depth == 0 && skip.iter().any(|s| name.as_slice() == s.as_bytes()) {
            continue;
        }
        match open_dir(dir.as_raw_fd(), Path::new(std::ffi::OsStr::from_bytes(&name))) {
            Ok(child) => walk(&child, &[], visit, depth + 1)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes `top` and every cgroup below it, deepest first.
pub(super) fn remove_tree(top: &Path) -> io::Result<()> {
    let fd = open_dir(libc::AT_FDCWD, top)?;
    remove_below(&fd, 0)?;
    drop(fd);
    fs::remove_dir(top)
}

fn remove_below(dir: &OwnedFd, depth: u32) -> io::Result<()> {
    if depth > WALK_DEPTH {
        return Err(io::Error::other("cgroup tree nested too deeply"));
    }
    for name in subdirs(dir)? {
        let path = Path::new(std::ffi::OsStr::from_bytes(&name));
        match open_dir(dir.as_raw_fd(), path) {
            Ok(child) => remove_below(&child, depth + 1)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        let c = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: unlinkat on a NUL-terminated name relative to a descriptor we own.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn open_dir(at: RawFd, path: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a NUL-terminated path; a non-negative return is ours.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
pub(super) fn read_procs_at(dir: RawFd, out: &mut Vec<i32>) -> io::Result<()> {
    use std::io::Read;
    let c = c"cgroup.procs";
    // SAFETY: openat with a static NUL-terminated name.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // Removed meanwhile, or a fixture directory without the file.
        return if e.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(e) };
    }
    // SAFETY: a new descriptor we now own.
    let mut f = fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
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
