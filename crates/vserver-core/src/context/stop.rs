//! `vserver NAME stop`: the guest's own stop command first, then SIGTERM to
//! every process but its init, then the monitor ends the context (SIGKILL to
//! pid 1 takes the whole pid namespace) and tears everything down.

use std::fs;
use std::os::fd::AsFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::enter::exec_in_guest;
use super::monitor::stop_marker;
use super::start::clean_stale;
use crate::cgroup::{GuestCgroup, Layout};
use crate::config::{Guest, InitStyle};
use crate::paths::Paths;
use crate::runstate::{self, RunState, Status};
use crate::sys::pidfd;

#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    /// How long the stop command and then SIGTERM get before SIGKILL.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions { timeout: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    /// The guest was not running, but a stale run state was cleaned up.
    CleanedStale,
}

pub fn stop_guest(paths: &Paths, guest: &Guest, opts: StopOptions) -> Result<Stopped> {
    let state = match runstate::status(paths, &guest.name)? {
        Status::Stopped => bail!("guest {:?} is not running", guest.name),
        Status::Stale(s) => {
            clean_stale(paths, guest, &s)?;
            return Ok(Stopped::CleanedStale);
        }
        Status::Running(s) => s,
    };
    let monitor = pidfd::open(state.monitor.pid).context("opening the guest's monitor")?;
    if !state.monitor.is_alive() {
        bail!("guest {:?} stopped meanwhile", guest.name);
    }
    // From now on a reboot from inside must not bring the guest back.
    fs::write(stop_marker(paths, &guest.name), b"").context("marking the guest as stopping")?;
    let deadline = Instant::now() + opts.timeout;
    // compat: pre-stop scriptlets before the stop command.
    super::scripts::pre_stop(paths, guest);
    run_stop_command(paths, guest, opts.timeout);
    // compat: apps/init/cmd.stop-sync after the stop command.
    super::scripts::stop_sync(guest);
    let layout = Layout::detect(&paths.cgroup_root)?;
    let cgroup = GuestCgroup::from_dirs(&layout, state.cgroups.clone());
    match &guest.init.killseq {
        // compat: apps/init/killseq, util-vserver's way of ending the rest.
        Some(steps) => super::killseq::send(&cgroup, steps),
        None => terminate_all_but_init(&cgroup, &state, deadline),
    }
    // The monitor kills pid 1 on SIGTERM, reaps it and removes the cgroup.
    pidfd::send_signal(&monitor, libc::SIGTERM).context("signalling the guest's monitor")?;
    // compat: the monitor runs the post-stop scriptlets before it ends; give them time.
    if !wait_exit(&monitor, super::scripts::teardown_grace(paths, guest)) {
        let _ = pidfd::send_signal(&monitor, libc::SIGKILL);
        cgroup.remove()?;
        super::start::remove_recorded_addresses(&state);
        RunState::remove(paths, &guest.name)?;
    }
    let _ = fs::remove_file(stop_marker(paths, &guest.name));
    Ok(Stopped::Stopped)
}

/// `apps/init/cmd.stop`, or for the sysv style `/etc/init.d/rc 0`.
fn run_stop_command(paths: &Paths, guest: &Guest, timeout: Duration) {
    let argv = match (&guest.init.cmd_stop, guest.init.style) {
        (Some(cmd), _) if !cmd.is_empty() => cmd.clone(),
        (_, InitStyle::Sysv) if guest.vdir.join("etc/init.d/rc").exists() => {
            // compat: apps/init/runlevel.stop
            vec!["/etc/init.d/rc".to_string(), guest.init.runlevel_stop.clone().unwrap_or_else(|| "0".to_string())]
        }
        _ => return,
    };
    if let Err(e) = exec_in_guest(paths, &guest.name, &argv, Some(timeout)) {
        eprintln!("vserver {}: stop command: {e:#}", guest.name);
    }
}

fn terminate_all_but_init(cgroup: &GuestCgroup, state: &RunState, deadline: Instant) {
    let others = || cgroup.pids().unwrap_or_default().into_iter().filter(|p| *p != state.init.pid).collect::<Vec<_>>();
    for pid in others() {
        // SAFETY: kill(2) on a pid read from the guest's cgroup.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    while !others().is_empty() && Instant::now() < deadline {
        sleep(Duration::from_millis(2));
    }
}

fn wait_exit(pidfd: &std::os::fd::OwnedFd, limit: Duration) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(limit.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    matches!(poll(&mut fds, ms), Ok(n) if n > 0)
}
