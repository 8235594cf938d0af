//! Resource limits, scheduling priority and I/O priority of processes.

use std::io;

use crate::check;

/// The nice level of the calling process (setpriority(PRIO_PROCESS, 0)).
pub fn set_nice(nice: libc::c_int) -> io::Result<()> {
    // SAFETY: setpriority(2) with plain integers.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }).map(drop)
}

const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// The I/O class and priority of the calling process, as ioprio_set(2)'s
/// raw value (class << 13 | level).
pub fn set_own_ioprio(raw: i32) -> io::Result<()> {
    // SAFETY: ioprio_set(2) with plain integers.
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, libc::c_long::from(raw)) }).map(drop)
}

/// ioprio_get(2) of process `pid`: its raw I/O priority value.
pub fn ioprio_of(pid: libc::pid_t) -> io::Result<libc::c_long> {
    // SAFETY: ioprio_get(2) with plain integers.
    check(unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, libc::c_long::from(pid)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_io_priority_reads() {
        assert!(ioprio_of(0).is_ok());
        assert_eq!(ioprio_of(libc::pid_t::MAX).unwrap_err().raw_os_error(), Some(libc::ESRCH), "no such process");
    }
}
