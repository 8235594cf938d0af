//! `sched/` (the token bucket) and `cpuset/`: parsed and validated here,
//! mapped onto CPU bandwidth and cpusets by `limits`.

use std::path::Path;

use super::parse::{parse_single, ConfigError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedConfig {
    pub fill_rate: Option<u64>,
    pub interval: Option<u64>,
    pub tokens_max: Option<u64>,
    pub tokens: Option<u64>,
    /// Parsed so that a config that sets them gets a clear "does not map".
    pub tokens_min: Option<u64>,
    pub priority_bias: Option<i64>,
    pub idle_time: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

pub fn parse_sched(sched_dir: &Path, cpuset_dir: &Path) -> Result<SchedConfig, ConfigError> {
    let num = |name: &str| parse_single(&sched_dir.join(name), |s| s.parse::<u64>().map_err(|_| "is not a non-negative integer"));
    let cfg = SchedConfig {
        fill_rate: num("fill-rate")?,
        interval: num("interval")?,
        tokens_max: num("tokens-max")?,
        tokens: num("tokens")?,
        tokens_min: num("tokens-min")?,
        priority_bias: parse_single(&sched_dir.join("priority-bias"), |s| s.parse::<i64>().map_err(|_| "is not an integer"))?,
        idle_time: num("idle-time")?,
        cpus: parse_single(&cpuset_dir.join("cpus"), validate_cpu_list)?,
        mems: parse_single(&cpuset_dir.join("mems"), validate_cpu_list)?,
    };
    if cfg.interval == Some(0) {
        return Err(ConfigError::bad_value(&sched_dir.join("interval"), 1, "0", "must be at least 1"));
    }
    Ok(cfg)
}

/// `0-3,5` style lists as the cpuset controller takes them.
pub fn validate_cpu_list(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split(',').all(|part| {
            let mut it = part.splitn(2, '-');
            let a = it.next().and_then(|x| x.parse::<u32>().ok());
            match (a, it.next()) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b.parse::<u32>().map(|b| b >= a).unwrap_or(false),
                _ => false,
            }
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err("is not a CPU list like 0-3,5".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert!(validate_cpu_list("0-3,5").is_ok());
        assert!(validate_cpu_list("3-1").is_err());
        assert!(validate_cpu_list("a").is_err());
    }
}
