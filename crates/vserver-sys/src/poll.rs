//! Waiting for descriptors: poll(2) and epoll(7).
//!
//! (nix's `poll` is safe and used directly.) Until the lead sorts them into
//! their modules, this file also holds small wrappers the join/exec side
//! needed from modules other helpers own; each says where it belongs.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::check;

// --- belongs in `signal` -------------------------------------------------

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

// --- belongs in `resource` -----------------------------------------------

/// The resource limit `resource` (RLIMIT_*) of process `pid` (0: ourselves),
/// read with prlimit(2). (Belongs in `resource`.)
pub fn resource_limit(pid: libc::pid_t, resource: libc::__rlimit_resource_t) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit(2) reading a process's limit into our struct (no new limit: NULL).
    check(unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut lim) })?;
    Ok(lim)
}

// --- belongs in `misc` ---------------------------------------------------

/// Gives the free memory at the top of the heap back to the kernel
/// (malloc_trim(3)); whether any was released does not matter. (Belongs in `misc`.)
pub fn malloc_trim() {
    // SAFETY: malloc_trim only returns free heap memory; nothing points into it.
    unsafe { libc::malloc_trim(0) };
}

/// `t` (seconds since the epoch) in the local time zone, localtime_r(3);
/// None when it cannot be represented. (Belongs in `misc`.)
pub fn local_time(t: libc::time_t) -> Option<libc::tm> {
    // SAFETY: libc::tm is plain data (its tm_zone pointer may be null); all zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r fills the struct we own from a time value we own.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// setdomainname(2): the NIS domain name of this process's UTS namespace.
/// (Belongs in `misc` or `ns`.)
pub fn set_domainname(name: &[u8]) -> io::Result<()> {
    // SAFETY: a pointer and length of a live buffer; the kernel copies it.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

// --- belongs in `fds` ----------------------------------------------------

/// Takes ownership of descriptor `fd`, which this process inherited and was
/// told about (a `--status-fd N` option): it is closed when the result is
/// dropped. EBADF for a negative number. No check that it is open: callers
/// check it first (e.g. with F_GETFL).
///
/// Only sound when nothing else in the process owns `fd` or closes it (not
/// a descriptor the process opened itself; std's handles of 0-2 never close
/// theirs): otherwise two owners would close it. (Belongs in `fds`.)
pub fn adopt_inherited(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: see the contract above: the caller hands over a descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_limits_are_read_as_getrlimit_reads_them() {
        let ours = resource_limit(0, libc::RLIMIT_NOFILE).unwrap();
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((ours.rlim_cur, ours.rlim_max), (soft, hard));
        assert_eq!(resource_limit(-5, libc::RLIMIT_NOFILE).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn the_epoch_is_a_valid_local_time() {
        let tm = local_time(0).expect("converts");
        assert!((0..24).contains(&tm.tm_hour) && (0..60).contains(&tm.tm_min));
    }

    #[test]
    fn a_negative_descriptor_is_not_adopted() {
        assert_eq!(adopt_inherited(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
