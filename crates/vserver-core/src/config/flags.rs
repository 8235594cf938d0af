//! Context flags (`cflags`, older name `flags`), context capabilities
//! (`ccapabilities`), extra namespaces (`namespaces`) and `personality`.
//!
//! Every util-vserver name is known here. A name that maps onto a mainline
//! mechanism is accepted; one that is always in effect here is accepted as a
//! no-op; one with no stock-kernel equivalent is an error saying so, so an
//! admin never believes a protection is on when it is not.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContextFlag {
    /// Time namespace: the guest's uptime starts near 0.
    VirtUptime,
    /// A network namespace of its own (interfaces of the host are hidden).
    HideNetif,
    /// Allow io_uring, which the seccomp filter denies by default.
    IoUring,
    /// Token bucket in hard mode: the `sched/` settings cap CPU use.
    SchedHard,
}

/// util-vserver flags that are always true here (pid namespace, private mount
/// namespace, fake init, ...), accepted so existing configs keep working.
const ALWAYS_ON_FLAGS: &[&str] = &[
    "namespace", "private", "fakeinit", "hideinfo", "hide_mount", "state_setup", "state_init",
    "sc_helper", "persistent", "lock", "nproc", "ulimit", "info_init", "info_hide", "info_ulimit",
    "info_namespace", "virt_load", "virt_cpu", "sched_prio",
];

/// util-vserver flags with no stock-kernel mechanism.
const UNSUPPORTED_FLAGS: &[&str] = &[
    "virt_mem", "sched_pause", "igneg_nice", "fork_rss", "prolific", "single_cpu", "kthread",
    "sched_hard_cpu", "idle_time",
];

/// What one flag name means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMeaning {
    Flag(ContextFlag),
    AlwaysOn,
}

pub fn parse_flag(name: &str) -> Result<FlagMeaning, String> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("vxf_").unwrap_or(&lower);
    let flag = match lower {
        "virt_uptime" => ContextFlag::VirtUptime,
        "hide_netif" => ContextFlag::HideNetif,
        "io_uring" | "allow_io_uring" => ContextFlag::IoUring,
        "sched_hard" => ContextFlag::SchedHard,
        other if ALWAYS_ON_FLAGS.contains(&other) => return Ok(FlagMeaning::AlwaysOn),
        other if UNSUPPORTED_FLAGS.contains(&other) => {
            return Err("is a Linux-VServer context flag with no stock-kernel equivalent; remove it".into())
        }
        _ => return Err("is not a context flag name (see README, \"cflags\")".into()),
    };
    Ok(FlagMeaning::Flag(flag))
}

/// Context capabilities that map onto a mainline mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContextCap {
    /// ping through ICMP sockets (net.ipv4.ping_group_range), not raw sockets.
    RawIcmp,
    /// File leases (`fcntl(F_SETLEASE)`), which the seccomp filter refuses otherwise.
    SetLease,
}

const UNSUPPORTED_CCAPS: &[&str] = &[
    "set_utsname", "syslog", "secure_mount", "secure_remount", "binary_mount", "quota_ctl",
    "admin_mapper", "admin_cloop", "kthread", "net_admin", "tiocsti",
];

pub fn parse_ccap(name: &str) -> Result<ContextCap, String> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("vxc_").unwrap_or(&lower);
    match lower {
        "raw_icmp" => Ok(ContextCap::RawIcmp),
        "set_lease" => Ok(ContextCap::SetLease),
        "set_rlimit" => Err(
            "would need CAP_SYS_RESOURCE on a stock kernel; a guest may always raise a soft limit up to its hard limit; remove it"
                .into(),
        ),
        other if UNSUPPORTED_CCAPS.contains(&other) => Err(
            "is a Linux-VServer context capability that a stock kernel cannot grant without CAP_SYS_ADMIN; remove it"
                .into(),
        ),
        _ => Err("is not a context capability name (see README, \"ccapabilities\")".into()),
    }
}

/// Namespaces a guest may ask for on top of mount, pid, uts and ipc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExtraNamespace {
    Net,
    User,
    Time,
    Cgroup,
}

impl ExtraNamespace {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "net" | "network" => Ok(Self::Net),
            "user" => Ok(Self::User),
            "time" => Ok(Self::Time),
            "cgroup" => Ok(Self::Cgroup),
            "mnt" | "mount" | "pid" | "uts" | "ipc" => Err("is always a namespace of its own; remove the line".into()),
            _ => Err("is not a namespace (use net, user, time or cgroup)".into()),
        }
    }
}

impl fmt::Display for ExtraNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Net => "net",
            Self::User => "user",
            Self::Time => "time",
            Self::Cgroup => "cgroup",
        })
    }
}

/// The execution domain: `linux32` makes `uname -m` report i686.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    Linux,
    Linux32,
}

impl Personality {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "linux" | "per_linux" | "default" => Ok(Self::Linux),
            "linux32" | "linux_32bit" | "per_linux32" | "i386" | "i686" => Ok(Self::Linux32),
            _ => Err("is not a supported personality (use linux or linux32)".into()),
        }
    }

    pub fn raw(self) -> libc::c_ulong {
        match self {
            Self::Linux => 0x0000,
            Self::Linux32 => 0x0008,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_known_supported_always_on_or_refused() {
        assert_eq!(parse_flag("VIRT_UPTIME"), Ok(FlagMeaning::Flag(ContextFlag::VirtUptime)));
        assert_eq!(parse_flag("namespace"), Ok(FlagMeaning::AlwaysOn));
        assert!(parse_flag("virt_mem").unwrap_err().contains("no stock-kernel"));
        assert!(parse_flag("fly").unwrap_err().contains("not a context flag"));
    }

    #[test]
    fn ccaps_and_namespaces() {
        assert_eq!(parse_ccap("RAW_ICMP"), Ok(ContextCap::RawIcmp));
        assert!(parse_ccap("SECURE_MOUNT").is_err());
        assert!(parse_ccap("nope").unwrap_err().contains("not a context capability"));
        assert_eq!(ExtraNamespace::parse("net"), Ok(ExtraNamespace::Net));
        assert!(ExtraNamespace::parse("pid").is_err());
        assert_eq!(Personality::parse("LINUX32"), Ok(Personality::Linux32));
    }
}
