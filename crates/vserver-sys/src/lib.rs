//! vserver-rs's raw system calls: the one crate of the project allowed
//! `unsafe` (`vserver-core` and every binary `forbid` it). Each function is
//! small and safe to call: it checks the kernel's answer, turns -1 into the
//! errno as an `io::Error`, and owns what the kernel hands back (`OwnedFd`).
//! Every `unsafe` block carries its SAFETY note. Nothing here knows what a
//! guest is: the concepts live in `vserver-core`.

pub mod clone;
pub mod clone3;
pub mod ebpf;
pub mod fds;
pub mod file;
pub mod landlock;
pub mod misc;
pub mod mount;
pub mod notify;
pub mod ns;
pub mod openat2;
pub mod pidfd;
pub mod poll;
pub mod prctl;
pub mod process;
pub mod quota;
pub mod resource;
pub mod rlimit;
pub mod seccomp;
pub mod signal;
pub mod socket;
pub mod tty;

use std::io;

/// A file's owner, group and mode (permission bits, and the type bits where
/// it was read from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Owner {
    pub const ROOT_FILE: Owner = Owner { uid: 0, gid: 0, mode: 0o644 };
    pub const ROOT_SECRET: Owner = Owner { uid: 0, gid: 0, mode: 0o600 };

    pub fn of(stx: &libc::statx) -> Owner {
        Owner { uid: stx.stx_uid, gid: stx.stx_gid, mode: u32::from(stx.stx_mode) }
    }
}

/// Turns a negative return (-1) of a system call into the errno as an
/// io::Error; any other value is the result.
pub fn check<T: Copy + PartialOrd + Default>(rc: T) -> io::Result<T> {
    if rc < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An exclusive flock(2) on `fd` (released when the file is closed); with
/// `wait` false, EWOULDBLOCK when another holds it.
pub fn flock(fd: std::os::fd::BorrowedFd, wait: bool) -> io::Result<()> {
    let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&fd), op) }).map(drop)
}

/// Raises the soft RLIMIT_NOFILE to `want` (None: to the hard limit), never
/// above the hard limit; best effort (no privilege is needed for it).
pub fn raise_fd_limit(want: Option<u64>) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let target = want.unwrap_or(lim.rlim_max).min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: setrlimit of our own process with a valid struct.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}
