//! Kernel features newer than the 5.6 baseline that parts of vserver-rs use
//! when they are there: Landlock's abstract unix socket scope (6.12) and
//! clone3 with CLONE_INTO_CGROUP (5.7). Each is probed for real on the live
//! host; a described host is judged by its kallsyms.

use std::os::fd::AsFd;

use super::kallsyms::{Evidence, Symbols};
use super::{Check, Host, Status};
use crate::sys::clone3::{fork_with_pidfd, Forked};
use crate::sys::process;

const LANDLOCK_NEEDED_FOR: &str = "keeping guests out of the host's and each other's abstract unix sockets \
                                   (Landlock ABI 6, Linux 6.12)";
const CLONE3_NEEDED_FOR: &str = "new guest processes born in the guest's cgroup (clone3 CLONE_INTO_CGROUP, \
                                 Linux 5.7); without it they are moved there right after fork";

/// Landlock ABI version that added LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET.
const ABSTRACT_UNIX_ABI: u32 = 6;

pub fn landlock_scope(host: &Host, symbols: Option<&Symbols>) -> Check {
    let make = |status, detail: String| Check::new("landlock.abstract_unix", status, detail, LANDLOCK_NEEDED_FOR, false);
    if !host.live {
        return match symbols.map(|s| s.syscall("landlock_create_ruleset")) {
            Some(Evidence::Present) => make(Status::Limited, "the kernel has Landlock; its ABI cannot be read from a fixture".into()),
            Some(Evidence::Absent) => make(Status::Missing, "the kernel has no Landlock".into()),
            _ => make(Status::Limited, "cannot tell from a described host".into()),
        };
    }
    match crate::sys::landlock::abi_version() {
        Ok(v) if v >= ABSTRACT_UNIX_ABI => make(Status::Ok, format!("Landlock ABI {v}")),
        Ok(v) => make(Status::Missing, format!("Landlock ABI {v}: abstract unix scoping needs ABI {ABSTRACT_UNIX_ABI} (Linux 6.12)")),
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) => "Landlock is built in but not enabled (add landlock to the lsm= boot parameter)".to_string(),
                _ => format!("no Landlock: {e}"),
            };
            make(Status::Missing, why)
        }
    }
}

pub fn clone_into_cgroup(host: &Host, v2_mount: Option<&std::path::Path>, symbols: Option<&Symbols>) -> Check {
    let make = |status, detail: String| Check::new("clone3.into_cgroup", status, detail, CLONE3_NEEDED_FOR, false);
    let Some(v2) = v2_mount else {
        return make(Status::Missing, "no cgroup2 mount: CLONE_INTO_CGROUP takes a cgroup2 directory".into());
    };
    if !host.live {
        return match symbols.map(|s| s.function("cgroup_can_fork")) {
            Some(Evidence::Present) => make(Status::Limited, "the kernel has clone3; its flags cannot be probed from a fixture".into()),
            _ => make(Status::Limited, "cannot tell from a described host".into()),
        };
    }
    match probe_clone3(v2) {
        Ok(()) => make(Status::Ok, format!("a child was born in this process's cgroup under {}", v2.display())),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => make(Status::Missing, "no clone3 (Linux 5.3)".into()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => make(Status::Missing, "clone3 refuses CLONE_INTO_CGROUP (Linux 5.7)".into()),
        Err(e) => make(Status::Limited, format!("the probe failed: {e}")),
    }
}

/// clone3 with CLONE_INTO_CGROUP into this process's own cgroup2 directory;
/// the child exits at once.
fn probe_clone3(v2: &std::path::Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
    let dir = std::fs::File::open(v2.join(rel.trim_start_matches('/')))?;
    match fork_with_pidfd(Some(dir.as_fd()), libc::SIGCHLD)? {
        Forked::Child => process::exit_now(0),
        Forked::Parent { pid, .. } => {
            process::wait_pid(pid, 0)?;
            Ok(())
        }
    }
}
