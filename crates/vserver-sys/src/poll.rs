//! Waiting for descriptors: epoll(7) (nix is built without its `event`
//! feature; its `poll` is safe and used directly).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::check;

/// A new epoll instance, close-on-exec (epoll_create1(EPOLL_CLOEXEC)).
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 returns a new descriptor or -1.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `fd` to `epoll` for `events`; `data` comes back with each event.
pub fn epoll_add(epoll: BorrowedFd, fd: BorrowedFd, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: ev is a valid epoll_event; both descriptors are valid for the borrow.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

/// Removes `fd` from `epoll`.
pub fn epoll_del(epoll: BorrowedFd, fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null since Linux 2.6.9).
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut()) })?;
    Ok(())
}

/// Waits at most `timeout_ms` (0: not at all, -1: forever) for events of
/// `epoll` and fills `events` from the front: how many (EINTR is an error).
pub fn epoll_wait(epoll: BorrowedFd, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
    let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: events is valid for `max` entries, which the kernel writes.
    let n = check(unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) })?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn an_epoll_set_reports_a_readable_pipe_with_its_data() {
        let ep = epoll_create().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        epoll_add(ep.as_fd(), r.as_fd(), libc::EPOLLIN as u32, 42).unwrap();
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(epoll_wait(ep.as_fd(), &mut evs, 0).unwrap(), 0);
        nix::unistd::write(&w, b"x").unwrap();
        assert_eq!(epoll_wait(ep.as_fd(), &mut evs, 0).unwrap(), 1);
        let data = evs[0].u64;
        assert_eq!(data, 42);
        epoll_del(ep.as_fd(), r.as_fd()).unwrap();
        assert_eq!(epoll_wait(ep.as_fd(), &mut evs, 0).unwrap(), 0);
    }
}
