//! Namespaces of the calling process and what lives in them: unshare(2),
//! the uts domain name, reboot(2) (for a pid namespace's init: its end).

use std::ffi::CStr;
use std::io;

use crate::check;

/// unshare(2) with CLONE_* `flags`. Callers are single-threaded where the
/// flags need it (CLONE_NEWUSER; a new time or pid namespace applies to
/// the children made afterwards).
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare(2) takes a plain integer.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// The NIS domain name of the calling process's uts namespace.
pub fn set_domainname(name: &CStr) -> io::Result<()> {
    // SAFETY: a NUL-terminated string and its length without the NUL.
    check(unsafe { libc::setdomainname(name.as_ptr(), name.to_bytes().len()) }).map(drop)
}

/// reboot(2) with `cmd` (LINUX_REBOOT_CMD_*). Called by the init of a pid
/// namespace, the kernel ends that namespace (its init dies of SIGHUP for a
/// restart, SIGINT for a halt or power-off) and does not return; without
/// CAP_SYS_BOOT it returns the error.
pub fn reboot(cmd: libc::c_int) -> io::Result<()> {
    // SAFETY: reboot(2) takes a plain integer; the callers are a pid namespace's init.
    check(unsafe { libc::reboot(cmd) }).map(drop)
}
