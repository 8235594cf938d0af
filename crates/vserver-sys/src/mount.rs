//! Mounts: mount(2), umount2(2), pivot_root(2), and mknod(2) of device nodes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::Command;

use crate::check;

/// mount(2); None for an argument the call does not need (NULL).
pub fn mount(source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: libc::c_ulong, data: Option<&CStr>) -> io::Result<()> {
    let ptr = |o: Option<&CStr>| o.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    check(unsafe { libc::mount(ptr(source), target.as_ptr(), ptr(fstype), flags, ptr(data).cast()) }).map(drop)
}

/// umount2(2) with `flags` (MNT_DETACH, ...).
pub fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: target is NUL-terminated.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// pivot_root(2): `new_root` becomes the root of this mount namespace and
/// the old root is put at `put_old`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both arguments are NUL-terminated strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(drop)
}

/// mknodat(2): a node of `kind` (S_IFCHR, S_IFBLK) with permission bits
/// `mode` (the umask applies) and device number `major:minor`.
pub fn mknod_at(dir: BorrowedFd, name: &CStr, kind: libc::mode_t, mode: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    // SAFETY: name is NUL-terminated; dir is a descriptor the caller holds.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), kind | mode, libc::makedev(major, minor)) }).map(drop)
}

/// Makes `cmd` run in a mount namespace of its own whose mounts are all
/// private (unshare(CLONE_NEWNS), then mount("none", "/", MS_REC |
/// MS_PRIVATE) in the child before exec): what it mounts goes away with
/// it and never propagates back to the host.
pub fn exec_in_private_mount_ns(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and only makes
    // two async-signal-safe system calls with static, NUL-terminated strings.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
