//! clone(2) used like fork(2), but with namespace flags: the child is created
//! directly inside new namespaces (a new pid namespace makes it pid 1).
//! Unlike unshare(CLONE_NEWPID) in the parent, this can be repeated for every
//! guest restart by the same monitor.

use std::io;

use super::check;

/// Returns 0 in the child and the child's pid in the parent.
pub fn fork_into(namespaces: libc::c_int) -> io::Result<libc::pid_t> {
    let flags = (namespaces | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: with a NULL stack clone(2) behaves like fork(2): the child gets
    // a copy of the address space and continues from here. Callers are
    // single-threaded processes (the monitor), so no lock is held by another
    // thread in the child.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    check(rc).map(|pid| pid as libc::pid_t)
}
