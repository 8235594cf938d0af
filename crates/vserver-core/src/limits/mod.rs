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
pub use stats::{context_stats, ContextStats};

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod real_tests;
