//! Changing the limits of a running guest (`vlimit -c XID|NAME`): the
//! context-wide ones on its cgroup, the per-process ones with prlimit on
//! every process of the context. All or nothing: when one step fails, every
//! value already changed is put back.

use std::collections::HashSet;

use super::context::{rss_bytes, ContextLimits, Rollback};
use super::controller::{locate, Max};
use super::rlimit::{LimitValue, Resource, RlimitSetting};
use super::{memory, LimitError};
use crate::cgroup::{GuestCgroup, Layout};
use crate::paths::Paths;
use crate::runstate::{self, RunState};
use crate::sys::rlimit::{self as prlimit, Pair};

/// A running guest, found by name or xid.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub xid: u32,
    pub init_pid: i32,
    pub cgroup: GuestCgroup,
}

/// Resolves `-c XID|NAME` to a running guest.
pub fn resolve_target(paths: &Paths, spec: &str) -> Result<Target, LimitError> {
    let state = find_running(paths, spec)?;
    let layout = Layout::detect(&paths.cgroup_root).map_err(LimitError::Layout)?;
    Ok(Target {
        cgroup: GuestCgroup::from_dirs(&layout, state.cgroups.clone()),
        name: state.name,
        xid: state.xid,
        init_pid: state.init.pid,
    })
}

fn find_running(paths: &Paths, spec: &str) -> Result<RunState, LimitError> {
    if let Ok(xid) = spec.parse::<u32>() {
        if xid <= 1 {
            return Err(LimitError::HostContext { xid });
        }
        let running = runstate::running_guests(paths).map_err(|err| LimitError::Reading { path: paths.rundir.clone(), err })?;
        return running.into_iter().find(|s| s.xid == xid).ok_or(LimitError::NoContext { xid });
    }
    crate::paths::validate_guest_name(spec).map_err(LimitError::GuestName)?;
    match runstate::status(paths, spec).map_err(LimitError::RunState)? {
        runstate::Status::Running(s) => Ok(s),
        _ if !paths.guest_confdir(spec).is_dir() => Err(LimitError::NoSuchGuest { name: spec.to_string() }),
        _ => Err(LimitError::NotRunning { name: spec.to_string(), rlimits: paths.guest_confdir(spec).join("rlimits") }),
    }
}

/// Changes made to a running guest, kept so that a later failure (saving
/// them to the config) can take them back. Dropping it keeps the changes.
pub struct Applied {
    cgroup: Rollback,
    processes: Done,
}

impl Applied {
    pub fn undo(self) {
        restore_processes(self.processes);
        self.cgroup.restore();
    }
}

/// Applies the changes to the running guest, all or nothing.
pub fn apply_to_running(target: &Target, changes: &[RlimitSetting]) -> Result<Applied, LimitError> {
    for c in changes {
        if c.min.is_some() && c.resource != Resource::Rss {
            return Err(LimitError::MinimumNotRss { resource: c.resource });
        }
    }
    let context = context_part(target, changes)?;
    let cgroup =
        context.apply_undoable(&target.cgroup).map_err(|err| LimitError::Guest { guest: target.name.clone(), err: Box::new(err) })?;
    let per_process: Vec<&RlimitSetting> = changes.iter().filter(|c| !c.resource.is_context_wide()).collect();
    let mut processes = Done::new();
    match set_on_every_process(&target.cgroup, &per_process, &mut processes) {
        Ok(()) => Ok(Applied { cgroup, processes }),
        Err(e) => {
            restore_processes(processes);
            cgroup.restore();
            Err(LimitError::NothingChanged { guest: target.name.clone(), err: Box::new(e) })
        }
    }
}

/// The cgroup part of the changes, checked against the limits already there
/// (a soft rss above the hard one is refused even when only one is given).
fn context_part(target: &Target, changes: &[RlimitSetting]) -> Result<ContextLimits, LimitError> {
    let mut limits = ContextLimits::default();
    for c in changes {
        match c.resource {
            Resource::Rss => {
                limits.memory.max = c.hard.map(rss_bytes).transpose()?;
                limits.memory.high = c.soft.map(rss_bytes).transpose()?;
                limits.memory.low = c.min.map(rss_bytes).transpose()?;
                check_rss_order(&target.cgroup, &limits)?;
            }
            Resource::Nproc => {
                if c.soft.is_some() {
                    return Err(LimitError::NprocSoftOption);
                }
                limits.pids.max = c.hard.map(|v| v.amount());
            }
            _ => {}
        }
    }
    Ok(limits)
}

fn check_rss_order(cg: &GuestCgroup, wanted: &ContextLimits) -> Result<(), LimitError> {
    let at = locate(cg, "memory")?;
    let now = memory::backend(at.version).read(&at.dir).map_err(LimitError::Cgroup)?;
    let soft: Max = wanted.memory.high.unwrap_or(now.high.flatten());
    let hard: Max = wanted.memory.max.unwrap_or(now.max.flatten());
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            return Err(LimitError::RssSoftAboveHard { soft: s, hard: h });
        }
    }
    Ok(())
}

type Done = Vec<(i32, libc::__rlimit_resource_t, Pair)>;

/// prlimit on every process; a process that forks meanwhile is caught by
/// reading the process list again until it holds no new pid. `done` gets
/// the old value of every limit changed, also when a later one fails.
fn set_on_every_process(cg: &GuestCgroup, changes: &[&RlimitSetting], done: &mut Done) -> Result<(), LimitError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut seen = HashSet::new();
    for _round in 0..10 {
        let pids = cg.pids().map_err(LimitError::Cgroup)?;
        let fresh: Vec<i32> = pids.into_iter().filter(|p| seen.insert(*p)).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for pid in fresh {
            for c in changes {
                if let Some(old) = set_one(pid, c)? {
                    done.push((pid, c.resource.rlimit_id().expect("per-process"), old));
                }
            }
        }
    }
    Err(LimitError::KeepsForking)
}

/// Sets one limit on one process; `None` when the process is already gone.
fn set_one(pid: i32, c: &RlimitSetting) -> Result<Option<Pair>, LimitError> {
    let id = c.resource.rlimit_id().expect("per-process resource");
    let old = match prlimit::get(pid, id) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        other => other.map_err(|err| LimitError::Prlimit { resource: c.resource, pid, err })?,
    };
    let hard = c.hard.map(LimitValue::as_rlim).unwrap_or(old.hard);
    let soft = c.soft.map(LimitValue::as_rlim).unwrap_or(old.soft.min(hard));
    if soft > hard {
        return Err(LimitError::SoftAboveHard { resource: c.resource, soft, hard, pid });
    }
    match prlimit::set(pid, id, Pair { soft, hard }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(err) => Err(LimitError::Prlimit { resource: c.resource, pid, err }),
        Ok(old) => Ok(Some(old)),
    }
}

fn restore_processes(done: Done) {
    for (pid, id, old) in done.into_iter().rev() {
        let _ = prlimit::set(pid, id, old);
    }
}
