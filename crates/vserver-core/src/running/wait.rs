//! vwait: wait until a running guest is gone. The guest is gone when its
//! monitor has exited (the monitor tears the context down last, and stays
//! through a reboot from inside) and its init too (should the monitor have
//! died on its own). Both are watched through pidfds, so nothing polls.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::runstate::{ProcessId, RunState};
use crate::sys::pidfd;

/// How a wait ended, in util-vserver's words (its `--status-fd` line) and
/// exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The guest stopped: exit 0.
    Finished,
    /// The timeout passed and `--terminate` stopped the guest: exit 1.
    Killed,
    /// The timeout passed: exit 2.
    Timeout,
}

impl WaitOutcome {
    pub fn word(self) -> &'static str {
        match self {
            WaitOutcome::Finished => "FINISHED",
            WaitOutcome::Killed => "KILLED",
            WaitOutcome::Timeout => "TIMEOUT",
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            WaitOutcome::Finished => 0,
            WaitOutcome::Killed => 1,
            WaitOutcome::Timeout => 2,
        }
    }
}

/// A pidfd on a recorded process, `None` when it is already gone.
fn watch(id: &ProcessId) -> std::io::Result<Option<OwnedFd>> {
    match pidfd::open(id.pid) {
        // Opened, then checked: the pidfd is the recorded process.
        Ok(fd) if id.is_alive() => Ok(Some(fd)),
        Ok(_) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits until every one of `fds` has exited or `deadline` passes; true
/// when they all exited.
fn wait_all(fds: &[OwnedFd], deadline: Option<Instant>) -> std::io::Result<bool> {
    let mut pending: Vec<&OwnedFd> = fds.iter().collect();
    while !pending.is_empty() {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                PollTimeout::try_from(left.as_millis().min(i32::MAX as u128 - 1) as i32 + 1).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut polls: Vec<PollFd> = pending.iter().map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)).collect();
        match poll(&mut polls, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let exited: Vec<bool> = polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        pending = pending.into_iter().zip(exited).filter(|(_, gone)| !gone).map(|(fd, _)| fd).collect();
    }
    Ok(true)
}

/// Waits for the guest to stop. With a timeout and `terminate`, a guest
/// still running then is stopped the way `vserver stop` ends one (SIGTERM
/// to its monitor, which kills pid 1 and tears down), and KILLED comes back
/// once it is gone.
pub fn wait_stopped(state: &RunState, timeout: Option<Duration>, terminate: bool) -> std::io::Result<WaitOutcome> {
    let monitor = watch(&state.monitor)?;
    let init = watch(&state.init)?;
    let fds: Vec<OwnedFd> = monitor.into_iter().chain(init).collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    if wait_all(&fds, deadline)? {
        return Ok(WaitOutcome::Finished);
    }
    if !terminate {
        return Ok(WaitOutcome::Timeout);
    }
    if let Some(m) = watch(&state.monitor)? {
        let _ = pidfd::send_signal(&m, libc::SIGTERM);
    }
    if !wait_all(&fds, Some(Instant::now() + Duration::from_secs(10)))? {
        // The monitor did not manage: SIGKILL to pid 1 ends the pid namespace.
        if let Some(i) = watch(&state.init)? {
            pidfd::send_signal(&i, libc::SIGKILL)?;
        }
        wait_all(&fds, Some(Instant::now() + Duration::from_secs(10)))?;
    }
    Ok(WaitOutcome::Killed)
}
