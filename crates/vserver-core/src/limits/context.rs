//! Context-wide limits: what `rlimits/rss`, `rlimits/nproc`, `sched/` and
//! `cpuset/` ask of the guest's cgroup, and applying that all or nothing.

use std::io;
use std::path::Path;

use super::cgroup_files::{self, CgroupWrite};
use super::controller::{locate, Controller, Max, Version};
use super::cpu::{bucket_to_bandwidth, CpuLimits};
use super::cpuset::CpusetLimits;
use super::memory::MemoryLimits;
use super::pids::PidsLimits;
use super::rlimit::{LimitValue, Resource, RlimitSetting};
use super::{cpu, cpuset, defaults, memory, pids, LimitError};
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
pub fn apply_context_limits(cgroup: &GuestCgroup, guest: &Guest) -> Result<(), LimitError> {
    let in_guest = |err| LimitError::Guest { guest: guest.name.clone(), err: Box::new(err) };
    let mut limits = ContextLimits::from_guest(guest).map_err(in_guest)?;
    let cgroup_writes = cgroup_files::plan(cgroup, &guest.cgroup_settings).map_err(in_guest)?;
    limits.check_no_overlap(&cgroup_writes).map_err(in_guest)?;
    if limits.pids.max.is_none() && !cgroup_writes.iter().any(|w| w.file == "pids.max") {
        locate(cgroup, "pids").map_err(|err| LimitError::DefaultPidsMax {
            guest: guest.name.clone(),
            pids_max: defaults::PIDS_MAX,
            err,
        })?;
        limits.pids.max = Some(Some(defaults::PIDS_MAX));
    }
    let undo = limits.apply_undoable(cgroup).map_err(|err| LimitError::Applying { guest: guest.name.clone(), err: Box::new(err) })?;
    if let Err(err) = cgroup_files::apply(&cgroup_writes) {
        undo.restore();
        return Err(LimitError::WritingCgroupFiles { guest: guest.name.clone(), err: Box::new(err) });
    }
    Ok(())
}

impl ContextLimits {
    pub fn from_guest(guest: &Guest) -> Result<ContextLimits, LimitError> {
        let mut limits = ContextLimits::default();
        for setting in &guest.rlimits {
            limits.add_rlimit(setting, &guest.confdir.join("rlimits"))?;
        }
        limits.add_sched(&guest.sched, &guest.confdir)?;
        Ok(limits)
    }

