//! Namespaces: the kernel has one when `<proc>/self/ns/<name>` exists; the
//! `max_<name>_namespaces` sysctl can still switch it off; on the live host
//! a child process really unshares it.

use nix::sched::CloneFlags;

use super::{Check, Host, Status};
use crate::sys::process;

struct Namespace {
    /// Report name and `/proc/self/ns` entry.
    name: &'static str,
    ns_file: &'static str,
    flag: CloneFlags,
    required: bool,
    needed_for: &'static str,
}

/// CLONE_NEWTIME is newer than nix's CloneFlags.
const CLONE_NEWTIME: libc::c_int = 0x80;

fn namespaces() -> [Namespace; 8] {
    let ns = |name, ns_file, flag, required, needed_for| Namespace { name, ns_file, flag, required, needed_for };
    [
        ns("pid", "pid", CloneFlags::CLONE_NEWPID, true, "every guest: its own process tree, its init as pid 1"),
        ns("mount", "mnt", CloneFlags::CLONE_NEWNS, true, "every guest: its own root (pivot_root), /dev and /proc"),
        ns("uts", "uts", CloneFlags::CLONE_NEWUTS, true, "every guest: its own hostname and domainname (uts/)"),
        ns("ipc", "ipc", CloneFlags::CLONE_NEWIPC, true, "every guest: its own System V IPC and message queues"),
        ns("net", "net", CloneFlags::CLONE_NEWNET, false, "guests with `net` in their namespaces file"),
        ns("user", "user", CloneFlags::CLONE_NEWUSER, false, "guests with `user` in their namespaces file"),
        ns("time", "time", CloneFlags::from_bits_retain(CLONE_NEWTIME), false, "cflags VIRT_UPTIME (the guest's uptime starts near 0)"),
        ns("cgroup", "cgroup", CloneFlags::CLONE_NEWCGROUP, false, "guests with `cgroup` in their namespaces file"),
    ]
}

pub fn checks(host: &Host) -> Vec<Check> {
    namespaces().iter().map(|ns| check(host, ns)).collect()
}

fn check(host: &Host, ns: &Namespace) -> Check {
    let id = format!("namespace.{}", ns.name);
    let entry = host.proc(&format!("self/ns/{}", ns.ns_file));
    let make = |status, detail: String| Check::new(id.clone(), status, detail, ns.needed_for, ns.required);
    if std::fs::symlink_metadata(&entry).is_err() {
        return make(Status::Missing, format!("{} does not exist: the kernel has no {} namespaces", entry.display(), ns.name));
    }
    let limit = host.proc(&format!("sys/user/max_{}_namespaces", ns.ns_file));
    if std::fs::read_to_string(&limit).is_ok_and(|v| v.trim() == "0") {
        return make(Status::Limited, format!("switched off: {} is 0", limit.display()));
    }
    if !host.live {
        return make(Status::Ok, format!("{} exists", entry.display()));
    }
    match unshare_in_child(ns.flag) {
        Ok(()) => make(Status::Ok, "a child process unshared one".into()),
        Err(errno) if errno == nix::errno::Errno::EPERM => {
            make(Status::Limited, format!("the kernel has them, but unshare was refused here ({errno}); run as root"))
        }
        Err(errno) => make(Status::Missing, format!("{} exists, but unshare failed: {errno}", entry.display())),
    }
}

/// Unshares `flag` in a forked child, so this process keeps its namespaces.
fn unshare_in_child(flag: CloneFlags) -> Result<(), nix::errno::Errno> {
    // The child only calls unshare(2) and exits (sys::process's contract).
    let pid = process::fork_child(|| match nix::sched::unshare(flag) {
        Ok(()) => 0,
        Err(e) => e as i32,
    })
    .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    match process::wait_pid(pid, 0) {
        Ok(Some(status)) if libc::WIFEXITED(status) => match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            errno => Err(nix::errno::Errno::from_raw(errno)),
        },
        _ => Err(nix::errno::Errno::ECHILD),
    }
}
