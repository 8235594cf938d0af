//! Resource limits in two layers: per-process rlimits (`rlimit`, set before
//! exec and with prlimit on a running context) and context-wide limits on
//! the guest's cgroup (`context`, one module per controller with v1 and v2
//! backends side by side), plus what the kernel counts about them (`stats`)
//! and changing them on a running guest (`live`, used by `vlimit`).

pub mod cgroup_files;
pub mod context;
pub mod controller;
pub mod cpu;
pub mod cpuset;
pub mod defaults;
pub mod live;
pub mod memory;
pub mod pids;
pub mod rlimit;
pub mod save;
pub mod show;
pub mod stats;

pub use context::{apply_context_limits, ContextLimits};
pub use controller::LocateError;
pub use stats::{context_stats, ContextStats};

use std::io;
use std::path::PathBuf;

use controller::Version;
use rlimit::{Resource, RlimitError};

/// What can go wrong setting, changing, saving or reading a guest's limits.
/// Each message names the guest, file or resource and carries its cause;
/// the cause is not also the `source()`, so a chain printed with `{:#}`
/// names an errno once.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// A control file of the guest's cgroup that could not be read or
    /// written; the `io::Error` names the file.
    #[error("{0}")]
    Cgroup(io::Error),
    /// The cgroup mounts could not be read; the `io::Error` names the root.
    #[error("{0}")]
    Layout(io::Error),

    // Context-wide limits from the configuration (`context.rs`).
    #[error("guest {guest:?}: {err}")]
    Guest { guest: String, err: Box<LimitError> },
    #[error("{file}: {err}")]
    InFile { file: String, err: Box<LimitError> },
    #[error("{pages} pages is more memory than can be expressed")]
    RssTooLarge { pages: u64 },
    #[error("{low} bytes is above the limit over it ({up} bytes)")]
    AboveUpper { low: u64, up: u64 },
    #[error("{file}: a process count has no minimum")]
    NprocMinimum { file: String },
    #[error("{file}: the processes of a context have only a hard limit (pids.max); set nproc or nproc.hard")]
    NprocSoft { file: String },
    #[error(
        "{file}: {min} does not map onto a stock kernel (CFS resumes a throttled context at the next period, \
         that is after one refill of fill-rate tokens, not at a fill level); use at most fill-rate, or remove it"
    )]
    TokensMin { file: String, min: u64 },
    #[error(
        "{file}: {bias} does not map onto a stock kernel (priorities from the bucket fill level do not exist in CFS); \
         use `nice` or 0"
    )]
    PriorityBias { file: String, bias: i64 },
    #[error("{file}: {why}")]
    Bucket { file: String, why: String },
    #[error("{file}: a bucket size needs sched/fill-rate and sched/interval")]
    BucketSizeAlone { file: String },
    #[error("{file}: sched/fill-rate needs sched/interval as well")]
    FillRateAlone { file: String },
    #[error("{file}: sched/interval needs sched/fill-rate as well")]
    IntervalAlone { file: String },
    #[error("{file}: {tokens} is more than tokens-max {max}")]
    TokensAboveMax { file: String, tokens: u64, max: u64 },
    #[error("{}: sets {file}, which {other} sets too; keep one of them", from.display())]
    SetTwice { from: PathBuf, file: String, other: &'static str },
    #[error(
        "guest {guest:?}: its default process limit ({pids_max} processes; set rlimits/nproc for another, inf for none) \
         cannot be applied: {err}"
    )]
    DefaultPidsMax { guest: String, pids_max: u64, err: LocateError },
    #[error("a limit needs it: {0}")]
    ControllerNeeded(LocateError),
    #[error("guest {guest:?}: applying the context limits: {err}")]
    Applying { guest: String, err: Box<LimitError> },
    #[error("guest {guest:?}: writing its cgroup/ settings: {err}")]
    WritingCgroupFiles { guest: String, err: Box<LimitError> },

    // The `cgroup/` files (`cgroup_files.rs`).
    #[error("{}: {why}", file.display())]
    CgroupFileRefused { file: PathBuf, why: String },
    #[error("{}: cgroup.* files exist in cgroup v2 only", file.display())]
    CgroupV2Only { file: PathBuf },
    #[error("{}: cannot write {name}: {err}", file.display())]
    CgroupFileController { file: PathBuf, name: String, err: LocateError },
    #[error("{}: the guest's cgroup has no {name} here ({}; {version})", file.display(), dir.display())]
    NoCgroupFile { file: PathBuf, name: String, dir: PathBuf, version: Version },
    #[error("{}: {err}", from.display())]
    WritingCgroupFile { from: PathBuf, err: io::Error },

    // A running guest (`live.rs`).
    #[error("context {xid} is the host ({}); vlimit changes guests", if *xid == 0 { "root" } else { "spectator" })]
    HostContext { xid: u32 },
    #[error("no running guest has context {xid} (see vserver-stat)")]
    NoContext { xid: u32 },
    #[error("{0}")]
    GuestName(String),
    /// The run state of a guest could not be read; the `io::Error` names the file.
    #[error("{0}")]
    RunState(io::Error),
    #[error("no such guest {name:?}")]
    NoSuchGuest { name: String },
    #[error("guest {name:?} is not running; limits in {} apply at its next start", rlimits.display())]
    NotRunning { name: String, rlimits: PathBuf },
    #[error("{resource}: only rss has a minimum (-M); per-process limits and nproc have none")]
    MinimumNotRss { resource: Resource },
    #[error("nproc: the processes of a context have only a hard limit (pids.max); use -H")]
    NprocSoftOption,
    #[error("rss: the soft limit ({soft} bytes) would be above the hard limit ({hard} bytes)")]
    RssSoftAboveHard { soft: u64, hard: u64 },
    #[error("the guest keeps forking new processes; try again")]
    KeepsForking,
    #[error("{resource}: the soft limit {} would be above the hard limit {} (process {pid})", rlim_text(*soft), rlim_text(*hard))]
    SoftAboveHard { resource: Resource, soft: u64, hard: u64, pid: i32 },
    #[error("{resource}: setting the limit of process {pid}: {err}{}", privilege_hint(err))]
    Prlimit { resource: Resource, pid: i32, err: io::Error },
    #[error("guest {guest:?}: nothing was changed: {err}")]
    NothingChanged { guest: String, err: Box<LimitError> },

    // Saving to the configuration (`save.rs`).
    #[error("no such guest {name:?} ({} does not exist)", confdir.display())]
    NoGuestConfig { name: String, confdir: PathBuf },
    #[error("{resource}: {text:?} {why}")]
    BadValue { resource: Resource, text: String, why: String },
    #[error("creating {}: {err}", dir.display())]
    CreatingDir { dir: PathBuf, err: io::Error },
    #[error("reading {}: {err}", path.display())]
    Reading { path: PathBuf, err: io::Error },
    #[error("writing {}: {err}", file.display())]
    Writing { file: PathBuf, err: io::Error },
    #[error("removing {} (now split into .soft and .hard): {err}", file.display())]
    RemovingSplit { file: PathBuf, err: io::Error },

    // Showing limits and counters (`show.rs`, `stats.rs`).
    #[error("reading the {resource} limit of process {pid}: {err}")]
    ReadingProcessLimit { resource: Resource, pid: i32, err: io::Error },
    #[error("reading the context's CPU time: {0}")]
    CpuTime(io::Error),
}

/// An rlimit value as vlimit shows it.
fn rlim_text(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "inf".into()
    } else {
        v.to_string()
    }
}

fn privilege_hint(err: &io::Error) -> &'static str {
    if err.raw_os_error() == Some(libc::EPERM) {
        " (raising a limit of another process needs root, CAP_SYS_RESOURCE)"
    } else {
        ""
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod real_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_error_names_its_errno_once_and_has_no_source() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let inner = LimitError::Prlimit { resource: Resource::Nofile, pid: 7, err: eperm };
        let e = LimitError::NothingChanged { guest: "g1".into(), err: Box::new(inner) };
        let text = e.to_string();
        assert_eq!(text.matches("Operation not permitted").count(), 1, "{text}");
        assert!(text.ends_with("(raising a limit of another process needs root, CAP_SYS_RESOURCE)"), "{text}");
        assert!(std::error::Error::source(&e).is_none());
    }
}
