//! The admin's side of a guest terminal session. The pty itself is allocated
//! by the joiner inside the guest's own devpts (control/spawn.rs); its
//! master comes back to `vserver`, which relays it to the admin's terminal.
//! The guest never gets a descriptor of the admin's terminal, so it can
//! neither read what the admin types after the command ends, nor become the
//! terminal's foreground process group, nor inject input (TIOCSTI).

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::sys::termios::{self, SetArg, Termios};

/// The admin's terminal in raw mode (so ^C, ^Z and ^D reach the guest's
/// line discipline as bytes), restored when dropped.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.as_raw_fd(), saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the descriptor stays open for the life of the process (0-2).
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSADRAIN, &self.saved);
    }
}

/// rows, columns, x and y pixels of a terminal.
pub fn window_size(fd: RawFd) -> Option<[u16; 4]> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into the struct we own.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some([ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel])
}

/// Passes a new size on; the kernel sends SIGWINCH to the guest's
/// foreground process group.
pub fn set_window_size(master: RawFd, size: [u16; 4]) {
    let ws = libc::winsize { ws_row: size[0], ws_col: size[1], ws_xpixel: size[2], ws_ypixel: size[3] };
    // SAFETY: TIOCSWINSZ reads the struct we own.
    unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
}

pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}
