//! `sched/` (the token bucket), util-vserver's older six-line `schedule`
//! file, and `cpuset/`: parsed and validated here, mapped onto CPU bandwidth
//! and cpusets by `limits`.

use std::path::{Path, PathBuf};

use super::parse::{parse_single, read_optional, ConfigError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedConfig {
    pub fill_rate: Option<u64>,
    pub interval: Option<u64>,
    pub tokens_max: Option<u64>,
    pub tokens: Option<u64>,
    /// Parsed so that a config that sets them gets a clear "does not map"
    /// unless they change nothing under CFS.
    pub tokens_min: Option<u64>,
    pub priority_bias: Option<i64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    /// The directory (`sched`) or file (`schedule`) the bucket came from,
    /// for messages.
    pub source: PathBuf,
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
        cpus: parse_single(&cpuset_dir.join("cpus"), validate_cpu_list)?,
        mems: parse_single(&cpuset_dir.join("mems"), validate_cpu_list)?,
        source: sched_dir.to_path_buf(),
    };
    if cfg.interval == Some(0) {
        return Err(ConfigError::bad_value(&sched_dir.join("interval"), 1, "0", "must be at least 1"));
    }
    Ok(cfg)
}

/// The older `schedule` file, read (as util-vserver does) only when there is
/// no `sched/` directory: six lines, fill-rate, interval, tokens,
/// tokens-min, tokens-max and priority-bias, all of them required.
pub fn parse_schedule(file: &Path, into: &mut SchedConfig) -> Result<(), ConfigError> {
    let Some(text) = read_optional(file)? else { return Ok(()) };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    const NAMES: [&str; 6] = ["fill-rate", "interval", "tokens", "tokens-min", "tokens-max", "priority-bias"];
    if lines.len() < 6 || lines[..6].iter().any(|l| l.is_empty()) {
        return Err(ConfigError::new(file, lines.len().min(6), format!("needs six lines ({}), one number each", NAMES.join(", "))));
    }
    let mut nums = [0i64; 6];
    for (i, line) in lines[..6].iter().enumerate() {
        nums[i] = line
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 || i == 5)
            .ok_or_else(|| ConfigError::bad_value(file, i + 1, line, format!("is not a valid {} (a whole number)", NAMES[i])))?;
    }
    if nums[1] == 0 {
        return Err(ConfigError::bad_value(file, 2, "0", "must be at least 1 (interval)"));
    }
    into.fill_rate = Some(nums[0] as u64);
    into.interval = Some(nums[1] as u64);
    into.tokens = Some(nums[2] as u64);
    into.tokens_min = Some(nums[3] as u64);
    into.tokens_max = Some(nums[4] as u64);
    into.priority_bias = Some(nums[5]);
    into.source = file.to_path_buf();
    Ok(())
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
    fn schedule_has_six_lines() {
        let d = crate::config::parse::tests::tempdir();
        let f = d.join("schedule");
        std::fs::write(&f, "1\n4\n100\n1\n200\n0\n").unwrap();
        let mut s = SchedConfig::default();
        parse_schedule(&f, &mut s).unwrap();
        assert_eq!(
            (s.fill_rate, s.interval, s.tokens, s.tokens_min, s.tokens_max, s.priority_bias),
            (Some(1), Some(4), Some(100), Some(1), Some(200), Some(0))
        );
        assert_eq!(s.source, f);
        std::fs::write(&f, "1\n4\n100\n").unwrap();
        assert!(parse_schedule(&f, &mut s).unwrap_err().to_string().contains("six lines"));
        std::fs::write(&f, "1\nx\n100\n1\n200\n0\n").unwrap();
        assert!(parse_schedule(&f, &mut s).unwrap_err().to_string().contains("interval"));
    }

    #[test]
    fn cpu_lists() {
        assert!(validate_cpu_list("0-3,5").is_ok());
        assert!(validate_cpu_list("3-1").is_err());
        assert!(validate_cpu_list("a").is_err());
    }
}
