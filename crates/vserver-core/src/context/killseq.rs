//! util-vserver's `apps/init/killseq` (`SIGNAL [WAIT SIGNAL]...`, its
//! default `15 5 9`): after the stop command, the signal goes to every
//! process of the guest, its init included; while any is left, the next
//! signal follows after the wait.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cgroup::GuestCgroup;
use crate::config::KillStep;

/// Sends the sequence; returns once the guest's cgroup is empty or the
/// sequence is done. The cgroup is the only record of what is the guest's.
pub fn send(cgroup: &GuestCgroup, steps: &[KillStep]) {
    let empty = || cgroup.pids().map(|p| p.is_empty()).unwrap_or(true);
    for step in steps {
        let deadline = Instant::now() + Duration::from_millis(step.wait_ms);
        while !empty() && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
        if empty() {
            return;
        }
        if let Err(e) = cgroup.signal_all(step.signal) {
            log::warn!("sending signal {} to the guest: {e}", step.signal);
        }
    }
}
