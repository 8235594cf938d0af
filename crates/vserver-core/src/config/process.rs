//! Settings every process of the guest inherits from its first one:
//! `nice`, `ionice/{class,priority}`, `badness` (the OOM bias), and
//! util-vserver's `ulimits/` (read as its exec-ulimit reads them, then
//! merged under `rlimits/`).

use std::collections::BTreeMap;
use std::path::Path;

use super::parse::{parse_single, read_optional, ConfigError};
use super::rlimit::{LimitValue, Resource, RlimitSetting};

/// An I/O scheduling class and priority, as ioprio_set(2) takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPriority {
    /// 1 realtime, 2 best-effort, 3 idle (0, none, leaves the default).
    pub class: u8,
    /// 0 (highest) to 7; ignored for idle.
    pub level: u8,
}

impl IoPriority {
    /// The value ioprio_set(2) takes: class in the top bits, level below.
    pub fn raw(self) -> i32 {
        (i32::from(self.class) << 13) | i32::from(self.level)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `nice`: the absolute nice level of the guest's processes.
    pub nice: Option<i32>,
    pub ionice: Option<IoPriority>,
    /// `badness`: `oom_score_adj` of the guest's processes.
    pub oom_score_adj: Option<i32>,
}

pub fn parse_process_settings(nice: &Path, ionice_dir: &Path, badness: &Path) -> Result<ProcessSettings, ConfigError> {
    Ok(ProcessSettings {
        nice: parse_single(nice, |s| match s.parse::<i32>() {
            Ok(n) if (-20..=19).contains(&n) => Ok(n),
            _ => Err("is not a nice level (-20 to 19)"),
        })?,
        ionice: parse_ionice(ionice_dir)?,
        oom_score_adj: parse_single(badness, |s| match s.parse::<i32>() {
            Ok(n) if (-1000..=1000).contains(&n) => Ok(n),
            _ => Err("is not an OOM bias (oom_score_adj, -1000 to 1000)"),
        })?,
    })
}

/// util-vserver: a priority alone means best-effort (`ionice -c2 -nPRIO`).
fn parse_ionice(dir: &Path) -> Result<Option<IoPriority>, ConfigError> {
    let class = parse_single(&dir.join("class"), |s| match s.to_ascii_lowercase().as_str() {
        "0" | "none" => Ok(0),
        "1" | "realtime" => Ok(1),
        "2" | "best-effort" => Ok(2),
        "3" | "idle" => Ok(3),
        _ => Err("is not an I/O scheduling class (1 realtime, 2 best-effort, 3 idle)"),
    })?;
    let level = parse_single(&dir.join("priority"), |s| match s.parse::<u8>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err("is not an I/O priority (0 to 7)"),
    })?;
    Ok(match (class, level) {
        (None, None) => None,
        (None, Some(l)) => Some(IoPriority { class: 2, level: l }),
        (Some(c), l) => Some(IoPriority { class: c, level: l.unwrap_or(4) }),
    })
}

/// The resources exec-ulimit knows, by their file names.
const ULIMIT_RESOURCES: &[(&str, Resource)] = &[
    ("core", Resource::Core),
    ("cpu", Resource::Cpu),
    ("data", Resource::Data),
    ("fsize", Resource::Fsize),
    ("locks", Resource::Locks),
    ("memlock", Resource::Memlock),
    ("nofile", Resource::Nofile),
    ("nproc", Resource::Nproc),
    ("rss", Resource::Rss),
    ("stack", Resource::Stack),
];

/// `ulimits/RES`, `RES.hard`, `RES.soft` as exec-ulimit reads them: `inf`,
/// or a number (decimal, 0x hex or 0 octal) with an optional `K`, `M`
/// (powers of 1024), `k` or `m` (of 1000). A soft limit above the hard one
/// is lowered to it, as exec-ulimit does.
pub fn parse_ulimits(dir: &Path) -> Result<Vec<RlimitSetting>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, res) in ULIMIT_RESOURCES {
        let both = read_ulimit(&dir.join(name))?;
        let hard = read_ulimit(&dir.join(format!("{name}.hard")))?.or(both);
        let soft = read_ulimit(&dir.join(format!("{name}.soft")))?.or(both);
        if hard.is_none() && soft.is_none() {
            continue;
        }
        if *res == Resource::Rss {
            return Err(ConfigError::new(
                &dir.join(name),
                0,
                "sets RLIMIT_RSS, which Linux ignores (util-vserver's ulimits/rss never limited anything); \
                 use rlimits/rss for the guest's memory limit",
            ));
        }
        let soft = match (soft, hard) {
            (Some(s), Some(LimitValue::Plain(h))) if s.amount().is_none_or(|s| s > h) => Some(LimitValue::Plain(h)),
            (s, _) => s,
        };
        out.insert(*res, RlimitSetting { resource: *res, soft, hard, min: None });
    }
    Ok(out.into_values().collect())
}

fn read_ulimit(file: &Path) -> Result<Option<LimitValue>, ConfigError> {
    let Some(text) = read_optional(file)? else { return Ok(None) };
    let first = text.lines().next().unwrap_or("").trim();
    parse_ulimit_value(first).map(Some).map_err(|why| ConfigError::bad_value(file, 1, first, why))
}

