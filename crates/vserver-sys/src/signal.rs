//! Signal dispositions, masks and signalfds by number, including the
//! real-time signals that nix's `Signal` and `SigSet` cannot name, and the
//! clean signal and descriptor state of a host command between fork and exec.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::check;

/// Puts `sig` back to its default disposition (signal(2) with SIG_DFL).
pub fn set_default(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_DFL runs no handler code; an invalid number is refused with EINVAL.
    if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a handler that does nothing for `sig`: the kernel delivers a
/// signal to a pid namespace's init only when it has a handler for it
/// (and then, blocked, the signal waits for a signalfd to read it).
pub fn set_noop_handler(sig: libc::c_int) -> io::Result<()> {
    extern "C" fn noop(_: libc::c_int) {}
    // SAFETY: the handler touches nothing, so it is async-signal-safe.
    if unsafe { libc::signal(sig, noop as extern "C" fn(libc::c_int) as libc::sighandler_t) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A set of signals by number (a sigset_t).
#[derive(Clone, Copy)]
pub struct Mask(libc::sigset_t);

impl Mask {
    /// The set of `signals`; numbers the kernel does not know are left out.
    pub fn of(signals: &[libc::c_int]) -> Mask {
        let mut mask = Mask::empty();
        for &sig in signals {
            // SAFETY: adds to a set we own; an invalid number only fails with EINVAL.
            unsafe { libc::sigaddset(&mut mask.0, sig) };
        }
        mask
    }

    pub fn empty() -> Mask {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it whole.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to the set.
        unsafe { libc::sigemptyset(&mut set) };
        Mask(set)
    }

    /// Adds the set to the calling thread's blocked signals
    /// (sigprocmask(SIG_BLOCK)).
    pub fn block(&self) -> io::Result<()> {
        // SAFETY: a valid set; no old set is asked for.
        check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) }).map(drop)
    }

    /// Makes the set the calling thread's blocked signals
    /// (sigprocmask(SIG_SETMASK)).
    pub fn set_as_mask(&self) -> io::Result<()> {
        // SAFETY: a valid set; no old set is asked for.
        check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) }).map(drop)
    }

    /// A new signalfd(2) reading the signals of the set, with `flags`
    /// (SFD_CLOEXEC, SFD_NONBLOCK).
    pub fn signalfd(&self, flags: libc::c_int) -> io::Result<OwnedFd> {
        // SAFETY: -1 asks for a new descriptor; the set is valid for the call.
        let fd = check(unsafe { libc::signalfd(-1, &self.0, flags) })?;
        // SAFETY: a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Reads one record from a signalfd: the signal's number, or None when
/// nothing is pending (a non-blocking signalfd) or the read failed.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    // SAFETY: signalfd_siginfo is plain data; all-zero is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading at most one record into a struct we own.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    (n == size as isize).then_some(info.ssi_signo as libc::c_int)
}

static NOTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note(_: libc::c_int) {
    NOTED.store(true, Ordering::Relaxed);
}

/// Installs for `sig` a handler that only notes that a signal came (see
/// [`signal_noted`]). Without SA_RESTART: a blocking call it interrupts
/// returns EINTR, so a loop around poll(2) sees the note at once.
/// (Belongs in `signal`.)
pub fn note_signal(sig: Signal) -> io::Result<()> {
    let action = SigAction::new(SigHandler::Handler(note), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe { sigaction(sig, &action) }?;
    Ok(())
}

/// Whether a signal given to [`note_signal`] has come.
pub fn signal_noted() -> bool {
    NOTED.load(Ordering::Relaxed)
}

/// Ends the process by `sig` with its default action, as a C program ends
/// (a shell sees 128 + sig); exits with that code should the signal be
/// blocked or either call fail (there is nothing else to do with an error
/// here). Nothing else of the process runs afterwards. (Belongs in `signal`.)
pub fn die_by_signal(sig: libc::c_int) -> ! {
    // SAFETY: resetting one signal's disposition to the default (no handler
    // of ours is involved); raise(3) takes a plain integer.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    crate::process::exit_now(128 + sig)
}

/// kill(2) with a raw signal number (real-time signals included, which
/// nix's `Signal` does not name); a negative `pid` is a process group.
/// (Belongs in `signal`.)
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// sigtimedwait(2) for the (blocked) signals in `set`: the signal taken, or
/// None when none came within `timeout` (or a handled signal interrupted).
pub fn wait_signal(set: &nix::sys::signal::SigSet, timeout: std::time::Duration) -> Option<libc::c_int> {
    let ts = libc::timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    let set: &libc::sigset_t = set.as_ref();
    // SAFETY: set and ts are valid for the call; no siginfo is requested.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (r > 0).then_some(r)
}

/// Between fork and exec of `cmd` (after std has set up its stdio): `fd3`,
/// when given, is duplicated onto descriptor 3 (an error stops the spawn),
/// every descriptor above the ones kept is closed (close_range, best
/// effort), and every signal is unblocked (the caller may block the ones it
/// reads from a signalfd). `fd3` belongs to `cmd` from now on: it is closed
/// in the caller when `cmd` is dropped.
pub fn exec_clean(cmd: &mut Command, fd3: Option<OwnedFd>) {
    let first_closed: libc::c_uint = if fd3.is_some() { 4 } else { 3 };
    let all = {
        let mut all = Mask::empty();
        // SAFETY: fills a set we own.
        unsafe { libc::sigfillset(&mut all.0) };
        all
    };
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (dup2, close_range,
    // sigprocmask) on values it owns; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = &fd3 {
                if libc::dup2(fd.as_raw_fd(), 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            libc::syscall(libc::SYS_close_range, first_closed, libc::c_uint::MAX, 0 as libc::c_uint);
            libc::sigprocmask(libc::SIG_UNBLOCK, &all.0, std::ptr::null_mut());
            Ok(())
        })
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{exit_code, fork_child, wait_pid};

    #[test]
    fn a_blocked_real_time_signal_is_read_from_the_signalfd() {
        // In a child: the test harness is multi-threaded, and the signal
        // must go to the one thread that blocked it.
        let rt = libc::SIGRTMIN() + 3;
        let mask = Mask::of(&[rt]);
        let pid = fork_child(|| {
            if set_noop_handler(rt).is_err() || mask.block().is_err() {
                return 2;
            }
            let Ok(fd) = mask.signalfd(libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) else { return 3 };
            if read_signalfd(std::os::fd::AsFd::as_fd(&fd)).is_some() {
                return 4;
            }
            // SAFETY: raise(3) with a valid signal number.
            unsafe { libc::raise(rt) };
            match read_signalfd(std::os::fd::AsFd::as_fd(&fd)) {
                Some(sig) if sig == rt => 0,
                _ => 5,
            }
        })
        .unwrap();
        assert_eq!(exit_code(wait_pid(pid, 0).unwrap().unwrap()), 0);
    }

    #[test]
    fn an_invalid_signal_number_is_an_error() {
        assert_eq!(set_default(0).unwrap_err().raw_os_error(), Some(libc::EINVAL));
        assert_eq!(set_default(libc::SIGKILL).unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
