//! The resources of `rlimits/<res>` and the value syntax util-vserver's
//! `vlimit` and `rlimits/` use (`1k`, `1M`, `inf`). Applying them is
//! `limits::rlimit` (per process) and `limits::context` (context-wide).

use std::fmt;

/// The resources of `rlimits/<res>`. Most are per-process rlimits; `rss` and
/// `nproc` are whole-context limits enforced by the guest's cgroup (a
/// per-process RLIMIT_NPROC would count the uid's processes host-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Cpu,
    Fsize,
    Data,
    Stack,
    Core,
    Rss,
    Nproc,
    Nofile,
    Memlock,
    As,
    Locks,
    Sigpending,
    Msgqueue,
    Nice,
    Rtprio,
}

pub const ALL_RESOURCES: &[Resource] = &[
    Resource::Cpu,
    Resource::Fsize,
    Resource::Data,
    Resource::Stack,
    Resource::Core,
    Resource::Rss,
    Resource::Nproc,
    Resource::Nofile,
    Resource::Memlock,
    Resource::As,
    Resource::Locks,
    Resource::Sigpending,
    Resource::Msgqueue,
    Resource::Nice,
    Resource::Rtprio,
];

/// Linux-VServer context limits that mainline has no counterpart for.
const VSERVER_ONLY: &[&str] = &["nsock", "openfd", "anon", "shmem", "semary", "nsems", "dentry", "rmap"];

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Fsize => "fsize",
            Resource::Data => "data",
            Resource::Stack => "stack",
            Resource::Core => "core",
            Resource::Rss => "rss",
            Resource::Nproc => "nproc",
            Resource::Nofile => "nofile",
            Resource::Memlock => "memlock",
            Resource::As => "as",
            Resource::Locks => "locks",
            Resource::Sigpending => "sigpending",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Rtprio => "rtprio",
        }
    }

    pub fn parse(name: &str) -> Result<Resource, String> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "vm" { "as".to_string() } else { lower };
        if let Some(r) = ALL_RESOURCES.iter().find(|r| r.name() == lower) {
            return Ok(*r);
        }
        if VSERVER_ONLY.contains(&lower.as_str()) {
            return Err(format!("{name:?} is a Linux-VServer context limit with no equivalent on a stock kernel"));
        }
        Err(format!(
            "{name:?} is not a resource limit name (known: {})",
            ALL_RESOURCES.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
        ))
    }

    /// The setrlimit(2) resource, or None for the context-wide limits that live
    /// in the cgroup.
    pub fn rlimit_id(self) -> Option<libc::__rlimit_resource_t> {
        Some(match self {
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Stack => libc::RLIMIT_STACK,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::As => libc::RLIMIT_AS,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rss | Resource::Nproc => return None,
        })
    }

    pub fn is_context_wide(self) -> bool {
        self.rlimit_id().is_none()
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A limit value as written: `inf`, a plain number, or a number with a size
/// suffix (`k`=10^3, `K`=2^10, `m`=10^6, `M`=2^20, `g`=10^9, `G`=2^30).
/// Plain numbers are in the resource's own unit (pages for `rss`); suffixed
/// ones are bytes for `rss`, and simply the multiplied number elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    Unlimited,
    Plain(u64),
    Scaled(u64),
}

impl LimitValue {
    pub fn parse(text: &str) -> Result<LimitValue, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("inf") || t == "-1" {
            return Ok(LimitValue::Unlimited);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, suffix) = t.split_at(split);
        if digits.is_empty() {
            return Err("is not a number (expected digits with an optional k/K/m/M/g/G suffix, or inf)".into());
        }
        let n: u64 = digits.parse().map_err(|_| "is too large".to_string())?;
        let factor: u64 = match suffix {
            "" => return Ok(LimitValue::Plain(n)),
            "k" => 1_000,
            "K" => 1 << 10,
            "m" => 1_000_000,
            "M" => 1 << 20,
            "g" => 1_000_000_000,
            "G" => 1 << 30,
            _ => return Err(format!("has an unknown suffix {suffix:?} (use k, K, m, M, g or G)")),
        };
        n.checked_mul(factor).map(LimitValue::Scaled).ok_or_else(|| "is too large".to_string())
    }

    /// The number in the resource's rlimit unit, None for unlimited.
    pub fn amount(self) -> Option<u64> {
        match self {
            LimitValue::Unlimited => None,
            LimitValue::Plain(n) | LimitValue::Scaled(n) => Some(n),
        }
    }

    pub fn as_rlim(self) -> libc::rlim_t {
        self.amount().unwrap_or(libc::RLIM_INFINITY)
    }
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.amount() {
            None => f.write_str("inf"),
            Some(n) => write!(f, "{n}"),
        }
    }
}

/// Soft, hard and minimum (guaranteed) values of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitSetting {
    pub resource: Resource,
    pub soft: Option<LimitValue>,
    pub hard: Option<LimitValue>,
    pub min: Option<LimitValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_util_vserver_tests_expect() {
        assert_eq!(LimitValue::parse("1k"), Ok(LimitValue::Scaled(1000)));
        assert_eq!(LimitValue::parse("1K"), Ok(LimitValue::Scaled(1024)));
        assert_eq!(LimitValue::parse("1m"), Ok(LimitValue::Scaled(1_000_000)));
        assert_eq!(LimitValue::parse("1M"), Ok(LimitValue::Scaled(1 << 20)));
        assert_eq!(LimitValue::parse("2G"), Ok(LimitValue::Scaled(2 << 30)));
        assert_eq!(LimitValue::parse("42"), Ok(LimitValue::Plain(42)));
        assert_eq!(LimitValue::parse("inf"), Ok(LimitValue::Unlimited));
        for bad in ["x", "k", "1kX", "", "-5", "1.5M"] {
            assert!(LimitValue::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn resource_names() {
        assert_eq!(Resource::parse("NOFILE"), Ok(Resource::Nofile));
        assert_eq!(Resource::parse("vm"), Ok(Resource::As));
        assert!(Resource::parse("openfd").unwrap_err().contains("no equivalent"));
        assert!(Resource::parse("bogus").unwrap_err().contains("not a resource"));
        assert!(Resource::Rss.is_context_wide() && Resource::Nproc.is_context_wide());
    }
}
