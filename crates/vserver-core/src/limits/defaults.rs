//! Limits every guest gets unless its configuration says otherwise.
//!
//! **Processes**: `pids.max` of 4,096 on `vserver/NAME`. Guest root is
//! exempt from RLIMIT_NPROC, so without a context limit one guest could fork
//! until the host's `pid_max` (often 32,768) is used up and no host process
//! can fork. 4,096 is far above what a full distribution with busy services
//! uses (a Debian guest with systemd, sshd, cron and nginx idles at a few
//! dozen tasks; a few hundred web workers and database threads stay well
//! below it — threads count), between podman's 2,048 (one service per
//! container) and systemd-nspawn's 16,384 (one machine per host), and about
//! what systemd gives a single service on a 32,768-pid host (15%: 4,915).
//! It bounds one runaway guest; a host running many guests should raise
//! `kernel.pid_max` (systemd sets 4,194,304). `rlimits/nproc` sets another
//! limit, `rlimits/nproc` `inf` lifts it.
//!
//! **Memory**: no default limit. The right size depends on the guest and on
//! the host, and a fixed number would either break real guests or protect
//! nothing. Instead the guest's processes get a raised OOM score (the
//! monitor sets `oom_score_adj`), so when the host runs out of memory the
//! kernel kills a guest process before a host daemon; `rlimits/rss` or
//! `cgroup/memory.max` bound a guest (also for all guests, in `.defaults`).

use serde::Serialize;

/// The process limit of a guest whose configuration sets none.
pub const PIDS_MAX: u64 = 4096;

/// What `vserver-info` shows: the defaults and where to change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestDefaults {
    /// `pids.max` of every guest without `rlimits/nproc` (or `cgroup/pids.max`).
    pub pids_max: u64,
    /// A default memory limit: none (see the module documentation).
    pub memory_max_bytes: Option<u64>,
}

/// The defaults every guest starts with.
pub fn guest_defaults() -> GuestDefaults {
    GuestDefaults { pids_max: PIDS_MAX, memory_max_bytes: None }
}
