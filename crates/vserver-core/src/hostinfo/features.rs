//! `vserver-info - FEATURE NAME`: util-vserver's feature names, answered
//! from this host's report. Exit 0 means the feature is there. Names are
//! case-insensitive as in util-vserver; an unknown name is false.

use super::{Report, Status};

/// (util-vserver's name, the check that decides it, what it means here).
/// A check of `None` is decided by the name alone.
pub const FEATURES: &[(&str, Option<&str>, &str)] = &[
    ("VKILL", Some("pidfd"), "signals to a context's processes (vkill)"),
    ("IATTR", Some("fs.immutable.vdirbase"), "immutable inode attributes (vhashify)"),
    ("RLIMIT", Some("kernel"), "context resource limits (vlimit)"),
    ("COMPAT", None, "the old Linux-VServer kernel API: never, this is a stock kernel"),
    ("MIGRATE", Some("pidfd"), "entering a running context (vserver NAME exec/enter)"),
    ("NAMESPACE", Some("namespace.mount"), "a mount namespace per guest"),
    ("SCHED", Some("cgroup.controller.cpu"), "the cpu token bucket (sched/)"),
    ("VINFO", Some("pidfd"), "context information (init pid, run state)"),
    ("VHI", Some("namespace.uts"), "virtual host information (vuname)"),
    ("VSHELPER0", Some("namespace.pid"), "reboot and halt from inside handled by the host"),
    ("VSHELPER", Some("namespace.pid"), "reboot and halt from inside handled by the host"),
    ("VWAIT", Some("pidfd"), "waiting for a context to end (vwait)"),
    ("VNET", Some("cgroup.bpf"), "network contexts: a guest's IP set (chbind)"),
    ("VSTAT", Some("kernel"), "context accounting (vserver-stat)"),
    ("PPTAG", Some("dlimits.vdirbase"), "files tagged with their context (project ids)"),
    ("PIDSPACE", Some("namespace.pid"), "a pid namespace per guest"),
    ("SPACES", Some("namespace.mount"), "namespaces per guest"),
    ("PERSISTENT", None, "contexts without processes: never, a context ends with its last process"),
    ("PIVOT_ROOT", Some("kernel"), "pivot_root into the guest root"),
    ("MEMCG", Some("cgroup.controller.memory"), "the memory controller (rss limits)"),
    ("DYNAMIC", None, "dynamic context ids (49152 and above): never, xids are 2-49151"),
    ("BME", Some("kernel"), "bind mount extensions (read-only bind mounts)"),
    // Features of this implementation, under names in the same style.
    ("DLIMIT", Some("dlimits.vdirbase"), "disk limits (dlimits/) under the guest base"),
    ("LANDLOCK_SCOPE", Some("landlock.abstract_unix"), "guests kept out of other abstract unix sockets"),
    ("CLONE_INTO_CGROUP", Some("clone3.into_cgroup"), "processes born in the guest's cgroup"),
];

/// Is `name` available according to `report`?
pub fn supported(report: &Report, name: &str) -> bool {
    let Some((_, check, _)) = FEATURES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(name)) else { return false };
    let Some(id) = check else { return false };
    report.checks.iter().any(|c| c.id == *id && c.status == Status::Ok)
}
