//! The signals pid 1 handles: blocked, and read from a signalfd in its
//! main loop (with the real-time ones, which nix's SigSet cannot name).

use std::os::fd::{AsFd, OwnedFd};

use crate::context::error::{Result, StepResult};

use crate::sys::signal::{self, Mask};

pub(super) fn init_signals() -> Vec<libc::c_int> {
    let rt = libc::SIGRTMIN();
    vec![
        libc::SIGCHLD,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPWR,
        libc::SIGWINCH,
        libc::SIGALRM,
        rt + 3,
        rt + 4,
        rt + 5,
    ]
}

/// A child of init starts as after boot: nothing blocked, nothing ignored.
pub(super) fn unblock_all_signals() {
    // An empty set, set as the mask of this (forked) thread; the
    // dispositions back to the default (exec resets handlers, not SIG_IGN).
    let _ = Mask::empty().set_as_mask();
    for sig in 1..=31 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            let _ = signal::set_default(sig);
        }
    }
}

pub(super) struct SignalFd {
    pub(super) fd: OwnedFd,
}

impl SignalFd {
    pub(super) fn block(signals: &[libc::c_int]) -> Result<SignalFd> {
        // A handler that does nothing makes the kernel deliver these to a
        // namespace's init at all.
        for &sig in signals {
            let _ = signal::set_noop_handler(sig);
        }
        let set = Mask::of(signals);
        set.block().step("blocking pid 1's signals")?;
        let fd = set.signalfd(libc::SFD_CLOEXEC | libc::SFD_NONBLOCK).step("creating pid 1's signalfd")?;
        Ok(SignalFd { fd })
    }

    pub(super) fn read(&self) -> Option<libc::c_int> {
        signal::read_signalfd(self.fd.as_fd())
    }
}
