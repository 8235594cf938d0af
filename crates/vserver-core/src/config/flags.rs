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
    /// Share the host's abstract unix sockets (no Landlock scoping; accepted
    /// on kernels without it), see `net::abstract_unix`.
    SharedAbstractUnix,
}

/// util-vserver flags that are always true here (pid namespace, private mount
/// namespace, fake init, ...), accepted so existing configs keep working.
const ALWAYS_ON_FLAGS: &[&str] = &[
    "namespace",
    "private",
    "fakeinit",
    "hideinfo",
    "hide_mount",
    "hide_vinfo",
    "state_setup",
    "state_init",
    "state_admin",
    "sc_helper",
    "persistent",
    "lock",
    "nproc",
    "ulimit",
    "info_init",
    "info_hide",
    "info_ulimit",
    "info_namespace",
    "info_nspace",
    "info_lock",
    "info_nproc",
    "info_private",
    "info_hideinfo",
    "sched_prio",
];

/// util-vserver flags with no stock-kernel mechanism. `virt_load` and
/// `virt_cpu` virtualised /proc/loadavg and /proc/stat, which a guest here
/// sees as the host's.
const UNSUPPORTED_FLAGS: &[&str] = &[
    "virt_mem",
    "virt_load",
    "virt_cpu",
    "virt_time",
    "sched_pause",
    "igneg_nice",
    "igneg_ionice",
    "fork_rss",
    "prolific",
    "single_cpu",
    "kthread",
    "sched_hard_cpu",
    "idle_time",
    "reboot_kill",
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
        // `default` is util-vserver's VIRT_UPTIME|SC_HELPER, `secure` its HIDE_NETIF.
        "virt_uptime" | "default" => ContextFlag::VirtUptime,
        "hide_netif" | "secure" => ContextFlag::HideNetif,
        "io_uring" | "allow_io_uring" => ContextFlag::IoUring,
        "sched_hard" => ContextFlag::SchedHard,
        "shared_abstract_unix" => ContextFlag::SharedAbstractUnix,
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
    "set_utsname",
    "utsname",
    "syslog",
    "secure_mount",
    "mount",
    "secure_remount",
    "remount",
    "binary_mount",
    "dev_mount",
    "quota_ctl",
    "admin_mapper",
    "admin_cloop",
    "kthread",
    "net_admin",
    "tiocsti",
    "fs_security",
    "fs_trusted",
    "oom_adjust",
    "audit_control",
    "namespace",
];

pub fn parse_ccap(name: &str) -> Result<ContextCap, String> {
    let lower = name.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("vxc_").unwrap_or(&lower);
    match lower {
        "raw_icmp" | "icmp" | "ping" => Ok(ContextCap::RawIcmp),
        "set_lease" => Ok(ContextCap::SetLease),
        "set_rlimit" | "rlimit" => {
            Err("would need CAP_SYS_RESOURCE on a stock kernel; a guest may always raise a soft limit up to its hard limit; remove it"
                .into())
        }
        other if UNSUPPORTED_CCAPS.contains(&other) => {
            Err("is a Linux-VServer context capability that a stock kernel cannot grant without CAP_SYS_ADMIN; remove it".into())
        }
        _ => Err("is not a context capability name (see README, \"ccapabilities\")".into()),
    }
}

/// What one `nflags` name means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetFlag {
    /// A network namespace of its own.
    HideNetif,
    /// Hide `lo`: only meaningful (and only accepted) with HIDE_NETIF, where
    /// the guest's namespace has its own loopback device anyway.
    HideLback,
    /// Always so here (loopback remapping, state and info flags).
    AlwaysOn,
}

