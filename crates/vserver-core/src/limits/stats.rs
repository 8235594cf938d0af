//! What the kernel counts about a context: usage, limits, the observed
//! maximum and limit hits, per controller (the paper's "observed maxima and
//! resource limit hits"). A controller the host lacks is reported as absent,
//! not as an error: monitoring must keep working on a partial host.
//!
//! In JSON, a `null` limit is unlimited and a `null` peak is "the kernel does
//! not count it" (memory.peak before 5.19, pids.peak before 6.1).

use serde::Serialize;

use super::controller::{locate, Located, Version};
use super::cpu::{self, CpuTimes};
use super::{memory, pids, LimitError};
use crate::cgroup::GuestCgroup;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContextStats {
    pub memory: Option<MemoryStats>,
    pub pids: Option<PidsStats>,
    pub cpu: Option<CpuStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    pub current_bytes: u64,
    pub min_bytes: Option<u64>,
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub hits: u64,
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    pub hard: Option<u64>,
    pub peak: Option<u64>,
    pub hits: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub user_us: u64,
    pub system_us: u64,
    /// The token bucket as CFS bandwidth; `None` where the cpu controller is absent.
    pub quota_us: Option<u64>,
    pub period_us: Option<u64>,
    pub burst_us: Option<u64>,
    /// Periods in which the context used up its quota.
    pub throttled: Option<u64>,
    pub throttled_us: Option<u64>,
}

pub fn context_stats(cg: &GuestCgroup) -> Result<ContextStats, LimitError> {
    Ok(ContextStats { memory: memory_stats(cg)?, pids: pids_stats(cg)?, cpu: cpu_stats(cg)? })
}

fn present(cg: &GuestCgroup, controller: &str) -> Option<Located> {
    locate(cg, controller).ok().filter(|at| at.dir.is_dir())
}

fn memory_stats(cg: &GuestCgroup) -> Result<Option<MemoryStats>, LimitError> {
    let Some(at) = present(cg, "memory") else { return Ok(None) };
    let ctrl = memory::backend(at.version);
    let limits = ctrl.read(&at.dir).map_err(LimitError::Cgroup)?;
    let usage = ctrl.usage(&at.dir).map_err(LimitError::Cgroup)?;
    Ok(Some(MemoryStats {
        current_bytes: usage.current,
        min_bytes: limits.low.flatten(),
        soft_bytes: limits.high.flatten(),
        hard_bytes: limits.max.flatten(),
        peak_bytes: usage.peak,
        hits: usage.hits,
        oom_kills: usage.oom_kills,
    }))
}

fn pids_stats(cg: &GuestCgroup) -> Result<Option<PidsStats>, LimitError> {
    let Some(at) = present(cg, "pids") else { return Ok(None) };
    let ctrl = pids::backend(at.version);
    let limits = ctrl.read(&at.dir).map_err(LimitError::Cgroup)?;
    let usage = ctrl.usage(&at.dir).map_err(LimitError::Cgroup)?;
    Ok(Some(PidsStats { current: usage.current, hard: limits.max.flatten(), peak: usage.peak, hits: usage.hits }))
}

fn cpu_stats(cg: &GuestCgroup) -> Result<Option<CpuStats>, LimitError> {
    let Some(times) = cpu_times(cg)? else { return Ok(None) };
    let mut stats = CpuStats { user_us: times.user_us, system_us: times.system_us, ..Default::default() };
    if let Some(at) = present(cg, "cpu") {
        let ctrl = cpu::backend(at.version);
        if let Some(bw) = ctrl.read(&at.dir).map_err(LimitError::Cgroup)?.bandwidth {
            stats.quota_us = bw.quota_us;
            stats.period_us = Some(bw.period_us);
            stats.burst_us = Some(bw.burst_us);
        }
        let t = ctrl.usage(&at.dir).map_err(LimitError::Cgroup)?;
        stats.throttled = Some(t.throttled);
        stats.throttled_us = Some(t.throttled_us);
    }
    Ok(Some(stats))
}

/// CPU time of the context: the v1 cpuacct hierarchy, else the cgroup2
/// directory's `cpu.stat` (kept by every cgroup2 directory, even on hybrid hosts).
pub fn cpu_times(cg: &GuestCgroup) -> Result<Option<CpuTimes>, LimitError> {
    let at = match cg.layout().v1_mount("cpuacct") {
        Some(_) => present(cg, "cpuacct"),
        None => cg.v2_dir().filter(|d| d.join("cpu.stat").exists()).map(|d| Located { dir: d.to_path_buf(), version: Version::V2 }),
    };
    let Some(at) = at else { return Ok(None) };
    cpu::times(at.version, &at.dir).map(Some).map_err(LimitError::CpuTime)
}

/// Resident memory of the context as util-vserver's vserver-stat counts it.
pub fn resident_bytes(cg: &GuestCgroup) -> Result<Option<u64>, LimitError> {
    let Some(at) = present(cg, "memory") else { return Ok(None) };
    Ok(Some(memory::resident_bytes(at.version, &at.dir).map_err(LimitError::Cgroup)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fill, hybrid_guest, v2_guest};

    #[test]
    fn v2_stats() {
        let (_root, cg) = v2_guest("cpu memory pids\n");
        let dir = cg.v2_dir().unwrap().to_path_buf();
        fill(
            &dir,
            &[
                ("memory.max", "67108864\n"),
                ("memory.current", "1000\n"),
                ("memory.peak", "67108864\n"),
                ("memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"),
                ("pids.max", "20\n"),
                ("pids.current", "20\n"),
                ("pids.events", "max 3\n"),
                ("cpu.max", "25000 100000\n"),
                ("cpu.stat", "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 30\nnr_throttled 12\nthrottled_usec 900\n"),
            ],
        );
        let s = context_stats(&cg).unwrap();
        assert_eq!(
            s.memory.unwrap(),
            MemoryStats {
                current_bytes: 1000,
                min_bytes: Some(0),
                soft_bytes: None,
                hard_bytes: Some(64 << 20),
                peak_bytes: Some(64 << 20),
                hits: 9,
                oom_kills: Some(1),
            }
        );
        assert_eq!(s.pids.unwrap(), PidsStats { current: 20, hard: Some(20), peak: None, hits: 3 });
        let cpu = s.cpu.unwrap();
        assert_eq!((cpu.user_us, cpu.system_us, cpu.quota_us, cpu.throttled), (5, 2, Some(25_000), Some(12)));
    }

    #[test]
    fn hybrid_stats_and_absent_controllers() {
        let (root, cg) = hybrid_guest(&["memory", "cpuacct"]);
        fill(&root.join("memory/vserver/g1"), &[("memory.failcnt", "4\n"), ("memory.max_usage_in_bytes", "4096\n")]);
        fill(&root.join("cpuacct/vserver/g1"), &[("cpuacct.stat", "user 100\nsystem 0\n")]);
        let s = context_stats(&cg).unwrap();
        let m = s.memory.unwrap();
        assert_eq!((m.hits, m.peak_bytes, m.hard_bytes, m.min_bytes), (4, Some(4096), None, None));
        assert!(s.pids.is_none(), "no pids hierarchy: absent, not an error");
        let cpu = s.cpu.unwrap();
        assert_eq!(cpu.user_us, 100 * 1_000_000 / cpu::clock_ticks());
        assert_eq!(cpu.quota_us, None);
    }
}
