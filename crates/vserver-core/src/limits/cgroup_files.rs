//! util-vserver's `cgroup/` files on this host's cgroups: each file is
//! written into the guest's cgroup `vserver/NAME` in the hierarchy of its
//! controller, under the name that hierarchy uses. A v1 name (written for
//! util-vserver's hosts) is translated when its controller is a cgroup v2
//! one here (`memory.limit_in_bytes` → `memory.max`, `cpu.shares` →
//! `cpu.weight`, `blkio.throttle.*` → `io.max`, ...), and a v2 name when the
//! controller is a v1 one. Files that would open devices, move or freeze
//! processes, or that have no counterpart, are refused by name.

use std::path::PathBuf;

use super::controller::{locate, Version};
use super::LimitError;
use crate::cgroup::{write_file, GuestCgroup};
use crate::config::cgroup_files::CgroupSetting;

/// One write into a control file of the guest's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupWrite {
    /// The directory of the controller's hierarchy (`vserver/NAME`).
    pub dir: PathBuf,
    pub file: String,
    pub value: String,
    /// The configuration file it comes from.
    pub from: PathBuf,
}

/// Works out every write for this host, refusing what cannot be done.
pub fn plan(cg: &GuestCgroup, settings: &[CgroupSetting]) -> Result<Vec<CgroupWrite>, LimitError> {
    let mut out = Vec::new();
    for s in settings {
        let family = s.name.split('.').next().unwrap_or("");
        if let Some(why) = refused_family(&s.name, family) {
            return Err(LimitError::CgroupFileRefused { file: s.file.clone(), why: why.into() });
        }
        let controller = match family {
            "blkio" | "io" if cg.layout().v1_mount("blkio").is_some() => "blkio",
            "blkio" | "io" => "io",
            "cgroup" => {
                let dir = cg.v2_dir().ok_or_else(|| LimitError::CgroupV2Only { file: s.file.clone() })?;
                out.extend(s.values.iter().map(|v| CgroupWrite {
                    dir: dir.to_path_buf(),
                    file: s.name.clone(),
                    value: v.clone(),
                    from: s.file.clone(),
                }));
                continue;
            }
            other => other,
        };
        let at =
            locate(cg, controller).map_err(|err| LimitError::CgroupFileController { file: s.file.clone(), name: s.name.clone(), err })?;
        let translated = translate(&s.name, &s.values, at.version, settings)
            .map_err(|why| LimitError::CgroupFileRefused { file: s.file.clone(), why })?;
        for (file, value) in translated {
            if !at.dir.join(&file).exists() {
                return Err(LimitError::NoCgroupFile { file: s.file.clone(), name: file, dir: at.dir, version: at.version });
            }
            out.push(CgroupWrite { dir: at.dir.clone(), file, value, from: s.file.clone() });
        }
    }
    Ok(out)
}

/// Writes the planned values.
pub fn apply(writes: &[CgroupWrite]) -> Result<(), LimitError> {
    for w in writes {
        write_file(&w.dir.join(&w.file), &w.value).map_err(|err| LimitError::WritingCgroupFile { from: w.from.clone(), err })?;
    }
    Ok(())
}

/// Controllers and files no configuration may write.
fn refused_family(name: &str, family: &str) -> Option<&'static str> {
    Some(match family {
        "devices" => "the guest's devices come from one list (apps/vdevmap/, devices); writing the devices controller directly could open the host's devices",
        "cpuacct" => "cpuacct files are statistics, not settings",
        "freezer" => "a guest frozen at start would never finish starting",
        "cgroup" if !matches!(name, "cgroup.max.descendants" | "cgroup.max.depth") => {
            "cgroup.* files other than cgroup.max.descendants and cgroup.max.depth move, kill or freeze processes or change the hierarchy"
        }
        _ if name.ends_with(".tasks") || name.ends_with(".procs") => "moves processes",
        _ => return None,
    })
}

