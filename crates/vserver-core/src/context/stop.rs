//! `vserver NAME stop`: asks the guest to shut down the way its init style
//! understands (halt.rs), gives it up to the timeout, then the monitor ends
//! the context (SIGKILL to pid 1 takes the whole pid namespace) and tears
//! everything down. A timeout of 0 skips the guest's shutdown.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::context::error::{ContextError, Result, StepResult};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::enter::exec_in_guest;
use super::halt;
use super::start::clean_stale;
use crate::cgroup::{GuestCgroup, Layout};
use crate::config::GuestBasics;
use crate::paths::Paths;
use crate::runstate::{self, RunState, Status};
use crate::sys::pidfd;

/// What the monitor gets beyond the timeout to kill the guest and tear
/// down, before `stop` does it itself.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    /// How long the guest's own shutdown gets before it is killed.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions { timeout: halt::DEFAULT_STOP_TIMEOUT }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// The guest was not running, but a stale run state was cleaned up.
    CleanedStale,
}

pub fn stop_guest(paths: &Paths, guest: &GuestBasics, opts: StopOptions) -> Result<Stopped> {
    let state = match runstate::settled_status(paths, &guest.name, runstate::SETTLE_LIMIT)? {
        Status::Stopped => return Err(ContextError::NotRunning { name: guest.name.clone() }),
        Status::Stale(s) => {
            clean_stale(paths, &guest.name, &s)?;
            return Ok(Stopped::CleanedStale);
        }
        Status::Running(s) => s,
    };
    let monitor = pidfd::open(state.monitor.pid).step("opening the guest's monitor")?;
    if !state.monitor.is_alive() {
        return Err(ContextError::StoppedMeanwhile { name: guest.name.clone() });
    }
    let started = Instant::now();
    // From now on a reboot from inside must not bring the guest back.
    halt::write_stop_marker(paths, &guest.name, opts.timeout).step("marking the guest as stopping")?;
    // compat: pre-stop scriptlets before the guest is asked to stop.
    super::scripts::pre_stop(paths, guest);
    if !opts.timeout.is_zero() && halt::cli_runs_stop_command(&guest.init) {
        run_stop_command(paths, guest, opts.timeout);
        // compat: apps/init/cmd.stop-sync after the stop command.
        super::scripts::stop_sync(guest);
        halt::write_stop_marker(paths, &guest.name, opts.timeout.saturating_sub(started.elapsed()))
            .step("marking the guest as stopping")?;
    }
    if let (Some(steps), false) = (&guest.init.killseq, opts.timeout.is_zero()) {
        // compat: apps/init/killseq, util-vserver's way of ending the guest,
        // instead of the style's halt request.
        let layout = Layout::detect(&paths.cgroup_root)?;
        super::killseq::send(&GuestCgroup::from_dirs(&layout, state.cgroups.clone()), steps);
    }
    // The monitor sends the style's halt request, kills pid 1 when the
    // time is up, reaps it and removes the cgroup.
    pidfd::send_signal(&monitor, libc::SIGTERM).step("signalling the guest's monitor")?;
    // compat: post-stop scriptlets run in the monitor's teardown; they may take longer.
    let limit = opts.timeout.saturating_sub(started.elapsed()) + TEARDOWN_GRACE.max(super::scripts::teardown_grace(paths, guest));
    if wait_exit(&monitor, limit) {
        finish_removal(paths, guest, &state)?;
    } else {
        log::warn!("guest {}: the monitor did not end within {} s; cleaning up after it", guest.name, limit.as_secs());
        let _ = pidfd::send_signal(&monitor, libc::SIGKILL);
        wait_exit(&monitor, Duration::from_secs(5));
        remove_cgroup(paths, &guest.name, &state)?;
        super::start::remove_recorded_addresses(&state);
        RunState::remove(paths, &guest.name)?;
    }
    let _ = std::fs::remove_file(halt::stop_marker(paths, &guest.name));
    Ok(Stopped::Stopped)
}

/// The monitor of a stopped guest ends inside its cgroup2 `supervisor`
/// (monitor.rs, `undo`): what is left of the guest's cgroups goes here.
/// Under the start lock, and only while no new boot of the guest exists:
/// a `vserver start` that came in between owns the cgroup now.
fn finish_removal(paths: &Paths, guest: &GuestBasics, state: &RunState) -> Result<()> {
    let _lock = super::start::StartLock::take(paths)?;
    if RunState::load(paths, &guest.name)?.is_some_and(|s| s.monitor != state.monitor) {
        return Ok(());
    }
    remove_cgroup(paths, &guest.name, state)
}

fn remove_cgroup(paths: &Paths, name: &str, state: &RunState) -> Result<()> {
    let layout = Layout::detect(&paths.cgroup_root)?;
    let cgroup = GuestCgroup::from_dirs(&layout, state.cgroups.clone());
    cgroup.remove().or_else(|e| {
        // The monitor leaves the IP set's programs to go with the cgroup;
        // one that stays must not keep them.
        if let Some(v2) = cgroup.v2_dir() {
            if let Err(d) = crate::net::detach_from_cgroup(v2) {
                log::warn!("guest {name}: {d:#}");
            }
        }
        Err(e).with_step(|| format!("removing the cgroup of guest {name:?}"))
    })
}

/// `apps/init/cmd.stop`, run inside the guest (styles plain and systemd;
/// the built-in init runs it itself).
fn run_stop_command(paths: &Paths, guest: &GuestBasics, timeout: Duration) {
    let Some(argv) = guest.init.cmd_stop.as_ref() else { return };
    if let Err(e) = exec_in_guest(paths, &guest.name, argv, Some(timeout)) {
        log::warn!("guest {}: stop command: {e:#}", guest.name);
    }
}

fn wait_exit(pidfd: &std::os::fd::OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return false,
        }
    }
}
