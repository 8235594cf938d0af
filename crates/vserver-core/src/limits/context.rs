//! Context-wide limits: what `rlimits/rss`, `rlimits/nproc`, `sched/` and
//! `cpuset/` ask of the guest's cgroup, and applying that all or nothing.

use std::io;
use std::path::Path;

use anyhow::{bail, Context as _};

use super::cgroup_files::{self, CgroupWrite};
use super::controller::{locate, Controller, Max, Version};
use super::cpu::{bucket_to_bandwidth, CpuLimits};
use super::cpuset::CpusetLimits;
use super::memory::MemoryLimits;
use super::pids::PidsLimits;
use super::rlimit::{LimitValue, Resource, RlimitSetting};
use super::{cpu, cpuset, defaults, memory, pids};
use crate::cgroup::GuestCgroup;
use crate::config::{Guest, SchedConfig};

/// Every context-wide limit; a `None` leaves that cgroup file as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextLimits {
    pub memory: MemoryLimits,
    pub pids: PidsLimits,
    pub cpu: CpuLimits,
    pub cpuset: CpusetLimits,
}

/// Sets the guest's context-wide limits on its freshly made cgroup
/// `vserver/NAME`, before the guest's first process runs: `rlimits/`,
/// `sched/`, `cpuset/`, the `cgroup/` files, and the default process limit
/// where none is configured. Everything is checked before anything is
/// written; the limits are all or nothing (on an error every file already
/// written gets its old value back).
pub fn apply_context_limits(cgroup: &GuestCgroup, guest: &Guest) -> anyhow::Result<()> {
    let in_guest = || format!("guest {:?}", guest.name);
    let mut limits = ContextLimits::from_guest(guest).with_context(in_guest)?;
    let cgroup_writes = cgroup_files::plan(cgroup, &guest.cgroup_settings).with_context(in_guest)?;
    limits.check_no_overlap(&cgroup_writes).with_context(in_guest)?;
    if limits.pids.max.is_none() && !cgroup_writes.iter().any(|w| w.file == "pids.max") {
        locate(cgroup, "pids").with_context(|| {
            format!(
                "guest {:?}: its default process limit ({} processes; set rlimits/nproc for another, inf for none) cannot be applied",
                guest.name,
                defaults::PIDS_MAX
            )
        })?;
        limits.pids.max = Some(Some(defaults::PIDS_MAX));
    }
    let undo = limits.apply_undoable(cgroup).with_context(|| format!("guest {:?}: applying the context limits", guest.name))?;
    if let Err(e) = cgroup_files::apply(&cgroup_writes) {
        undo.restore();
        return Err(e.context(format!("guest {:?}: writing its cgroup/ settings", guest.name)));
    }
    Ok(())
}

impl ContextLimits {
    pub fn from_guest(guest: &Guest) -> anyhow::Result<ContextLimits> {
        let mut limits = ContextLimits::default();
        for setting in &guest.rlimits {
            limits.add_rlimit(setting, &guest.confdir.join("rlimits"))?;
        }
        limits.add_sched(&guest.sched, &guest.confdir)?;
        Ok(limits)
    }

    /// Takes the context-wide part of one `rlimits/` setting (rss, nproc);
    /// per-process resources are not for the cgroup and are skipped.
    pub fn add_rlimit(&mut self, s: &RlimitSetting, rlimits_dir: &Path) -> anyhow::Result<()> {
        let file = |suffix: &str| rlimits_dir.join(format!("{}{suffix}", s.resource)).display().to_string();
        match s.resource {
            Resource::Rss => {
                let hard = s.hard.map(rss_bytes).transpose().with_context(|| file(".hard"))?;
                let soft = s.soft.map(rss_bytes).transpose().with_context(|| file(".soft"))?;
                let min = s.min.map(rss_bytes).transpose().with_context(|| file(".min"))?;
                check_order(soft, hard).with_context(|| file(".soft"))?;
                check_order(min, soft.or(hard)).with_context(|| file(".min"))?;
                self.memory.max = hard.or(self.memory.max);
                // `rlimits/rss` alone sets soft = hard; memory.high at the hard limit adds nothing.
                self.memory.high = soft.filter(|s| Some(*s) != hard).or(self.memory.high);
                self.memory.low = min.or(self.memory.low);
            }
            Resource::Nproc => {
                if s.min.is_some() {
                    bail!("{}: a process count has no minimum", file(".min"));
                }
                if s.soft.is_some() && s.soft != s.hard {
                    bail!("{}: the processes of a context have only a hard limit (pids.max); set nproc or nproc.hard", file(".soft"));
                }
                self.pids.max = s.hard.map(|v| v.amount()).or(self.pids.max);
            }
            _ => {}
        }
        Ok(())
    }