/// The file names and values for a controller of this `version`.
pub fn translate(name: &str, values: &[String], version: Version, all: &[CgroupSetting]) -> Result<Vec<(String, String)>, String> {
    let one = |file: &str, value: String| Ok(vec![(file.to_string(), value)]);
    let single = || -> Result<&str, String> {
        match values {
            [v] => Ok(v.as_str()),
            _ => Err(format!("{name} takes one value")),
        }
    };
    let other = |n: &str| all.iter().find(|s| s.name == n).and_then(|s| s.values.first().cloned());
    match (version, name) {
        // cgroup v1 names on a v2 controller.
        (Version::V2, "memory.limit_in_bytes") => one("memory.max", v1_limit_to_v2(single()?)),
        (Version::V2, "memory.soft_limit_in_bytes") => one("memory.high", v1_limit_to_v2(single()?)),
        (Version::V2, "memory.memsw.limit_in_bytes") => {
            let total = single()?;
            if total == "-1" {
                return one("memory.swap.max", "max".into());
            }
            let limit = other("memory.limit_in_bytes").ok_or(
                "memory.memsw.limit_in_bytes needs memory.limit_in_bytes beside it (cgroup v2 limits swap on its own: memory.swap.max)",
            )?;
            let swap =
                memparse(total)?.checked_sub(memparse(&limit)?).ok_or("memory.memsw.limit_in_bytes is below memory.limit_in_bytes")?;
            one("memory.swap.max", swap.to_string())
        }
        (Version::V2, "memory.use_hierarchy") => match single()? {
            "1" => Ok(Vec::new()),
            _ => Err("cgroup v2 is always hierarchical (memory.use_hierarchy 0 cannot be had)".into()),
        },
        (Version::V2, n) if n.starts_with("memory.kmem.") => {
            Err("cgroup v2 counts kernel memory in memory.max; there is no separate kernel memory limit".into())
        }
        (Version::V2, "memory.swappiness" | "memory.oom_control" | "memory.move_charge_at_immigrate") => {
            Err(format!("{name} has no cgroup v2 counterpart"))
        }
        (Version::V2, "cpu.shares") => one("cpu.weight", shares_to_weight(number(single()?)?).to_string()),
        (Version::V2, "cpu.cfs_quota_us") => {
            let period = other("cpu.cfs_period_us").unwrap_or_else(|| "100000".into());
            let quota = single()?;
            one("cpu.max", format!("{} {period}", if quota == "-1" { "max" } else { quota }))
        }
        (Version::V2, "cpu.cfs_period_us") if other("cpu.cfs_quota_us").is_some() => Ok(Vec::new()),
        (Version::V2, "cpu.cfs_period_us") => one("cpu.max", format!("max {}", single()?)),
        (Version::V2, "cpu.cfs_burst_us") => one("cpu.max.burst", single()?.to_string()),
        (Version::V2, "cpu.rt_runtime_us" | "cpu.rt_period_us") => Err("cgroup v2 has no real-time CPU budgets for a group".into()),
        (Version::V2, "cpuset.cpu_exclusive" | "cpuset.mem_exclusive") => {
            Err("an exclusive cpuset takes the CPUs from the host and every other guest".into())
        }
        (Version::V2, "blkio.weight") => one("io.weight", format!("default {}", blkio_to_io_weight(number(single()?)?))),
        (Version::V2, "blkio.weight_device") => values
            .iter()
            .map(|v| {
                let (dev, w) = device_value(v)?;
                Ok(("io.weight".to_string(), format!("{dev} {}", blkio_to_io_weight(number(w)?))))
            })
            .collect(),
        (Version::V2, n) if n.starts_with("blkio.throttle.") => {
            let key = match n {
                "blkio.throttle.read_bps_device" => "rbps",
                "blkio.throttle.write_bps_device" => "wbps",
                "blkio.throttle.read_iops_device" => "riops",
                "blkio.throttle.write_iops_device" => "wiops",
                _ => return Err(format!("{n} has no cgroup v2 counterpart")),
            };
            values
                .iter()
                .map(|v| {
                    let (dev, limit) = device_value(v)?;
                    let limit = if limit == "0" { "max" } else { limit };
                    Ok(("io.max".to_string(), format!("{dev} {key}={limit}")))
                })
                .collect()
        }
        (Version::V2, n) if n.starts_with("blkio.") => Err(format!("{n} has no cgroup v2 counterpart")),
        (Version::V2, n) if n.starts_with("hugetlb.") && n.ends_with(".limit_in_bytes") => {
            one(&n.replace(".limit_in_bytes", ".max"), v1_limit_to_v2(single()?))
        }
        (Version::V2, n) if n.starts_with("net_cls.") || n.starts_with("net_prio.") => {
            Err(format!("{n} has no cgroup v2 counterpart (classify traffic with the guest's cgroup path instead)"))
        }

        // cgroup v2 names on a v1 controller.
        (Version::V1, "memory.max") => one("memory.limit_in_bytes", v2_limit_to_v1(single()?)),
        (Version::V1, "memory.high") => one("memory.soft_limit_in_bytes", v2_limit_to_v1(single()?)),
        (Version::V1, "memory.low" | "memory.min") => Err(format!("{name} is a memory guarantee, which cgroup v1 does not have")),
        (Version::V1, "memory.swap.max") => {
            let swap = single()?;
            if swap == "max" {
                return one("memory.memsw.limit_in_bytes", "-1".into());
            }
            let limit = other("memory.max")
                .filter(|m| m != "max")
                .ok_or("memory.swap.max needs a memory.max beside it (cgroup v1 limits memory and swap together)")?;
            let total = memparse(swap)?.checked_add(memparse(&limit)?).ok_or("too large")?;
            one("memory.memsw.limit_in_bytes", total.to_string())
        }
        (Version::V1, "memory.oom.group" | "memory.swap.high" | "memory.zswap.max") => Err(format!("{name} has no cgroup v1 counterpart")),
        (Version::V1, "cpu.max") => {
            let v = single()?;
            let (quota, period) = v.split_once(' ').map_or((v, None), |(q, p)| (q, Some(p)));
            let mut out = Vec::new();
            if let Some(p) = period {
                out.push(("cpu.cfs_period_us".to_string(), p.to_string()));
            }
            out.push(("cpu.cfs_quota_us".to_string(), if quota == "max" { "-1".into() } else { quota.to_string() }));
            Ok(out)
        }
        (Version::V1, "cpu.max.burst") => one("cpu.cfs_burst_us", single()?.to_string()),
        (Version::V1, "cpu.weight") => one("cpu.shares", weight_to_shares(number(single()?)?).to_string()),
        (Version::V1, "cpu.weight.nice" | "cpu.idle" | "cpu.uclamp.min" | "cpu.uclamp.max") => {
            Err(format!("{name} has no cgroup v1 counterpart"))
        }
        (Version::V1, "io.weight") => values
            .iter()
            .map(|v| {
                let (target, w) = v.split_once(' ').ok_or(format!("{v:?} is not \"default WEIGHT\" or \"MAJOR:MINOR WEIGHT\""))?;
                let w = io_to_blkio_weight(number(w.trim())?);
                Ok(if target == "default" {
                    ("blkio.weight".to_string(), w.to_string())
                } else {
                    ("blkio.weight_device".to_string(), format!("{target} {w}"))
                })
            })
            .collect(),
        (Version::V1, "io.max") => {
            let mut out = Vec::new();
            for v in values {
                let mut words = v.split_whitespace();
                let dev = words.next().ok_or("io.max is empty")?;
                for kv in words {
                    let (key, limit) = kv.split_once('=').ok_or(format!("{kv:?} is not KEY=VALUE"))?;
                    let file = match key {
                        "rbps" => "blkio.throttle.read_bps_device",
                        "wbps" => "blkio.throttle.write_bps_device",
                        "riops" => "blkio.throttle.read_iops_device",
                        "wiops" => "blkio.throttle.write_iops_device",
                        _ => return Err(format!("io.max key {key:?} has no cgroup v1 counterpart")),
                    };
                    out.push((file.to_string(), format!("{dev} {}", if limit == "max" { "0" } else { limit })));
                }
            }
            Ok(out)
        }
        (Version::V1, n) if n.starts_with("io.") => Err(format!("{n} has no cgroup v1 counterpart")),
        (Version::V1, n) if n.starts_with("hugetlb.") && n.ends_with(".max") => {
            one(&n.replace(".max", ".limit_in_bytes"), v2_limit_to_v1(single()?))
        }
        (_, "cpuset.cpus.partition" | "cpuset.cpus.exclusive") => {
            Err("an exclusive cpuset takes the CPUs from the host and every other guest".into())
        }
        (_, "cpuset.cpu_exclusive" | "cpuset.mem_exclusive") if values.iter().any(|v| v != "0") => {
            Err("an exclusive cpuset takes the CPUs from the host and every other guest".into())
        }

        // Same name in both versions (pids.max, cpuset.cpus, ...), or a file
        // of this version's own.
        _ => Ok(values.iter().map(|v| (name.to_string(), v.clone())).collect()),
    }
}

