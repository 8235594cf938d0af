//! The raw file syscalls unification and `build` need that nix does not wrap
//! the way we use them: openat2 with RESOLVE flags, renameat2(RENAME_EXCHANGE),
//! linkat of an fd, the inode flags ioctls, FICLONE, file leases and xattrs,
//! statx, and the *at calls that make, rename, own and time a directory entry.
//! Every function borrows the fds it is given and returns owned ones; errors
//! are plain io::Error.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::check;

/// FS_IMMUTABLE_FL and FS_APPEND_FL from linux/fs.h.
pub const FS_IMMUTABLE_FL: libc::c_int = 0x10;
pub const FS_APPEND_FL: libc::c_int = 0x20;

/// Resolution that can never leave the directory fd, follow a symlink (any
/// component, the last one included) or cross a mount point.
const RESOLVE_GUEST: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV;

pub fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Opens `rel` below `dir` with openat2 and the guest resolution rules.
pub fn open_beneath(dir: BorrowedFd, rel: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = RESOLVE_GUEST;
    openat2(dir, rel, &how)
}

/// Opens `rel` below `dir` as if `dir` were the root: the guest's own
/// symlinks are followed but can never lead out of it (RESOLVE_IN_ROOT); no
/// /proc magic links, no mount crossing. A final symlink is followed too
/// (inside the root), unless `flags` has O_NOFOLLOW.
pub fn open_in_root(dir: BorrowedFd, rel: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV;
    openat2(dir, rel, &how)
}

fn openat2(dir: BorrowedFd, rel: &CStr, how: &libc::open_how) -> io::Result<OwnedFd> {
    // SAFETY: rel is NUL-terminated, how is a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), rel.as_ptr(), how as *const libc::open_how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The current working directory as the directory argument of the *at
/// calls (AT_FDCWD), for paths of the host's own configuration.
pub fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is not -1 and means "the working directory" to every
    // *at call for the whole life of the process; nothing ever closes it.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// open(2) of an absolute path (`/proc/TID/root`, `/proc/self/fd/N`), with
/// O_CLOEXEC added; follows symlinks and /proc magic links.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; no mode is read without O_CREAT.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new descriptor for the same open file (shared offset), close-on-exec
/// (fcntl F_DUPFD_CLOEXEC, lowest free number).
pub fn dup_cloexec(fd: BorrowedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and makes a new descriptor.
    let dup = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: dup was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Plain openat for host-side paths (the store), never following a final symlink.
pub fn open_at(dir: BorrowedFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; the returned fd is new.
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW, mode as libc::c_uint) })?;
    // SAFETY: fd was just returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reopens an O_PATH fd for reading through /proc/self/fd, which opens the
/// very inode the O_PATH fd holds (we checked it is a regular file). O_NONBLOCK
/// keeps a guest's write lease from stalling us: the open fails instead.
pub fn reopen_read(path_fd: BorrowedFd) -> io::Result<OwnedFd> {
    let proc = cstr(format!("/proc/self/fd/{}", path_fd.as_raw_fd()).as_bytes())?;
    // SAFETY: proc is NUL-terminated; the returned fd is new.
    let fd = check(unsafe { libc::open(proc.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY) })?;
    // SAFETY: fd was just returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: st is written by the kernel before we read it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is valid for the borrow, st is a valid out pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// statx of `name` in `dir`, not following a final symlink; an empty name
/// is `dir` itself (AT_EMPTY_PATH). The basic stats, as stat would sync them.
pub fn statx(dir: BorrowedFd, name: &CStr) -> io::Result<libc::statx> {
    // SAFETY: statx is plain data, written by the kernel.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT | empty;
    // SAFETY: name is NUL-terminated; stx is a valid out pointer.
    check(unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), flags, libc::STATX_BASIC_STATS, &mut stx) })?;
    Ok(stx)
}

