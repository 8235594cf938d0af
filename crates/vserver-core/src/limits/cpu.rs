//! The cpu controller: Linux-VServer's context token bucket as CFS bandwidth.
//!
//! The bucket is refilled with `fill-rate` tokens every `interval`; a running
//! process spends one token per tick. CFS gives a cgroup `quota` of CPU time
//! every `period` and lets unused quota pile up to `burst`. So the share
//! fill-rate/interval becomes quota/period and the bucket size `tokens-max`
//! becomes the burst. One token is taken as 1 ms of CPU (a tick at HZ=1000,
//! which Linux-VServer's documentation assumes).

use std::io;
use std::path::Path;

use super::controller::{invalid, keyed_value, max_text, optional, read_max, read_u64, Controller, Max, Version};
use crate::cgroup::{read_file, write_file};

/// CFS's own default period, used unless the bucket needs a longer one.
pub const DEFAULT_PERIOD_US: u64 = 100_000;
const MAX_PERIOD_US: u64 = 1_000_000;
const MIN_QUOTA_US: u64 = 1_000;
const TOKEN_US: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Bandwidth {
    /// CPU time per period; `None` is unlimited.
    pub quota_us: Max,
    pub period_us: u64,
    /// Unused quota that may be saved up; 0 where the kernel has no burst file.
    pub burst_us: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuLimits {
    pub bandwidth: Option<Bandwidth>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Throttling {
    pub periods: u64,
    /// Periods in which the context ran out of quota: the bucket's "hits".
    pub throttled: u64,
    pub throttled_us: u64,
}

/// CPU time the context's processes used, dead ones included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuTimes {
    pub user_us: u64,
    pub system_us: u64,
}

/// Maps the token bucket onto CFS bandwidth. The period stays at CFS's 100 ms
/// unless the kernel's rules need a longer one (up to 1 s): quota must be at
/// least 1 ms, and burst may not exceed quota.
pub fn bucket_to_bandwidth(fill_rate: u64, interval: u64, tokens_max: Option<u64>) -> Result<Bandwidth, String> {
    if fill_rate == 0 || interval == 0 {
        return Err("fill-rate and interval must both be at least 1 (a zero rate would stop the guest)".into());
    }
    let share = |period: u64| (period as u128 * fill_rate as u128 / interval as u128) as u64;
    let period_for = |quota_us: u64| (quota_us as u128 * interval as u128).div_ceil(fill_rate as u128) as u64;
    let burst_us = tokens_max.unwrap_or(0).saturating_mul(TOKEN_US);
    let period_us = DEFAULT_PERIOD_US.max(period_for(MIN_QUOTA_US)).max(period_for(burst_us)).min(MAX_PERIOD_US);
    let quota_us = share(period_us);
    if quota_us < MIN_QUOTA_US {
        return Err(format!("fill-rate/interval {fill_rate}/{interval} is less than 1/1000 of a CPU, below the smallest CFS quota"));
    }
    Ok(Bandwidth { quota_us: Some(quota_us), period_us, burst_us: burst_us.min(quota_us) })
}

pub struct V1;
pub struct V2;

pub fn backend(version: Version) -> &'static dyn Controller<Settings = CpuLimits, Usage = Throttling> {
    match version {
        Version::V1 => &V1,
        Version::V2 => &V2,
    }
}

/// Writes the burst only where the kernel has the file (5.14 and later).
fn write_burst(file: &Path, burst_us: u64) -> io::Result<()> {
    if file.exists() {
        write_file(file, &burst_us.to_string())
    } else {
        Ok(())
    }
}

fn read_burst(file: &Path) -> io::Result<u64> {
    Ok(optional(file, read_u64)?.unwrap_or(0))
}

impl Controller for V1 {
    type Settings = CpuLimits;
    type Usage = Throttling;

    fn read(&self, dir: &Path) -> io::Result<CpuLimits> {
        Ok(CpuLimits {
            bandwidth: Some(Bandwidth {
                quota_us: read_max(&dir.join("cpu.cfs_quota_us"))?,
                period_us: read_u64(&dir.join("cpu.cfs_period_us"))?,
                burst_us: read_burst(&dir.join("cpu.cfs_burst_us"))?,
            }),
        })
    }

