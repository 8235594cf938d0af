//! `vserver-stat`: one row per context, the host (0, "root server") first,
//! then every running guest by xid. Processes and VSZ come from the guest's
//! `cgroup.procs` and each process's `/proc/PID/stat`; CPU time and RSS from
//! the guest's cgroup when it has the controller (so exited processes count,
//! as the kernel's accounting does), else summed from `/proc/PID/stat`.

pub mod export;
pub mod format;
pub mod owner;

mod status;
pub mod top;
pub mod vps;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::cgroup::{GuestCgroup, Layout};
use crate::dlimit::{self, DiskUsage};
use crate::limits::context::page_size;
use crate::limits::cpu::clock_ticks;
use crate::limits::stats::{self, ContextStats};
use crate::paths::Paths;
use crate::procfs::{self, ProcStat};
use crate::runstate::{self, RunState};

pub use status::guest_status_lines;

pub const HOST_NAME: &str = "root server";

/// What keeps the figures of the contexts from being read; each names
/// what it was reading (the run directory, a guest, `/proc`).
#[derive(Debug, thiserror::Error)]
pub enum StatError {
    /// An errno whose message names its object already (`cgroup::Layout`),
    /// or one that never had a context added.
    #[error("{0}")]
    Sys(io::Error),
    #[error("reading {}: {err}", dir.display())]
    RunDir { dir: PathBuf, err: io::Error },
    #[error("guest {guest:?}: listing its processes: {err}")]
    Processes { guest: String, err: io::Error },
    #[error("listing /proc: {0}")]
    ListProc(io::Error),
    #[error("reading /proc/uptime: {0}")]
    Uptime(io::Error),
    /// A figure of the guest's cgroup (`what`: its CPU time, its memory,
    /// its limits), with `limits::stats`' error.
    #[error("guest {guest:?}: reading {what}: {err}")]
    Figures { guest: String, what: &'static str, err: Box<crate::limits::LimitError> },
    #[error("guest {guest:?} is not running")]
    NotRunning { guest: String },
    #[error("guest {guest:?} is not running (its run state in {} is stale)", rundir.display())]
    Stale { guest: String, rundir: PathBuf },
}

/// One context's figures. In JSON (schemas/vserver-stat.json) every key
/// carries its unit: `_bytes`, `_us` (CPU time), `_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContextRow {
    pub xid: u32,
    pub name: String,
    pub processes: u64,
    pub vsz_bytes: u64,
    pub rss_bytes: u64,
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    #[serde(rename = "uptime_seconds", serialize_with = "ms_as_seconds")]
    pub uptime_ms: u64,
    /// Limits, peaks and hits (for `--json`, `--prometheus` and status only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ContextStats>,
    /// Disk usage and limits, one per `dlimits/` entry (same detail level).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disk: Vec<DiskUsage>,
}

fn ms_as_seconds<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*ms as f64 / 1000.0)
}

/// What to read besides the table's own figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Table,
    WithLimits,
}

/// Sums of the per-process figures of one context.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    processes: u64,
    vsz_bytes: u64,
    rss_pages: u64,
    user_ticks: u64,
    system_ticks: u64,
    oldest_start: Option<u64>,
}

impl Sums {
    fn add(&mut self, p: &ProcStat) {
        self.processes += 1;
        self.vsz_bytes += p.vsize_bytes;
        self.rss_pages += p.rss_pages;
        self.user_ticks += p.utime + p.cutime;
        self.system_ticks += p.stime + p.cstime;
        self.oldest_start = Some(self.oldest_start.map_or(p.start_time, |s| s.min(p.start_time)));
    }
}

/// Every context: the host row, then the running guests sorted by xid.
pub fn collect(paths: &Paths, detail: Detail) -> Result<Vec<ContextRow>, StatError> {
    let guests = runstate::running_guests(paths).map_err(|err| StatError::RunDir { dir: paths.rundir.clone(), err })?;
    let cgroups = guest_cgroups(paths, &guests)?;
    let mut owner: HashMap<i32, usize> = HashMap::new();
    for (i, cg) in cgroups.iter().enumerate() {
        for pid in guest_pids(&guests[i], cg)? {
            owner.insert(pid, i);
        }
    }
    let me = std::process::id() as i32;
    let mut host = Sums::default();
    let mut sums = vec![Sums::default(); guests.len()];
    let mut buf = String::with_capacity(512);
    for pid in procfs::all_pids().map_err(StatError::ListProc)? {
        if pid == me {
            continue;
        }
        let Some(stat) = procfs::read_stat(pid, &mut buf) else { continue };
        match owner.get(&pid) {
            Some(&i) => sums[i].add(&stat),
            None => host.add(&stat),
        }
    }
    let clock = Clock::now()?;
    let mut rows = vec![clock.row(0, HOST_NAME, &host)];
    for ((state, cg), s) in guests.iter().zip(&cgroups).zip(&sums) {
        rows.push(guest_row(paths, &clock, state, cg, s, detail)?);
    }
    Ok(rows)
}