    /// Takes the context-wide part of one `rlimits/` setting (rss, nproc);
    /// per-process resources are not for the cgroup and are skipped.
    pub fn add_rlimit(&mut self, s: &RlimitSetting, rlimits_dir: &Path) -> Result<(), LimitError> {
        let file = |suffix: &str| rlimits_dir.join(format!("{}{suffix}", s.resource)).display().to_string();
        match s.resource {
            Resource::Rss => {
                let hard = s.hard.map(rss_bytes).transpose().map_err(in_file(file(".hard")))?;
                let soft = s.soft.map(rss_bytes).transpose().map_err(in_file(file(".soft")))?;
                let min = s.min.map(rss_bytes).transpose().map_err(in_file(file(".min")))?;
                check_order(soft, hard).map_err(in_file(file(".soft")))?;
                check_order(min, soft.or(hard)).map_err(in_file(file(".min")))?;
                self.memory.max = hard.or(self.memory.max);
                // `rlimits/rss` alone sets soft = hard; memory.high at the hard limit adds nothing.
                self.memory.high = soft.filter(|s| Some(*s) != hard).or(self.memory.high);
                self.memory.low = min.or(self.memory.low);
            }
            Resource::Nproc => {
                if s.min.is_some() {
                    return Err(LimitError::NprocMinimum { file: file(".min") });
                }
                if s.soft.is_some() && s.soft != s.hard {
                    return Err(LimitError::NprocSoft { file: file(".soft") });
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
    pub fn add_sched(&mut self, sched: &SchedConfig, confdir: &Path) -> Result<(), LimitError> {
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
            return Err(LimitError::TokensMin { file: in_file("tokens-min"), min });
        }
        if let Some(bias) = sched.priority_bias.filter(|b| *b != 0) {
            return Err(LimitError::PriorityBias { file: in_file("priority-bias"), bias });
        }
        let sched_file = in_file;
        match (sched.fill_rate, sched.interval) {
            (Some(rate), Some(interval)) => {
                let bw = bucket_to_bandwidth(rate, interval, sched.tokens_max)
                    .map_err(|why| LimitError::Bucket { file: sched_file("fill-rate"), why })?;
                self.cpu.bandwidth = Some(bw);
            }
            (None, None) if sched.tokens_max.is_some() => {
                return Err(LimitError::BucketSizeAlone { file: sched_file("tokens-max") });
            }
            (None, None) => {}
            (Some(_), None) => return Err(LimitError::FillRateAlone { file: sched_file("interval") }),
            (None, Some(_)) => return Err(LimitError::IntervalAlone { file: sched_file("fill-rate") }),
        }
        if let (Some(tokens), Some(max)) = (sched.tokens, sched.tokens_max) {
            if tokens > max {
                return Err(LimitError::TokensAboveMax { file: sched_file("tokens"), tokens, max });
            }
        }
        self.cpuset.cpus = sched.cpus.clone().or(self.cpuset.cpus.take());
        self.cpuset.mems = sched.mems.clone().or(self.cpuset.mems.take());
        Ok(())
    }

    /// A `cgroup/` file may not set what `rlimits/`, `sched/` or `cpuset/`
    /// already set: one of them would silently win.
    pub fn check_no_overlap(&self, writes: &[CgroupWrite]) -> Result<(), LimitError> {
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
                return Err(LimitError::SetTwice { from: w.from.clone(), file: w.file.clone(), other });
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == ContextLimits::default()
    }

    /// Writes every requested limit. A controller that is asked for but
    /// missing is an error naming it; one not asked for is not looked up.
    pub fn apply(&self, cg: &GuestCgroup) -> Result<(), LimitError> {
        self.apply_undoable(cg).map(drop)
    }

    /// Like `apply`, and keeps the old values so that a caller whose later
    /// step fails (vlimit's prlimits) can put them back.
    pub fn apply_undoable(&self, cg: &GuestCgroup) -> Result<Rollback, LimitError> {
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
pub fn rss_bytes(value: LimitValue) -> Result<Max, LimitError> {
    match value {
        LimitValue::Unlimited => Ok(None),
        LimitValue::Scaled(bytes) => Ok(Some(bytes)),
        LimitValue::Plain(pages) => match pages.checked_mul(page_size()) {
            Some(b) => Ok(Some(b)),
            None => Err(LimitError::RssTooLarge { pages }),
        },
    }
}

pub fn page_size() -> u64 {
    crate::sys::process::sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

fn check_order(lower: Option<Max>, upper: Option<Max>) -> Result<(), LimitError> {
    if let (Some(Some(low)), Some(Some(up))) = (lower, upper) {
        if low > up {
            return Err(LimitError::AboveUpper { low, up });
        }
    }
    Ok(())
}

/// Prefixes an error with the configuration file it is about.
fn in_file(file: String) -> impl FnOnce(LimitError) -> LimitError {
    move |err| LimitError::InFile { file, err: Box::new(err) }
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
    ) -> Result<(), LimitError> {
        if *wanted == S::default() {
            return Ok(());
        }
        let at = locate(cg, controller).map_err(LimitError::ControllerNeeded)?;
        let ctrl = backend(at.version);
        let old = ctrl.read(&at.dir).map_err(LimitError::Cgroup)?;
        if let Err(e) = ctrl.write(&at.dir, wanted) {
            let _ = ctrl.write(&at.dir, &old);
            return Err(LimitError::Cgroup(e));
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