/// exec-ulimit's value syntax (strtol with base 0, then a suffix).
pub fn parse_ulimit_value(s: &str) -> Result<LimitValue, String> {
    if s.starts_with("inf") {
        return Ok(LimitValue::Unlimited);
    }
    let (digits, radix) = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    let (num, suffix) = digits.split_at(end);
    if num.is_empty() && radix != 8 {
        return Err("is not a limit (a number with an optional K, M, k or m suffix, or inf)".into());
    }
    let n = if num.is_empty() { 0 } else { u64::from_str_radix(num, radix).map_err(|_| "is too large".to_string())? };
    let factor = match suffix {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "k" => 1_000,
        "m" => 1_000_000,
        _ => return Err(format!("has an unknown suffix {suffix:?} (exec-ulimit knows K, M, k and m)")),
    };
    n.checked_mul(factor).map(LimitValue::Plain).ok_or_else(|| "is too large".into())
}

/// `rlimits/` wins over `ulimits/` for every value both set.
pub fn merge_under(rlimits: &mut Vec<RlimitSetting>, ulimits: Vec<RlimitSetting>) {
    for u in ulimits {
        match rlimits.iter_mut().find(|r| r.resource == u.resource) {
            Some(r) => {
                r.hard = r.hard.or(u.hard);
                r.soft = r.soft.or(u.soft);
            }
            None => rlimits.push(u),
        }
    }
    rlimits.sort_by_key(|r| r.resource);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;
    use std::fs;

    #[test]
    fn exec_ulimit_values() {
        assert_eq!(parse_ulimit_value("inf"), Ok(LimitValue::Unlimited));
        assert_eq!(parse_ulimit_value("77"), Ok(LimitValue::Plain(77)));
        assert_eq!(parse_ulimit_value("2K"), Ok(LimitValue::Plain(2048)));
        assert_eq!(parse_ulimit_value("2M"), Ok(LimitValue::Plain(2 << 20)));
        assert_eq!(parse_ulimit_value("2k"), Ok(LimitValue::Plain(2000)));
        assert_eq!(parse_ulimit_value("0x10"), Ok(LimitValue::Plain(16)));
        assert_eq!(parse_ulimit_value("010"), Ok(LimitValue::Plain(8)));
        assert_eq!(parse_ulimit_value("0"), Ok(LimitValue::Plain(0)));
        for bad in ["", "x", "5G", "1.5"] {
            assert!(parse_ulimit_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ulimits_merge_under_rlimits() {
        let d = tempdir();
        fs::write(d.join("nofile"), "77\n").unwrap();
        fs::write(d.join("core.soft"), "inf\n").unwrap();
        fs::write(d.join("core.hard"), "1000\n").unwrap();
        fs::write(d.join("stack.soft"), "8M\n").unwrap();
        let u = parse_ulimits(&d).unwrap();
        let get = |r| u.iter().find(|s| s.resource == r).copied().unwrap();
        assert_eq!((get(Resource::Nofile).soft, get(Resource::Nofile).hard), (Some(LimitValue::Plain(77)), Some(LimitValue::Plain(77))));
        assert_eq!(get(Resource::Core).soft, Some(LimitValue::Plain(1000)), "soft above hard is lowered");
        assert_eq!(get(Resource::Stack).hard, None);
        let mut r = vec![RlimitSetting { resource: Resource::Nofile, soft: None, hard: Some(LimitValue::Plain(99)), min: None }];
        merge_under(&mut r, u);
        let nofile = r.iter().find(|s| s.resource == Resource::Nofile).unwrap();
        assert_eq!((nofile.soft, nofile.hard), (Some(LimitValue::Plain(77)), Some(LimitValue::Plain(99))));
        fs::write(d.join("rss"), "1000\n").unwrap();
        assert!(parse_ulimits(&d).unwrap_err().to_string().contains("RLIMIT_RSS"));
    }

    #[test]
    fn nice_ionice_badness() {
        let d = tempdir();
        fs::write(d.join("nice"), "5\n").unwrap();
        fs::create_dir_all(d.join("ionice")).unwrap();
        fs::write(d.join("ionice/priority"), "6\n").unwrap();
        fs::write(d.join("badness"), "300\n").unwrap();
        let p = parse_process_settings(&d.join("nice"), &d.join("ionice"), &d.join("badness")).unwrap();
        assert_eq!(p, ProcessSettings { nice: Some(5), ionice: Some(IoPriority { class: 2, level: 6 }), oom_score_adj: Some(300) });
        assert_eq!(IoPriority { class: 2, level: 6 }.raw(), (2 << 13) | 6);
        fs::write(d.join("ionice/class"), "idle\n").unwrap();
        let p = parse_process_settings(&d.join("nice"), &d.join("ionice"), &d.join("badness")).unwrap();
        assert_eq!(p.ionice, Some(IoPriority { class: 3, level: 6 }));
        fs::write(d.join("nice"), "20\n").unwrap();
        assert!(parse_process_settings(&d.join("nice"), &d.join("ionice"), &d.join("badness")).is_err());
    }
}
