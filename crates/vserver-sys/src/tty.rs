//! Terminals: pseudo-terminal pairs, window sizes, terminal modes, the controlling terminal.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::check;

/// The window size of a terminal (TIOCGWINSZ).
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

/// Sets a terminal's window size (TIOCSWINSZ); on a pty master the kernel
/// sends SIGWINCH to the foreground process group of the slave.
pub fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we own.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) }).map(drop)
}

/// Makes `fd` the controlling terminal of this process (TIOCSCTTY, without
/// stealing it from another session); the caller is a session leader.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// Unlocks the slave of a pty master (TIOCSPTLCK with 0), as unlockpt(3).
pub fn unlock_pty(master: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }).map(drop)
}

/// The number N of a pty master's slave, /dev/pts/N (TIOCGPTN).
pub fn pty_number(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into `n`.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Opens the slave of a pty master through the master itself (TIOCGPTPEER,
/// kernel 4.13): no path lookup in a devpts someone else controls. `flags`
/// are open(2) flags (O_RDWR, O_NOCTTY, O_CLOEXEC).
pub fn open_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes the open flags as an integer and returns a new descriptor.
    let fd = check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: a non-negative return is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn a_pty_pair_is_opened_through_its_master_and_keeps_its_size() {
        let master: OwnedFd =
            match OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open("/dev/ptmx") {
                Ok(f) => f.into(),
                Err(e) => return eprintln!("no /dev/ptmx here ({e}): skipped"),
            };
        unlock_pty(master.as_fd()).unwrap();
        let slave = open_peer(master.as_fd(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC).unwrap();
        let ws = libc::winsize { ws_row: 33, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        set_window_size(master.as_fd(), &ws).unwrap();
        let got = window_size(slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 101));
    }

    #[test]
    fn a_pipe_has_no_window_size() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert_eq!(window_size(r.as_fd()).unwrap_err().raw_os_error(), Some(libc::ENOTTY));
    }
}
