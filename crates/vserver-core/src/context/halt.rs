//! How a running guest is asked to stop (INTERFACES §3). `vserver stop`
//! writes the stop marker (holding the time the guest has left) and
//! signals the monitor; the monitor sends the style's request to pid 1 and
//! kills the guest when the time is up:
//!
//! - `systemd`: SIGRTMIN+3, systemd's "halt" (as systemd-nspawn and
//!   machined send it); the guest's shutdown runs on its console;
//! - `sysv` (the built-in init): SIGRTMIN+3 too: it runs `cmd.stop` or
//!   `/etc/init.d/rc 0` inside the guest, then ends;
//! - `plain`: SIGINT, which util-vserver's `vserver ... stop` sends to a
//!   guest's own init (`vkill -s INT`): sysvinit's and busybox init's
//!   ctrl-alt-del action, a reboot in Debian's inittab and busybox's
//!   default, which the stop marker turns into a stop. A pid 1 without a
//!   SIGINT handler never sees it (the kernel drops signals with the default
//!   action sent to a namespace's init) and is killed when the time is up.
//!
//! `apps/init/cmd.stop` of a `plain` or `systemd` guest is run inside the
//! guest by `vserver stop` first; a `plain` guest then gets SIGTERM on every
//! process (util-vserver's kill sequence after its stop command), a
//! `systemd` guest its SIGRTMIN+3.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{InitConfig, InitStyle};
use crate::paths::Paths;

/// What `vserver stop` waits by default before the guest is killed.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// systemd's halt request (SIGRTMIN+3), also honoured by the built-in init.
pub fn halt_signal() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

/// systemd's reboot request (SIGRTMIN+5), also honoured by the built-in init.
pub fn reboot_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HaltRequest {
    /// This signal to pid 1.
    Init(libc::c_int),
    /// SIGTERM to every process of the guest (its stop command has run).
    TerminateAll,
}

pub(super) fn halt_request(init: &InitConfig) -> HaltRequest {
    match init.style {
        InitStyle::Systemd | InitStyle::Sysv => HaltRequest::Init(halt_signal()),
        InitStyle::Plain if has_stop_command(init) => HaltRequest::TerminateAll,
        InitStyle::Plain => HaltRequest::Init(libc::SIGINT),
    }
}

/// `vserver stop` runs `cmd.stop` inside itself for these styles (the
/// built-in init runs it on its own halt).
pub(super) fn cli_runs_stop_command(init: &InitConfig) -> bool {
    init.style != InitStyle::Sysv && has_stop_command(init)
}

fn has_stop_command(init: &InitConfig) -> bool {
    init.cmd_stop.as_ref().is_some_and(|c| !c.is_empty())
}

/// `<rundir>/NAME/stopping`: present while a stop is under way (a reboot
/// from inside then does not bring the guest back); it holds the
/// milliseconds the guest has left before it is killed.
pub(super) fn stop_marker(paths: &Paths, name: &str) -> PathBuf {
    paths.guest_rundir(name).join("stopping")
}

pub(super) fn write_stop_marker(paths: &Paths, name: &str, left: Duration) -> std::io::Result<()> {
    fs::write(stop_marker(paths, name), format!("{}\n", left.as_millis()))
}

/// The time left that the marker names; None without a marker.
pub(super) fn read_stop_marker(paths: &Paths, name: &str) -> Option<Duration> {
    let text = fs::read_to_string(stop_marker(paths, name)).ok()?;
    Some(text.trim().parse::<u64>().map(Duration::from_millis).unwrap_or(DEFAULT_STOP_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realtime_requests_are_systemds_numbers() {
        // glibc reserves two realtime signals: SIGRTMIN is 34, so these are
        // 37 and 39, as `kill -RTMIN+3` and systemd use them.
        assert_eq!(halt_signal(), 37);
        assert_eq!(reboot_signal(), 39);
    }
}
