//! The admin's side of a guest terminal session. The pty itself is allocated
//! by the joiner inside the guest's own devpts (control/spawn.rs); its
//! master comes back to `vserver`, which relays it to the admin's terminal.
//! The guest never gets a descriptor of the admin's terminal, so it can
//! neither read what the admin types after the command ends, nor become the
//! terminal's foreground process group, nor inject input (TIOCSTI).

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

use crate::sys::tty;

/// The admin's terminal (our stdin) in raw mode (so ^C, ^Z and ^D reach the
/// guest's line discipline as bytes), restored when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter_stdin() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// rows, columns, x and y pixels of a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<[u16; 4]> {
    tty::window_size(fd).ok().map(|ws| [ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel])
}

/// Passes a new size on; the kernel sends SIGWINCH to the guest's
/// foreground process group.
pub fn set_window_size(master: BorrowedFd<'_>, size: [u16; 4]) {
    let ws = libc::winsize { ws_row: size[0], ws_col: size[1], ws_xpixel: size[2], ws_ypixel: size[3] };
    let _ = tty::set_window_size(master, &ws);
}

/// isatty(3).
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    fd.is_terminal()
}