/// The target of symlink `name` in `dir` (readlinkat; a target is shorter
/// than PATH_MAX, so the buffer always holds it whole).
pub fn readlink_at(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the buffer is valid for its length; name is NUL-terminated.
    let n = check(unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn fstatat_nofollow(dir: BorrowedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: st is written by the kernel before we read it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: name is NUL-terminated, st is a valid out pointer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Adds a name for the inode behind `fd` (AT_EMPTY_PATH; root has the
/// CAP_DAC_READ_SEARCH this needs).
pub fn link_fd(fd: BorrowedFd, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: the empty path and name are NUL-terminated.
    check(unsafe { libc::linkat(fd.as_raw_fd(), c"".as_ptr(), dir.as_raw_fd(), name.as_ptr(), libc::AT_EMPTY_PATH) })?;
    Ok(())
}

/// linkat(2) of name `old` in `old_dir` (with `flags`: 0 never follows a
/// final symlink) as `name` in `dir`.
pub fn link_at(old_dir: BorrowedFd, old: &CStr, dir: BorrowedFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated, the descriptors valid for the borrow.
    check(unsafe { libc::linkat(old_dir.as_raw_fd(), old.as_ptr(), dir.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// renameat(2): `from` in `from_dir` replaces `to` in `to_dir`.
pub fn rename_at(from_dir: BorrowedFd, from: &CStr, to_dir: BorrowedFd, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated, the descriptors valid for the borrow.
    check(unsafe { libc::renameat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr()) })?;
    Ok(())
}

/// Makes `name` in `dir` a symlink to `target` (symlinkat; the target is
/// only stored, never followed here).
pub fn symlink_at(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated, the descriptor valid for the borrow.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// Makes `name` in `dir` a fifo with permission bits `perm`
/// (mknodat(S_IFIFO | perm), no device number).
pub fn mkfifo_at(dir: BorrowedFd, name: &CStr, perm: libc::mode_t) -> io::Result<()> {
    // SAFETY: name is NUL-terminated; a fifo needs no device number.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), libc::S_IFIFO | perm, 0) })?;
    Ok(())
}

/// fchmodat(2) of `name` in `dir` (`flags` 0: a final symlink is followed).
pub fn chmod_at(dir: BorrowedFd, name: &CStr, mode: libc::mode_t, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: name is NUL-terminated, the descriptor valid for the borrow.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, flags) })?;
    Ok(())
}

/// fchownat(2) of `name` in `dir` (AT_SYMLINK_NOFOLLOW in `flags`: the
/// entry itself).
pub fn chown_at(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: name is NUL-terminated, the descriptor valid for the borrow.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, flags) })?;
    Ok(())
}

/// Sets the access and modification times of `name` in `dir` (utimensat;
/// AT_SYMLINK_NOFOLLOW in `flags`: the entry itself).
pub fn set_times_at(dir: BorrowedFd, name: &CStr, times: &[libc::timespec; 2], flags: libc::c_int) -> io::Result<()> {
    // SAFETY: times points to two valid timespecs; name is NUL-terminated.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), times.as_ptr(), flags) })?;
    Ok(())
}

/// Swaps two names atomically; both keep existing throughout.
pub fn exchange(a_dir: BorrowedFd, a: &CStr, b_dir: BorrowedFd, b: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    check(unsafe { libc::renameat2(a_dir.as_raw_fd(), a.as_ptr(), b_dir.as_raw_fd(), b.as_ptr(), libc::RENAME_EXCHANGE) })?;
    Ok(())
}

pub fn unlink_at(dir: BorrowedFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

pub fn mkdir_at(dir: BorrowedFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r.map(|_| ()),
    }
}

pub fn get_flags(fd: BorrowedFd) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's size, despite the long in the name).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) })?;
    Ok(flags)
}

pub fn set_flags(fd: BorrowedFd, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: FS_IOC_SETFLAGS reads one int.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) })?;
    Ok(())
}

