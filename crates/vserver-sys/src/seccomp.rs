//! Installing seccomp filters (seccomp(2), SECCOMP_SET_MODE_FILTER). The
//! programs are built elsewhere as plain data (`vserver-core`'s seccomp
//! compiler); this only hands them to the kernel.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::check;

fn set_mode_filter(prog: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog { len, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: a program of the kernel's own sock_filter structs, `len` of
    // them; the kernel copies it and keeps no pointer to it.
    check(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog) })
}

/// Installs `prog` on the calling thread. Without no_new_privs the caller
/// must hold CAP_SYS_ADMIN.
pub fn install_filter(prog: &[libc::sock_filter]) -> io::Result<()> {
    set_mode_filter(prog, 0).map(drop)
}

/// Installs `prog` like [`install_filter`] and returns its user-notification
/// listener (SECCOMP_FILTER_FLAG_NEW_LISTENER), the descriptor a supervisor
/// receives SECCOMP_RET_USER_NOTIF calls on.
pub fn install_filter_with_listener(prog: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let fd = set_mode_filter(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    // SAFETY: with NEW_LISTENER a non-negative return is a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_oversized_program_is_refused() {
        assert_eq!(install_filter(&[]).unwrap_err().raw_os_error(), Some(libc::EINVAL));
        let nop = libc::sock_filter { code: 0, jt: 0, jf: 0, k: 0 };
        let huge = vec![nop; usize::from(u16::MAX) + 1];
        assert_eq!(install_filter(&huge).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
