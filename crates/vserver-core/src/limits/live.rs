//! Changing the limits of a running guest (`vlimit -c XID|NAME`): the
//! context-wide ones on its cgroup, the per-process ones with prlimit on
//! every process of the context. All or nothing: when one step fails, every
//! value already changed is put back.

use std::collections::HashSet;
use std::io;

use anyhow::{bail, Context as _};

use super::context::{rss_bytes, ContextLimits, Rollback};
use super::controller::{locate, Max};
use super::memory;
use super::rlimit::{LimitValue, Resource, RlimitSetting};
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
pub fn resolve_target(paths: &Paths, spec: &str) -> anyhow::Result<Target> {
    let state = find_running(paths, spec)?;
    let layout = Layout::detect(&paths.cgroup_root)?;
    Ok(Target {
        cgroup: GuestCgroup::from_dirs(&layout, state.cgroups.clone()),
        name: state.name,
        xid: state.xid,
        init_pid: state.init.pid,
    })
}

fn find_running(paths: &Paths, spec: &str) -> anyhow::Result<RunState> {
    if let Ok(xid) = spec.parse::<u32>() {
        if xid <= 1 {
            bail!("context {xid} is the host ({}); vlimit changes guests", if xid == 0 { "root" } else { "spectator" });
        }
        let running = runstate::running_guests(paths).with_context(|| format!("reading {}", paths.rundir.display()))?;
        return running
            .into_iter()
            .find(|s| s.xid == xid)
            .ok_or_else(|| anyhow::anyhow!("no running guest has context {xid} (see vserver-stat)"));
    }
    crate::paths::validate_guest_name(spec).map_err(anyhow::Error::msg)?;
    match runstate::status(paths, spec)? {
        runstate::Status::Running(s) => Ok(s),
        _ if !paths.guest_confdir(spec).is_dir() => bail!("no such guest {spec:?}"),
        _ => bail!(
            "guest {spec:?} is not running; limits in {} apply at its next start",
            paths.guest_confdir(spec).join("rlimits").display()
        ),
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
pub fn apply_to_running(target: &Target, changes: &[RlimitSetting]) -> anyhow::Result<Applied> {
    for c in changes {
        if c.min.is_some() && c.resource != Resource::Rss {
            bail!("{}: only rss has a minimum (-M); per-process limits and nproc have none", c.resource);
        }
    }
    let context = context_part(target, changes)?;
    let cgroup = context.apply_undoable(&target.cgroup).with_context(|| format!("guest {:?}", target.name))?;
    let per_process: Vec<&RlimitSetting> = changes.iter().filter(|c| !c.resource.is_context_wide()).collect();
    match set_on_every_process(&target.cgroup, &per_process) {
        Ok(processes) => Ok(Applied { cgroup, processes }),
        Err((e, done)) => {
            restore_processes(done);
            cgroup.restore();
            Err(e.context(format!("guest {:?}: nothing was changed", target.name)))
        }
    }
}

/// The cgroup part of the changes, checked against the limits already there
/// (a soft rss above the hard one is refused even when only one is given).
fn context_part(target: &Target, changes: &[RlimitSetting]) -> anyhow::Result<ContextLimits> {
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
                    bail!("nproc: the processes of a context have only a hard limit (pids.max); use -H");
                }
                limits.pids.max = c.hard.map(|v| v.amount());
            }
            _ => {}
        }
    }
    Ok(limits)
}

fn check_rss_order(cg: &GuestCgroup, wanted: &ContextLimits) -> anyhow::Result<()> {
    let at = locate(cg, "memory")?;
    let now = memory::backend(at.version).read(&at.dir)?;
    let soft: Max = wanted.memory.high.unwrap_or(now.high.flatten());
    let hard: Max = wanted.memory.max.unwrap_or(now.max.flatten());
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            bail!("rss: the soft limit ({s} bytes) would be above the hard limit ({h} bytes)");
        }
    }
    Ok(())
}

type Done = Vec<(i32, libc::__rlimit_resource_t, Pair)>;

/// prlimit on every process; a process that forks meanwhile is caught by
/// reading the process list again until it holds no new pid.
fn set_on_every_process(cg: &GuestCgroup, changes: &[&RlimitSetting]) -> Result<Done, (anyhow::Error, Done)> {
    let mut done: Done = Vec::new();
    if changes.is_empty() {
        return Ok(done);
    }
    let mut seen = HashSet::new();
    for _round in 0..10 {
        let pids = match cg.pids() {
            Ok(p) => p,
            Err(e) => return Err((e.into(), done)),
        };
        let fresh: Vec<i32> = pids.into_iter().filter(|p| seen.insert(*p)).collect();
        if fresh.is_empty() {
            return Ok(done);
        }
        for pid in fresh {
            for c in changes {
                match set_one(pid, c) {
                    Ok(Some(old)) => done.push((pid, c.resource.rlimit_id().expect("per-process"), old)),
                    Ok(None) => {}
                    Err(e) => return Err((e, done)),
                }
            }
        }
    }
    Err((anyhow::anyhow!("the guest keeps forking new processes; try again"), done))
}

/// Sets one limit on one process; `None` when the process is already gone.
fn set_one(pid: i32, c: &RlimitSetting) -> anyhow::Result<Option<Pair>> {
    let id = c.resource.rlimit_id().expect("per-process resource");
    let old = match prlimit::get(pid, id) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        other => other.map_err(|e| privilege_hint(e, pid, c.resource))?,
    };
    let hard = c.hard.map(LimitValue::as_rlim).unwrap_or(old.hard);
    let soft = c.soft.map(LimitValue::as_rlim).unwrap_or(old.soft.min(hard));
    if soft > hard {
        bail!("{}: the soft limit {} would be above the hard limit {} (process {pid})", c.resource, show(soft), show(hard));
    }
    match prlimit::set(pid, id, Pair { soft, hard }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(privilege_hint(e, pid, c.resource)),
        Ok(old) => Ok(Some(old)),
    }
}

fn restore_processes(done: Done) {
    for (pid, id, old) in done.into_iter().rev() {
        let _ = prlimit::set(pid, id, old);
    }
}

fn privilege_hint(e: io::Error, pid: i32, res: Resource) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::EPERM) {
        anyhow::anyhow!("{res}: setting the limit of process {pid}: {e} (raising a limit of another process needs root, CAP_SYS_RESOURCE)")
    } else {
        anyhow::anyhow!("{res}: setting the limit of process {pid}: {e}")
    }
}

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "inf".into()
    } else {
        v.to_string()
    }
}