    /// `sched/` (the token bucket, or the older `schedule` file) and
    /// `cpuset/`. The bucket knobs that have no counterpart in CFS are
    /// refused rather than ignored, unless their value changes nothing.
    pub fn add_sched(&mut self, sched: &SchedConfig, confdir: &Path) -> anyhow::Result<()> {
        let in_file = |n: &str| {
            if sched.source.is_dir() || sched.source.as_os_str().is_empty() {
                confdir.join("sched").join(n).display().to_string()
            } else {
                format!("{} ({n})", sched.source.display())
            }
        };
        // A throttled context resumes at the next refill under CFS; a
        // tokens-min of at most one refill asks for nothing else.
        if let Some(min) = sched.tokens_min.filter(|m| *m > sched.fill_rate.unwrap_or(0)) {
            bail!(
                "{}: {min} does not map onto a stock kernel (CFS resumes a throttled context at the next period, \
                 that is after one refill of fill-rate tokens, not at a fill level); use at most fill-rate, or remove it",
                in_file("tokens-min")
            );
        }
        if let Some(bias) = sched.priority_bias.filter(|b| *b != 0) {
            bail!(
                "{}: {bias} does not map onto a stock kernel (priorities from the bucket fill level do not exist in CFS); \
                 use `nice` or 0",
                in_file("priority-bias")
            );
        }
        let sched_file = in_file;
        match (sched.fill_rate, sched.interval) {
            (Some(rate), Some(interval)) => {
                let bw = bucket_to_bandwidth(rate, interval, sched.tokens_max)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", sched_file("fill-rate")))?;
                self.cpu.bandwidth = Some(bw);
            }
            (None, None) if sched.tokens_max.is_some() => {
                bail!("{}: a bucket size needs sched/fill-rate and sched/interval", sched_file("tokens-max"))
            }
            (None, None) => {}
            (Some(_), None) => bail!("{}: sched/fill-rate needs sched/interval as well", sched_file("interval")),
            (None, Some(_)) => bail!("{}: sched/interval needs sched/fill-rate as well", sched_file("fill-rate")),
        }
        if let (Some(tokens), Some(max)) = (sched.tokens, sched.tokens_max) {
            if tokens > max {
                bail!("{}: {tokens} is more than tokens-max {max}", sched_file("tokens"));
            }
        }
        self.cpuset.cpus = sched.cpus.clone().or(self.cpuset.cpus.take());
        self.cpuset.mems = sched.mems.clone().or(self.cpuset.mems.take());
        Ok(())
    }