pub fn parse_nflag(name: &str) -> Result<NetFlag, String> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.strip_prefix("nxf_").unwrap_or(&lower) {
        "hide_netif" => Ok(NetFlag::HideNetif),
        "hide_lback" => Ok(NetFlag::HideLback),
        "lock" | "private" | "single_ip" | "lback_remap" | "remap_lback" | "lback_allow" | "state_setup" | "state_admin" | "sc_helper"
        | "persistent" | "info_lock" | "info_private" => Ok(NetFlag::AlwaysOn),
        _ => Err("is not a network flag name (see README, \"nflags\")".into()),
    }
}

/// `ncapabilities`: util-vserver's network capabilities.
pub fn parse_ncap(name: &str) -> Result<ContextCap, String> {
    let lower = name.trim().to_ascii_lowercase();
    match lower.strip_prefix("nxc_").unwrap_or(&lower) {
        "raw_icmp" => Ok(ContextCap::RawIcmp),
        "tun_create" => Err("would need CAP_NET_ADMIN on the host's network; give the guest a network namespace of its own instead".into()),
        _ => Err("is not a network capability name (RAW_ICMP or TUN_CREATE)".into()),
    }
}

/// `umask`: namespaces util-vserver let a guest unshare. A guest here never
/// may (unshare needs CAP_SYS_ADMIN, and the seccomp filter refuses it), so
/// only removals are accepted.
pub fn parse_umask_entry(name: &str, add: bool) -> Result<(), String> {
    let lower = name.trim().to_ascii_lowercase();
    let known = ["fs", "newns", "newuts", "newipc", "newuser", "newpid", "newnet"];
    if !known.contains(&lower.as_str()) {
        return Err(format!("is not a namespace name ({})", known.join(", ")));
    }
    if add {
        return Err("would let the guest unshare a namespace, which needs CAP_SYS_ADMIN and which the seccomp filter refuses; remove the line (or write ~NAME)".into());
    }
    Ok(())
}

/// Personality flags (`personality` lines after the first), as in
/// `<linux/personality.h>`. A guest process could set any of them on itself.
pub fn parse_personality_flag(name: &str) -> Result<libc::c_ulong, String> {
    let upper = name.trim().to_ascii_uppercase();
    Ok(match upper.as_str() {
        "UNAME26" => 0x0020000,
        "ADDR_NO_RANDOMIZE" => 0x0040000,
        "FDPIC_FUNCPTRS" => 0x0080000,
        "MMAP_PAGE_ZERO" => 0x0100000,
        "ADDR_COMPAT_LAYOUT" => 0x0200000,
        "READ_IMPLIES_EXEC" => 0x0400000,
        "ADDR_LIMIT_32BIT" => 0x0800000,
        "SHORT_INODE" => 0x1000000,
        "WHOLE_SECONDS" => 0x2000000,
        "STICKY_TIMEOUTS" => 0x4000000,
        "ADDR_LIMIT_3GB" => 0x8000000,
        _ => return Err("is not a personality flag (ADDR_NO_RANDOMIZE, UNAME26, READ_IMPLIES_EXEC, ...)".into()),
    })
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
        assert_eq!(parse_flag("secure"), Ok(FlagMeaning::Flag(ContextFlag::HideNetif)));
        assert_eq!(parse_flag("default"), Ok(FlagMeaning::Flag(ContextFlag::VirtUptime)));
        assert!(parse_flag("virt_load").unwrap_err().contains("no stock-kernel"));
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
        assert_eq!(parse_ccap("ping"), Ok(ContextCap::RawIcmp));
        assert_eq!(parse_nflag("HIDE_NETIF"), Ok(NetFlag::HideNetif));
        assert_eq!(parse_nflag("lback_remap"), Ok(NetFlag::AlwaysOn));
        assert!(parse_ncap("tun_create").unwrap_err().contains("CAP_NET_ADMIN"));
        assert!(parse_umask_entry("newnet", false).is_ok());
        assert!(parse_umask_entry("newnet", true).unwrap_err().contains("CAP_SYS_ADMIN"));
        assert_eq!(parse_personality_flag("addr_no_randomize"), Ok(0x40000));
    }
}
