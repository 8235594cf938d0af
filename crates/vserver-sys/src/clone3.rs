//! clone3(2) used like fork(2), with the two things fork cannot do: a pidfd
//! for the child from the start (no pid reuse race, pollable for its exit)
//! and, with a cgroup2 directory descriptor, the child created directly
//! inside that cgroup (CLONE_INTO_CGROUP, kernel 5.7), so it never runs a
//! single instruction outside it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// struct clone_args of <linux/sched.h>, version 2 (88 bytes, with `cgroup`).
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub enum Forked {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// Forks with a pidfd, into `cgroup` when given. `exit_signal` 0 means the
/// parent gets no SIGCHLD (it waits through the pidfd, with `__WALL`).
/// Fails with EINVAL or E2BIG on kernels without CLONE_INTO_CGROUP.
pub fn fork_with_pidfd(cgroup: Option<BorrowedFd<'_>>, exit_signal: libc::c_int) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: exit_signal as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: with no CLONE_VM and a zero stack, clone3 behaves like fork(2):
    // the child gets a copy of the address space and returns here with 0.
    // Callers are single-threaded (the monitor), so no lock is held by
    // another thread in the child.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        // SAFETY: the kernel stored a new descriptor for the child in `pidfd`.
        pid => Ok(Forked::Parent { pid: pid as libc::pid_t, pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) } }),
    }
}

/// The exit status of a child forked with `fork_with_pidfd`, without
/// blocking: None while it runs.
pub fn try_wait(pidfd: &OwnedFd) -> io::Result<Option<libc::siginfo_t>> {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: waitid on a pidfd we own, into our struct.
    let rc = unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::__WALL) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: si_pid is valid after waitid; 0 means nothing has changed.
    Ok((unsafe { info.si_pid() } != 0).then_some(info))
}

/// Exit code, or the signal that ended the child, from waitid's siginfo.
pub fn exit_of(info: &libc::siginfo_t) -> (Option<i32>, Option<i32>) {
    // SAFETY: si_status is valid for a CLD_* siginfo from waitid.
    let status = unsafe { info.si_status() };
    if info.si_code == libc::CLD_EXITED {
        (Some(status), None)
    } else {
        (None, Some(status))
    }
}