    fn write(&self, dir: &Path, wanted: &CpuLimits) -> io::Result<()> {
        let Some(bw) = wanted.bandwidth else { return Ok(()) };
        let burst = dir.join("cpu.cfs_burst_us");
        // The kernel refuses a quota below the current burst: clear it first.
        write_burst(&burst, 0)?;
        write_file(&dir.join("cpu.cfs_period_us"), &bw.period_us.to_string())?;
        write_file(&dir.join("cpu.cfs_quota_us"), &max_text(Version::V1, bw.quota_us))?;
        write_burst(&burst, bw.burst_us)
    }

    fn usage(&self, dir: &Path) -> io::Result<Throttling> {
        let file = dir.join("cpu.stat");
        let text = read_file(&file)?;
        let key = |k: &str| keyed_value(&text, k).ok_or_else(|| invalid(&file, format!("has no {k:?} line")));
        Ok(Throttling { periods: key("nr_periods")?, throttled: key("nr_throttled")?, throttled_us: key("throttled_time")? / 1000 })
    }
}

impl Controller for V2 {
    type Settings = CpuLimits;
    type Usage = Throttling;

    fn read(&self, dir: &Path) -> io::Result<CpuLimits> {
        let file = dir.join("cpu.max");
        let text = read_file(&file)?;
        let (quota, period) = text.trim().split_once(' ').ok_or_else(|| invalid(&file, "is not \"QUOTA PERIOD\""))?;
        let quota_us = super::controller::parse_max(quota).map_err(|e| invalid(&file, e))?;
        let period_us = period.parse().map_err(|_| invalid(&file, format!("{period:?} is not a period")))?;
        let burst_us = read_burst(&dir.join("cpu.max.burst"))?;
        Ok(CpuLimits { bandwidth: Some(Bandwidth { quota_us, period_us, burst_us }) })
    }

    fn write(&self, dir: &Path, wanted: &CpuLimits) -> io::Result<()> {
        let Some(bw) = wanted.bandwidth else { return Ok(()) };
        let burst = dir.join("cpu.max.burst");
        // The kernel refuses a quota below the current burst: clear it first.
        write_burst(&burst, 0)?;
        write_file(&dir.join("cpu.max"), &format!("{} {}", max_text(Version::V2, bw.quota_us), bw.period_us))?;
        write_burst(&burst, bw.burst_us)
    }

    fn usage(&self, dir: &Path) -> io::Result<Throttling> {
        let file = dir.join("cpu.stat");
        let text = read_file(&file)?;
        let key = |k: &str| keyed_value(&text, k).ok_or_else(|| invalid(&file, format!("has no {k:?} line")));
        Ok(Throttling { periods: key("nr_periods")?, throttled: key("nr_throttled")?, throttled_us: key("throttled_usec")? })
    }
}

/// CPU time from `cpuacct.stat` (v1, in USER_HZ ticks) or the v2 `cpu.stat`,
/// which every cgroup2 directory has, even without the cpu controller.
pub fn times(version: Version, dir: &Path) -> io::Result<CpuTimes> {
    let (file, user, system, unit_us) = match version {
        Version::V1 => (dir.join("cpuacct.stat"), "user", "system", 1_000_000 / clock_ticks()),
        Version::V2 => (dir.join("cpu.stat"), "user_usec", "system_usec", 1),
    };
    let text = read_file(&file)?;
    let key = |k: &str| keyed_value(&text, k).ok_or_else(|| invalid(&file, format!("has no {k:?} line")));
    Ok(CpuTimes { user_us: key(user)? * unit_us, system_us: key(system)? * unit_us })
}

