//! Process file descriptors: a handle on one process that cannot be
//! confused with a later process reusing its pid.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::check;

pub fn open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    // SAFETY: a non-negative return is a descriptor we now own.
    check(rc).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn send_signal(pidfd: &OwnedFd, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: no siginfo (NULL) and no flags.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0) };
    check(rc).map(|_| ())
}

/// Joins the namespaces `nstypes` (CLONE_NEW* flags) of the process behind
/// `pidfd`, all at once.
pub fn setns(pidfd: &OwnedFd, nstypes: libc::c_int) -> io::Result<()> {
    // SAFETY: setns(2) with a pidfd and namespace flags.
    let rc = unsafe { libc::setns(pidfd.as_raw_fd(), nstypes) };
    check(rc as libc::c_long).map(|_| ())
}