/// The row of one running guest, reading only its own processes.
pub fn collect_guest(paths: &Paths, state: &RunState, detail: Detail) -> Result<ContextRow, StatError> {
    let cg = guest_cgroups(paths, std::slice::from_ref(state))?.remove(0);
    let mut sums = Sums::default();
    let mut buf = String::with_capacity(512);
    for pid in guest_pids(state, &cg)? {
        if let Some(stat) = procfs::read_stat(pid, &mut buf) {
            sums.add(&stat);
        }
    }
    guest_row(paths, &Clock::now()?, state, &cg, &sums, detail)
}

fn guest_pids(state: &RunState, cg: &GuestCgroup) -> Result<Vec<i32>, StatError> {
    cg.pids().map_err(|err| StatError::Processes { guest: state.name.clone(), err })
}

fn guest_cgroups(paths: &Paths, guests: &[RunState]) -> Result<Vec<GuestCgroup>, StatError> {
    if guests.is_empty() {
        return Ok(Vec::new());
    }
    let layout = Layout::detect(&paths.cgroup_root).map_err(StatError::Sys)?;
    Ok(guests.iter().map(|g| GuestCgroup::from_dirs(&layout, g.cgroups.clone())).collect())
}

fn guest_row(
    paths: &Paths,
    clock: &Clock,
    state: &RunState,
    cg: &GuestCgroup,
    sums: &Sums,
    detail: Detail,
) -> Result<ContextRow, StatError> {
    let mut row = clock.row(state.xid, &state.name, sums);
    if sums.oldest_start.is_none() {
        row.uptime_ms = runstate::now_secs().saturating_sub(state.started_at) * 1000;
    }
    if let Some(times) = stats::cpu_times(cg).map_err(figures(state, "its CPU time"))? {
        row.cpu_user_us = times.user_us;
        row.cpu_system_us = times.system_us;
    }
    if let Some(rss) = stats::resident_bytes(cg).map_err(figures(state, "its memory"))? {
        row.rss_bytes = rss;
    }
    if detail == Detail::WithLimits {
        row.limits = Some(stats::context_stats(cg).map_err(figures(state, "its limits"))?);
        // Like a controller the host lacks, disk figures the filesystem cannot
        // give (its quota was turned off since the start) are left out, so
        // monitoring keeps working; `vdlimit` says why.
        row.disk = dlimit::usage(&paths.guest_confdir(&state.name), state.xid).unwrap_or_default();
    }
    Ok(row)
}

/// Wraps an error of `limits::stats` with the
/// guest and what was being read.
fn figures(state: &RunState, what: &'static str) -> impl FnOnce(crate::limits::LimitError) -> StatError {
    let guest = state.name.clone();
    move |err| StatError::Figures { guest, what, err: Box::new(err) }
}

/// Units and "now" for turning ticks into the table's milliseconds.
struct Clock {
    uptime_ms: u64,
    hz: u64,
    page: u64,
}

impl Clock {
    fn now() -> Result<Clock, StatError> {
        Ok(Clock { uptime_ms: procfs::uptime_ms().map_err(StatError::Uptime)?, hz: clock_ticks(), page: page_size() })
    }

    fn ms(&self, ticks: u64) -> u64 {
        ticks * 1000 / self.hz
    }

    fn row(&self, xid: u32, name: &str, s: &Sums) -> ContextRow {
        ContextRow {
            xid,
            name: name.to_string(),
            processes: s.processes,
            vsz_bytes: s.vsz_bytes,
            rss_bytes: s.rss_pages * self.page,
            cpu_user_us: self.ms(s.user_ticks) * 1000,
            cpu_system_us: self.ms(s.system_ticks) * 1000,
            uptime_ms: s.oldest_start.map_or(0, |t| self.uptime_ms.saturating_sub(self.ms(t))),
            limits: None,
            disk: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_error_names_its_object_and_its_errno_once() {
        let e = StatError::Processes { guest: "web".into(), err: io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(e.to_string(), "guest \"web\": listing its processes: Permission denied (os error 13)");
        assert!(std::error::Error::source(&e).is_none(), "the errno is in the message only");
        let e = StatError::Stale { guest: "web".into(), rundir: "/run/vservers/web".into() };
        assert_eq!(e.to_string(), "guest \"web\" is not running (its run state in /run/vservers/web is stale)");
    }
}