/// USER_HZ, the unit of /proc/PID/stat times and cpuacct.stat.
pub fn clock_ticks() -> u64 {
    crate::sys::process::sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fixture, read};

    #[test]
    fn token_bucket_maps_to_quota_period_and_burst() {
        let quarter = bucket_to_bandwidth(1, 4, None).unwrap();
        assert_eq!(quarter, Bandwidth { quota_us: Some(25_000), period_us: 100_000, burst_us: 0 });
        // A bucket of 100 tokens at 1/4 CPU needs a 400 ms period to hold a 100 ms burst.
        let bucket = bucket_to_bandwidth(1, 4, Some(100)).unwrap();
        assert_eq!(bucket, Bandwidth { quota_us: Some(100_000), period_us: 400_000, burst_us: 100_000 });
        // Larger than one period allows: the burst is capped at the quota.
        let capped = bucket_to_bandwidth(1, 4, Some(1_000)).unwrap();
        assert_eq!(capped, Bandwidth { quota_us: Some(250_000), period_us: 1_000_000, burst_us: 250_000 });
        // Two CPUs' worth is fine.
        assert_eq!(bucket_to_bandwidth(2, 1, None).unwrap().quota_us, Some(200_000));
        // A tiny share stretches the period to keep the quota at 1 ms.
        assert_eq!(bucket_to_bandwidth(1, 500, None).unwrap(), Bandwidth { quota_us: Some(1_000), period_us: 500_000, burst_us: 0 });
        assert!(bucket_to_bandwidth(1, 5000, None).unwrap_err().contains("1/1000"));
        assert!(bucket_to_bandwidth(0, 4, None).is_err());
    }

    #[test]
    fn v1_files_clear_burst_before_quota() {
        let dir = fixture(&[
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 2500000\nnr_bursts 0\n"),
            ("cpuacct.stat", "user 150\nsystem 50\n"),
        ]);
        let old = V1.read(&dir).unwrap();
        assert_eq!(old.bandwidth, Some(Bandwidth { quota_us: None, period_us: 100_000, burst_us: 0 }));
        let bw = bucket_to_bandwidth(1, 4, Some(100)).unwrap();
        V1.write(&dir, &CpuLimits { bandwidth: Some(bw) }).unwrap();
        assert_eq!(read(&dir, "cpu.cfs_period_us"), "400000");
        assert_eq!(read(&dir, "cpu.cfs_quota_us"), "100000");
        assert_eq!(read(&dir, "cpu.cfs_burst_us"), "100000");
        V1.write(&dir, &old).unwrap();
        assert_eq!(read(&dir, "cpu.cfs_quota_us"), "-1");
        assert_eq!(V1.usage(&dir).unwrap(), Throttling { periods: 10, throttled: 4, throttled_us: 2500 });
        let hz = clock_ticks();
        assert_eq!(times(Version::V1, &dir).unwrap(), CpuTimes { user_us: 150 * 1_000_000 / hz, system_us: 50 * 1_000_000 / hz });
    }

    #[test]
    fn v2_files_and_a_kernel_without_burst() {
        let dir = fixture(&[
            ("cpu.max", "max 100000\n"),
            ("cpu.stat", "usage_usec 300\nuser_usec 200\nsystem_usec 100\nnr_periods 3\nnr_throttled 1\nthrottled_usec 77\n"),
        ]);
        assert_eq!(V2.read(&dir).unwrap().bandwidth.unwrap().quota_us, None);
        let bw = bucket_to_bandwidth(1, 4, Some(10)).unwrap();
        V2.write(&dir, &CpuLimits { bandwidth: Some(bw) }).unwrap();
        assert_eq!(read(&dir, "cpu.max"), "25000 100000");
        assert!(!dir.join("cpu.max.burst").exists(), "no burst file is made up");
        std::fs::write(dir.join("cpu.max.burst"), "0\n").unwrap();
        V2.write(&dir, &CpuLimits { bandwidth: Some(bw) }).unwrap();
        assert_eq!(read(&dir, "cpu.max.burst"), "10000");
        assert_eq!(V2.usage(&dir).unwrap(), Throttling { periods: 3, throttled: 1, throttled_us: 77 });
        assert_eq!(times(Version::V2, &dir).unwrap(), CpuTimes { user_us: 200, system_us: 100 });
        std::fs::write(dir.join("cpu.max"), "garbage\n").unwrap();
        assert!(V2.read(&dir).unwrap_err().to_string().contains("cpu.max"));
    }
}