/// Sets or clears FS_IMMUTABLE_FL, leaving the other inode flags alone.
pub fn set_immutable(fd: BorrowedFd, on: bool) -> io::Result<()> {
    let flags = get_flags(fd)?;
    let wanted = if on { flags | FS_IMMUTABLE_FL } else { flags & !FS_IMMUTABLE_FL };
    if wanted != flags {
        set_flags(fd, wanted)?;
    }
    Ok(())
}

pub fn is_immutable(fd: BorrowedFd) -> io::Result<bool> {
    Ok(get_flags(fd)? & FS_IMMUTABLE_FL != 0)
}

/// Makes `dst` share `src`'s extents (copy-on-write), where the fs can.
pub fn ficlone(dst: BorrowedFd, src: BorrowedFd) -> io::Result<()> {
    // SAFETY: FICLONE takes the source fd as its integer argument.
    check(unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) })?;
    Ok(())
}

/// A read lease: succeeds only while nobody has the file open for writing,
/// and while held, an open for writing (or truncate) waits until we close the fd.
pub fn take_read_lease(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: F_SETLEASE takes an int argument.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) })?;
    Ok(())
}

/// Lease breaks are signalled with SIGIO, whose default action kills us.
/// Ignoring it keeps the lease semantics (openers wait for our release).
pub fn ignore_sigio() {
    // SAFETY: installing SIG_IGN has no handler code to be unsafe.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
}

/// All extended attribute names and values of an fd, sorted by name.
pub fn xattrs(fd: BorrowedFd) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 256];
    let len = loop {
        // SAFETY: the buffer is valid for names.len() bytes.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = cstr(name)?;
        out.push((name.to_vec(), get_xattr(fd, &cname)?));
    }
    out.sort();
    Ok(out)
}

fn get_xattr(fd: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match fgetxattr(fd, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() != Some(libc::ERANGE) || buf.len() > 1 << 20 => return Err(e),
            Err(_) => buf.resize(buf.len() * 4, 0),
        }
    }
}

/// The value of attribute `name` of an fd into `buf` (ERANGE when it does
/// not fit): its length.
pub fn fgetxattr(fd: BorrowedFd, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: name is NUL-terminated; the buffer is valid for buf.len() bytes.
    let n = check(unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

/// The value of attribute `name` of the file `path` names, a final symlink
/// followed (getxattr(2): so it reads through /proc/self/fd/N of an O_PATH
/// descriptor), into `buf`: its length.
pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: path and name are NUL-terminated; the buffer is valid for buf.len() bytes.
    let n = check(unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n as usize)
}

pub fn set_xattr(fd: BorrowedFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    let cname = cstr(name)?;
    // SAFETY: name is NUL-terminated, value valid for its length.
    check(unsafe { libc::fsetxattr(fd.as_raw_fd(), cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) })?;
    Ok(())
}

pub fn remove_xattr(fd: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let cname = cstr(name)?;
    // SAFETY: name is NUL-terminated.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), cname.as_ptr()) })?;
    Ok(())
}

pub fn fchown(fd: BorrowedFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

pub fn fchmod(fd: BorrowedFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
    Ok(())
}

/// Sets atime and mtime of an fd to those of `st`.
pub fn set_times(fd: BorrowedFd, st: &libc::stat) -> io::Result<()> {
    futimens(
        fd,
        &[
            libc::timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec },
            libc::timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec },
        ],
    )
}

/// Sets the access and modification times of an fd (futimens).
pub fn futimens(fd: BorrowedFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: times points to two valid timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

/// lseek with SEEK_DATA / SEEK_HOLE; `None` at end of file (ENXIO).
pub fn seek(fd: BorrowedFd, offset: i64, whence: libc::c_int) -> io::Result<Option<i64>> {
    // SAFETY: plain syscall on a valid fd.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) { Ok(None) } else { Err(e) };
    }
    Ok(Some(r))
}