    /// A `cgroup/` file may not set what `rlimits/`, `sched/` or `cpuset/`
    /// already set: one of them would silently win.
    pub fn check_no_overlap(&self, writes: &[CgroupWrite]) -> anyhow::Result<()> {
        let set_here = |file: &str| -> Option<&'static str> {
            Some(match file {
                "memory.max" | "memory.limit_in_bytes" if self.memory.max.is_some() => "rlimits/rss",
                "memory.high" | "memory.soft_limit_in_bytes" if self.memory.high.is_some() => "rlimits/rss.soft",
                "memory.low" if self.memory.low.is_some() => "rlimits/rss.min",
                "pids.max" if self.pids.max.is_some() => "rlimits/nproc",
                "cpu.max" | "cpu.cfs_quota_us" | "cpu.cfs_period_us" | "cpu.max.burst" | "cpu.cfs_burst_us"
                    if self.cpu.bandwidth.is_some() =>
                {
                    "the token bucket (sched/ or schedule)"
                }
                "cpuset.cpus" if self.cpuset.cpus.is_some() => "cpuset/cpus",
                "cpuset.mems" if self.cpuset.mems.is_some() => "cpuset/mems",
                _ => return None,
            })
        };
        for w in writes {
            if let Some(other) = set_here(&w.file) {
                bail!("{}: sets {}, which {other} sets too; keep one of them", w.from.display(), w.file);
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == ContextLimits::default()
    }

    /// Writes every requested limit. A controller that is asked for but
    /// missing is an error naming it; one not asked for is not looked up.
    pub fn apply(&self, cg: &GuestCgroup) -> anyhow::Result<()> {
        self.apply_undoable(cg).map(drop)
    }

    /// Like `apply`, and keeps the old values so that a caller whose later
    /// step fails (vlimit's prlimits) can put them back.
    pub fn apply_undoable(&self, cg: &GuestCgroup) -> anyhow::Result<Rollback> {
        let mut undo = Rollback::default();
        let result = (|| {
            undo.step(cg, "memory", memory::backend, &self.memory)?;
            undo.step(cg, "pids", pids::backend, &self.pids)?;
            undo.step(cg, "cpu", cpu::backend, &self.cpu)?;
            undo.step(cg, "cpuset", cpuset::backend, &self.cpuset)
        })();
        match result {
            Ok(()) => Ok(undo),
            Err(e) => {
                undo.restore();
                Err(e)
            }
        }
    }
}

/// The rss of `rlimits/`: a plain number is pages (util-vserver), a suffixed
/// one bytes.
pub fn rss_bytes(value: LimitValue) -> anyhow::Result<Max> {
    match value {
        LimitValue::Unlimited => Ok(None),
        LimitValue::Scaled(bytes) => Ok(Some(bytes)),
        LimitValue::Plain(pages) => match pages.checked_mul(page_size()) {
            Some(b) => Ok(Some(b)),
            None => bail!("{pages} pages is more memory than can be expressed"),
        },
    }
}

pub fn page_size() -> u64 {
    crate::sys::process::sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

fn check_order(lower: Option<Max>, upper: Option<Max>) -> anyhow::Result<()> {
    if let (Some(Some(low)), Some(Some(up))) = (lower, upper) {
        if low > up {
            bail!("{low} bytes is above the limit over it ({up} bytes)");
        }
    }
    Ok(())
}

type UndoFn = Box<dyn FnOnce() -> io::Result<()>>;

/// Old values of the files written so far, restored newest first.
#[derive(Default)]
pub struct Rollback(Vec<UndoFn>);

impl Rollback {
    fn step<S: Default + PartialEq + 'static, U: 'static>(
        &mut self,
        cg: &GuestCgroup,
        controller: &'static str,
        backend: fn(Version) -> &'static dyn Controller<Settings = S, Usage = U>,
        wanted: &S,
    ) -> anyhow::Result<()> {
        if *wanted == S::default() {
            return Ok(());
        }
        let at = locate(cg, controller).context("a limit needs it")?;
        let ctrl = backend(at.version);
        let old = ctrl.read(&at.dir)?;
        if let Err(e) = ctrl.write(&at.dir, wanted) {
            let _ = ctrl.write(&at.dir, &old);
            return Err(e.into());
        }
        self.0.push(Box::new(move || ctrl.write(&at.dir, &old)));
        Ok(())
    }

    /// Best effort: a file that cannot be restored is skipped so the rest are.
    pub fn restore(mut self) {
        while let Some(undo) = self.0.pop() {
            let _ = undo();
        }
    }
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
