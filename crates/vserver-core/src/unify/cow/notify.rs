//! The seccomp user-notification listener: receive a notification, check
//! that it is still pending, let the call continue or fail it.

use std::io;
use std::os::fd::BorrowedFd;

use crate::sys::notify as sys;

pub type Notification = sys::Notification;

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (kernel 6.6): the notifying task and
/// the supervisor hand the CPU to each other directly, as in a synchronous
/// call, instead of going through the scheduler twice per call. An older
/// kernel refuses the flag; that only costs speed.
pub fn set_sync_wake_up(listener: BorrowedFd) -> bool {
    sys::set_sync_wake_up(listener).is_ok()
}

/// Receives the next notification. ENOENT means the caller went away (or
/// was interrupted) between being noticed and being received.
pub fn recv(listener: BorrowedFd) -> io::Result<Notification> {
    sys::recv(listener)
}

/// Whether the notification is still pending: its task still waits in the
/// very system call, so what we read from /proc/PID belongs to it.
pub fn is_valid(listener: BorrowedFd, id: u64) -> bool {
    sys::id_valid(listener, id)
}

/// Lets the system call run as the task made it (kernel 5.5). ENOENT (the
/// task was interrupted or killed meanwhile) is not an error: it will ask
/// again if it still wants to.
pub fn continue_call(listener: BorrowedFd, id: u64) -> io::Result<()> {
    respond(listener, id, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
}

/// Fails the system call with `errno` (the private copy it needed could
/// not be made: no space, quota).
pub fn fail_call(listener: BorrowedFd, id: u64, errno: i32) -> io::Result<()> {
    respond(listener, id, -errno, 0)
}

fn respond(listener: BorrowedFd, id: u64, error: i32, flags: u32) -> io::Result<()> {
    match sys::respond(listener, id, error, flags) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// Reads a NUL-terminated string of the task's memory (at most PATH_MAX).
pub fn read_string(tid: i32, addr: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 512];
    while out.len() < libc::PATH_MAX as usize {
        let n = read_memory(tid, addr + out.len() as u64, &mut chunk)?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Reads up to `buf.len()` bytes of the task's memory; fewer where the
/// mapping ends (never across a page boundary in one go).
pub fn read_memory(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    sys::read_memory(tid, addr, buf)
}
