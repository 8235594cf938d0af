//! Seccomp user notifications as their supervisor sees them: receive, answer, check, and the notifying task's memory.
//!
//! The ioctls of a listener descriptor (seccomp_unotify(2)) and
//! process_vm_readv(2); what to answer is the caller's business.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::check;

/// One notification: the task's id, pid and its system call with arguments.
pub type Notification = libc::seccomp_notif;

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (kernel 6.6): the notifying task and
/// the supervisor hand the CPU to each other directly, as in a synchronous
/// call, instead of going through the scheduler twice per call. An older
/// kernel refuses the flag (the error is returned; it only costs speed).
pub fn set_sync_wake_up(listener: BorrowedFd) -> io::Result<()> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: SET_FLAGS takes the flag word as its integer argument.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) })?;
    Ok(())
}

/// Receives the next notification (SECCOMP_IOCTL_NOTIF_RECV). ENOENT means
/// the caller went away (or was interrupted) between being noticed and
/// being received.
pub fn recv(listener: BorrowedFd) -> io::Result<Notification> {
    // SAFETY: the kernel requires a zeroed buffer; seccomp_notif is plain data.
    let mut n: Notification = unsafe { std::mem::zeroed() };
    // SAFETY: RECV writes one seccomp_notif into n, which we own.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
    Ok(n)
}

/// Whether notification `id` is still pending (SECCOMP_IOCTL_NOTIF_ID_VALID):
/// its task still waits in the very system call.
pub fn id_valid(listener: BorrowedFd, id: u64) -> bool {
    // SAFETY: ID_VALID reads one u64, which lives across the call.
    unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Answers notification `id` (SECCOMP_IOCTL_NOTIF_SEND): `error` a negative
/// errno to fail the call with, or 0 with SECCOMP_USER_NOTIF_FLAG_CONTINUE
/// in `flags` to let it run. ENOENT: the task is no longer waiting.
pub fn respond(listener: BorrowedFd, id: u64, error: i32, flags: u32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp { id, val: 0, error, flags };
    // SAFETY: SEND reads one seccomp_notif_resp, which lives across the call.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) })?;
    Ok(())
}

/// Reads up to `buf.len()` bytes of task `tid`'s memory at `addr`
/// (process_vm_readv); fewer where the mapping ends.
pub fn read_memory(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Never across a page boundary in one go, so a string at the end of a
    // mapping reads up to its end instead of failing.
    let to_page_end = 4096 - (addr as usize % 4096);
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len().min(to_page_end) };
    // SAFETY: local is our buffer of its length; remote is only read by the
    // kernel, in the other process, which checks it is mapped there.
    let n = check(unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) })?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_s_memory_is_read_up_to_the_page_end() {
        let data = vec![7u8; 3 * 4096];
        let me = std::process::id() as i32;
        let mut buf = [0u8; 64];
        let n = read_memory(me, data.as_ptr() as u64, &mut buf).unwrap();
        assert!(n > 0 && n <= 64 && buf[..n].iter().all(|&b| b == 7));
        // A page boundary inside `data`, 10 bytes ahead.
        let boundary = (data.as_ptr() as u64 / 4096 + 2) * 4096;
        assert_eq!(read_memory(me, boundary - 10, &mut buf).unwrap(), 10, "never across a page boundary");
        assert!(read_memory(me, 0, &mut buf).is_err(), "an unmapped address is an error");
    }
}
