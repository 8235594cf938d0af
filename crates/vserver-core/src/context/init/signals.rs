//! The signals pid 1 handles: blocked, and read from a signalfd in its
//! main loop (with the real-time ones, which nix's SigSet cannot name).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};

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
    // SAFETY: an empty set, set as the mask of this (forked) thread; the
    // dispositions back to the default (exec resets handlers, not SIG_IGN).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..=31 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

pub(super) struct SignalFd {
    pub(super) fd: OwnedFd,
}

impl SignalFd {
    pub(super) fn block(signals: &[libc::c_int]) -> Result<SignalFd> {
        extern "C" fn noop(_: libc::c_int) {}
        // SAFETY: building and installing a signal mask; a handler that does
        // nothing makes the kernel deliver these to a namespace's init at all.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::signal(sig, noop as extern "C" fn(libc::c_int) as libc::sighandler_t);
                libc::sigaddset(&mut set, sig);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error()).context("blocking pid 1's signals");
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("creating pid 1's signalfd");
            }
            Ok(SignalFd { fd: OwnedFd::from_raw_fd(fd) })
        }
    }

    pub(super) fn read(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data; the kernel fills it whole.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one record into a struct we own.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        (n == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}
