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
use rlimit::RlimitError;

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
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod real_tests;