fn v1_limit_to_v2(v: &str) -> String {
    if v == "-1" {
        "max".into()
    } else {
        v.to_string()
    }
}

fn v2_limit_to_v1(v: &str) -> String {
    if v == "max" {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn number(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not a number"))
}

/// `MAJOR:MINOR VALUE`.
fn device_value(v: &str) -> Result<(&str, &str), String> {
    let (dev, value) = v.split_once(' ').ok_or(format!("{v:?} is not \"MAJOR:MINOR VALUE\""))?;
    Ok((dev, value.trim()))
}

/// The kernel's memparse: a number with an optional K, M, G or T suffix.
pub fn memparse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(end);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{s:?} is not a size (K, M, G or T suffix)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// cpu.shares (2–262144, default 1024) onto cpu.weight (1–10000, default
/// 100), as runc and systemd convert them.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

pub fn weight_to_shares(weight: u64) -> u64 {
    2 + ((weight.clamp(1, 10_000) - 1) * 262_142) / 9999
}

/// blkio.weight (10–1000) onto io.weight (1–10000).
pub fn blkio_to_io_weight(w: u64) -> u64 {
    1 + ((w.clamp(10, 1000) - 10) * 9999) / 990
}

pub fn io_to_blkio_weight(w: u64) -> u64 {
    10 + ((w.clamp(1, 10_000) - 1) * 990) / 9999
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fill, hybrid_guest, v2_guest};

    fn setting(name: &str, values: &[&str]) -> CgroupSetting {
        CgroupSetting {
            file: format!("/etc/vservers/g1/cgroup/{name}").into(),
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn t(name: &str, values: &[&str], v: Version, all: &[CgroupSetting]) -> Result<Vec<(String, String)>, String> {
        translate(name, &values.iter().map(|s| s.to_string()).collect::<Vec<_>>(), v, all)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn v1_names_on_v2() {
        use Version::V2;
        assert_eq!(t("memory.limit_in_bytes", &["64M"], V2, &[]).unwrap(), pairs(&[("memory.max", "64M")]));
        assert_eq!(t("memory.limit_in_bytes", &["-1"], V2, &[]).unwrap(), pairs(&[("memory.max", "max")]));
        let both = [setting("memory.limit_in_bytes", &["64M"]), setting("memory.memsw.limit_in_bytes", &["96M"])];
        assert_eq!(
            t("memory.memsw.limit_in_bytes", &["96M"], V2, &both).unwrap(),
            pairs(&[("memory.swap.max", &(32u64 << 20).to_string())])
        );
        assert!(t("memory.memsw.limit_in_bytes", &["96M"], V2, &[]).unwrap_err().contains("needs memory.limit_in_bytes"));
        assert_eq!(t("cpu.shares", &["1024"], V2, &[]).unwrap(), pairs(&[("cpu.weight", "39")]));
        let q = [setting("cpu.cfs_quota_us", &["50000"]), setting("cpu.cfs_period_us", &["200000"])];
        assert_eq!(t("cpu.cfs_quota_us", &["50000"], V2, &q).unwrap(), pairs(&[("cpu.max", "50000 200000")]));
        assert_eq!(t("cpu.cfs_period_us", &["200000"], V2, &q).unwrap(), vec![]);
        assert_eq!(
            t("blkio.throttle.read_bps_device", &["8:0 1048576", "8:16 0"], V2, &[]).unwrap(),
            pairs(&[("io.max", "8:0 rbps=1048576"), ("io.max", "8:16 rbps=max")])
        );
        assert_eq!(t("blkio.weight", &["500"], V2, &[]).unwrap(), pairs(&[("io.weight", "default 4950")]));
        assert_eq!(t("hugetlb.2MB.limit_in_bytes", &["-1"], V2, &[]).unwrap(), pairs(&[("hugetlb.2MB.max", "max")]));
        assert!(t("memory.swappiness", &["10"], V2, &[]).unwrap_err().contains("no cgroup v2"));
        assert_eq!(t("pids.max", &["100"], V2, &[]).unwrap(), pairs(&[("pids.max", "100")]));
    }

    #[test]
    fn v2_names_on_v1() {
        use Version::V1;
        assert_eq!(t("memory.max", &["max"], V1, &[]).unwrap(), pairs(&[("memory.limit_in_bytes", "-1")]));
        assert_eq!(t("memory.high", &["32M"], V1, &[]).unwrap(), pairs(&[("memory.soft_limit_in_bytes", "32M")]));
        assert!(t("memory.low", &["1M"], V1, &[]).unwrap_err().contains("guarantee"));
        assert_eq!(
            t("cpu.max", &["25000 100000"], V1, &[]).unwrap(),
            pairs(&[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "25000")])
        );
        assert_eq!(t("cpu.weight", &["100"], V1, &[]).unwrap(), pairs(&[("cpu.shares", "2597")]));
        assert_eq!(
            t("io.max", &["8:0 rbps=100 wiops=max"], V1, &[]).unwrap(),
            pairs(&[("blkio.throttle.read_bps_device", "8:0 100"), ("blkio.throttle.write_iops_device", "8:0 0")])
        );
        assert_eq!(
            t("io.weight", &["default 100", "8:0 10000"], V1, &[]).unwrap(),
            pairs(&[("blkio.weight", "19"), ("blkio.weight_device", "8:0 1000")])
        );
        let sw = [setting("memory.max", &["64M"])];
        assert_eq!(t("memory.swap.max", &["32M"], V1, &sw).unwrap(), pairs(&[("memory.memsw.limit_in_bytes", &(96u64 << 20).to_string())]));
        assert_eq!(t("memory.limit_in_bytes", &["64M"], V1, &[]).unwrap(), pairs(&[("memory.limit_in_bytes", "64M")]));
    }

    #[test]
    fn conversions_round_trip_the_defaults() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(io_to_blkio_weight(1), 10);
        assert_eq!(memparse("2k").unwrap(), 2048);
        assert!(memparse("2x").is_err());
    }

    #[test]
    fn planned_into_the_right_hierarchy_and_refused_by_name() {
        let (_root, cg) = v2_guest("cpuset cpu io memory pids\n");
        let dir = cg.v2_dir().unwrap().to_path_buf();
        fill(&dir, &[("cpu.weight", "100\n")]);
        let w = plan(&cg, &[setting("memory.limit_in_bytes", &["64M"]), setting("cpu.shares", &["512"])]).unwrap();
        assert_eq!(
            w.iter().map(|w| (w.file.as_str(), w.value.as_str())).collect::<Vec<_>>(),
            [("memory.max", "64M"), ("cpu.weight", "20")]
        );
        apply(&w).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("memory.max")).unwrap(), "64M");
        let e = plan(&cg, &[setting("devices.allow", &["a"])]).unwrap_err().to_string();
        assert!(e.contains("cgroup/devices.allow") && e.contains("host's devices"), "{e}");
        let e = plan(&cg, &[setting("memory.oom_control", &["1"])]).unwrap_err().to_string();
        assert!(e.contains("no cgroup v2 counterpart"), "{e}");
        let e = plan(&cg, &[setting("memory.nosuchfile", &["1"])]).unwrap_err().to_string();
        assert!(e.contains("has no memory.nosuchfile"), "{e}");

        let (root, cg) = hybrid_guest(&["memory", "pids"]);
        let w = plan(&cg, &[setting("memory.max", &["64M"]), setting("pids.max", &["50"])]).unwrap();
        assert_eq!(w[0].dir, root.join("memory/vserver/g1"));
        assert_eq!((w[0].file.as_str(), w[0].value.as_str()), ("memory.limit_in_bytes", "64M"));
        assert_eq!(w[1].dir, root.join("pids/vserver/g1"));
        let e = plan(&cg, &[setting("cpu.shares", &["512"])]).unwrap_err();
        assert!(format!("{e:#}").contains("cpu controller"), "{e:#}");
    }
}