pub fn copy_range(src: BorrowedFd, src_off: &mut i64, dst: BorrowedFd, dst_off: &mut i64, len: usize) -> io::Result<usize> {
    // SAFETY: offsets are valid in/out pointers, fds valid.
    let n = unsafe { libc::copy_file_range(src.as_raw_fd(), src_off, dst.as_raw_fd(), dst_off, len, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub fn ftruncate(fd: BorrowedFd, len: i64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    Ok(())
}

pub use crate::flock;

pub fn fsync(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::fsync(fd.as_raw_fd()) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn temp_dir(tag: &str) -> (std::path::PathBuf, OwnedFd) {
        let dir = std::env::temp_dir().join(format!("vs-sys-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fd = open_at(cwd(), &cstr(dir.as_os_str().as_encoded_bytes()).unwrap(), libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        (dir, fd)
    }

    #[test]
    fn entries_are_made_renamed_linked_and_read_back_by_name() {
        let (path, dir) = temp_dir("at");
        let d = dir.as_fd();
        symlink_at(c"target/of/link", d, c"l").unwrap();
        assert_eq!(readlink_at(d, c"l").unwrap(), b"target/of/link");
        let stx = statx(d, c"l").unwrap();
        assert_eq!(u32::from(stx.stx_mode) & libc::S_IFMT, libc::S_IFLNK, "statx does not follow");
        assert_eq!(u32::from(statx(d, c"").unwrap().stx_mode) & libc::S_IFMT, libc::S_IFDIR, "empty name: the dir itself");
        mkfifo_at(d, c"p", 0o600).unwrap();
        chmod_at(d, c"p", 0o640, 0).unwrap();
        let times = [libc::timespec { tv_sec: 1000, tv_nsec: 0 }, libc::timespec { tv_sec: 2000, tv_nsec: 0 }];
        set_times_at(d, c"p", &times, libc::AT_SYMLINK_NOFOLLOW).unwrap();
        chown_at(d, c"p", nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw(), libc::AT_SYMLINK_NOFOLLOW).unwrap();
        let st = fstatat_nofollow(d, c"p").unwrap();
        assert_eq!(st.st_mode, libc::S_IFIFO | 0o640);
        assert_eq!((st.st_atime, st.st_mtime), (1000, 2000));
        rename_at(d, c"p", d, c"q").unwrap();
        assert_eq!(fstatat_nofollow(d, c"p").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        link_at(d, c"q", d, c"r", 0).unwrap();
        assert_eq!(fstatat_nofollow(d, c"r").unwrap().st_nlink, 2);
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn a_duplicate_shares_the_file_and_is_close_on_exec() {
        let (path, dir) = temp_dir("dup");
        let dup = dup_cloexec(dir.as_fd()).unwrap();
        assert_ne!(dup.as_raw_fd(), dir.as_raw_fd());
        let flags = nix::fcntl::fcntl(dup.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let (a, b) = (fstat(dup.as_fd()).unwrap(), fstat(dir.as_fd()).unwrap());
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        let proc = open(&cstr(format!("/proc/self/fd/{}", dir.as_raw_fd()).as_bytes()).unwrap(), libc::O_PATH).unwrap();
        let c = fstat(proc.as_fd()).unwrap();
        assert_eq!((c.st_dev, c.st_ino), (b.st_dev, b.st_ino), "open follows the magic link");
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn futimens_sets_both_times() {
        let (path, dir) = temp_dir("times");
        let f = open_at(dir.as_fd(), c"f", libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600).unwrap();
        futimens(f.as_fd(), &[libc::timespec { tv_sec: 5, tv_nsec: 0 }, libc::timespec { tv_sec: 7, tv_nsec: 0 }]).unwrap();
        let st = fstat(f.as_fd()).unwrap();
        assert_eq!((st.st_atime, st.st_mtime), (5, 7));
        let mut buf = [0u8; 8];
        // No such attribute: the errno comes back.
        assert!(fgetxattr(f.as_fd(), c"user.vserver-test-none", &mut buf).is_err());
        std::fs::remove_dir_all(&path).unwrap();
    }
}
