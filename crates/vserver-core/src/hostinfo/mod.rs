//! What this host offers vserver-rs and what each feature needs: the report
//! of `vserver-info` (util-vserver's tool of that name, in the spirit of
//! `lxc-checkconfig`).
//!
//! Kernel facts are read from a proc root and the cgroup mounts from a cgroup
//! root, so a test can describe another host with fixture trees. On the live
//! host (proc root `/proc`) the kernel is also asked: BPF programs are
//! loaded, namespaces unshared in a child, pidfd_open and openat2 called.
//! Described from a fixture, those answers come from the fixture's
//! `kallsyms` instead, since this kernel's answers say nothing about another
//! host. Filesystem probes (inode flags, reflink, RENAME_EXCHANGE) always
//! run on the real guest base and hash store.

mod bpf;
mod cgroups;
mod dlimits;
pub mod features;
mod fs_probe;
mod fsops;
mod kallsyms;
mod kernel;
mod namespaces;
mod newer;
pub mod query;
mod syscalls;
pub(crate) mod tools;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::paths::{Paths, ENV_CGROUP_ROOT};

pub use cgroups::CgroupSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Limited,
    Missing,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Limited => "limited",
            Status::Missing => "missing",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name, e.g. `namespace.pid`, `cgroup.bpf`, `fs.reflink.vdirbase`.
    pub id: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What uses the feature: what stops working without it.
    pub needed_for: String,
    /// Whether the default configuration needs it (a missing one fails the check).
    pub required: bool,
}

impl Check {
    fn new(id: impl Into<String>, status: Status, detail: impl Into<String>, needed_for: &str, required: bool) -> Check {
        Check { id: id.into(), status, detail: detail.into(), needed_for: needed_for.to_string(), required }
    }
}

/// The host being described.
#[derive(Debug, Clone)]
pub struct Host {
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    pub vdirbase: PathBuf,
    pub hash_store: PathBuf,
    /// The proc root is this machine's `/proc`: the kernel may be asked.
    pub live: bool,
}

impl Host {
    /// `proc_root`/`sys_root` override `/proc` and `/sys`; the cgroup root is
    /// `$VSERVER_CGROUP_ROOT` if set, else `<sys_root>/fs/cgroup`.
    pub fn new(paths: &Paths, proc_root: Option<PathBuf>, sys_root: Option<PathBuf>) -> Host {
        let cgroup_root = match (&sys_root, std::env::var_os(ENV_CGROUP_ROOT).filter(|v| !v.is_empty())) {
            (Some(sys), None) => sys.join("fs/cgroup"),
            _ => paths.cgroup_root.clone(),
        };
        let proc_root = proc_root.unwrap_or_else(|| "/proc".into());
        Host {
            live: proc_root == Path::new("/proc"),
            proc_root,
            cgroup_root,
            vdirbase: paths.vdirbase.clone(),
            hash_store: crate::unify::config::default_store(paths),
        }
    }

    fn proc(&self, rel: &str) -> PathBuf {
        self.proc_root.join(rel)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    /// False when the report describes fixture trees rather than this kernel.
    pub live: bool,
    pub cgroup: CgroupSummary,
    pub checks: Vec<Check>,
    /// Ids of the missing checks the default configuration needs (empty:
    /// guests with the default configuration can run here).
    pub missing_required: Vec<String>,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Runs every probe, in the order of the report.
pub fn probe(host: &Host) -> Report {
    let symbols = if host.live { None } else { Some(kallsyms::Symbols::read(&host.proc("kallsyms"))) };
    let (kernel, kernel_check) = kernel::version(host);
    let mut checks = vec![kernel_check];
    checks.extend(namespaces::checks(host));
    let (cgroup, cgroup_checks) = cgroups::checks(host);
    checks.extend(cgroup_checks);
    checks.push(bpf::check(&cgroup, symbols.as_ref()));
    checks.push(syscalls::seccomp(host));
    checks.push(syscalls::pidfd(symbols.as_ref()));
    checks.push(syscalls::openat2(symbols.as_ref()));
    checks.push(newer::landlock_scope(host, symbols.as_ref()));
    checks.push(newer::clone_into_cgroup(host, cgroup.v2_mount.as_deref(), symbols.as_ref()));
    checks.extend(fs_probe::checks(host));
    checks.extend(dlimits::checks(host));
    checks.extend(tools::checks());
    let missing_required = checks.iter().filter(|c| c.required && c.status == Status::Missing).map(|c| c.id.clone()).collect();
    Report { kernel, live: host.live, cgroup, checks, missing_required }
}

/// The report for people: one line per check, what stops working under each
/// line that is not ok, and a summary.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let source = if report.live { "this host" } else { "the described host (fixture trees, no kernel probes)" };
    out.push_str(&format!("vserver-info: {source}, kernel {}\n", report.kernel));
    for c in &report.checks {
        out.push_str(&format!("{:<8} {:<28} {}\n", c.status.word(), c.id, c.detail));
        if c.status != Status::Ok {
            let need = if c.required { "needed by the default configuration" } else { "optional" };
            out.push_str(&format!("{:<8} {:<28} without it: {} ({need})\n", "", "", c.needed_for));
        }
    }
    let missing = &report.missing_required;
    out.push_str(&format!(
        "summary: {} ok, {} limited, {} missing",
        report.count(Status::Ok),
        report.count(Status::Limited),
        report.count(Status::Missing)
    ));
    let unconfirmed: Vec<&str> =
        report.checks.iter().filter(|c| c.required && c.status == Status::Limited).map(|c| c.id.as_str()).collect();
    if !missing.is_empty() {
        out.push_str(&format!("; the default configuration cannot run here: {} missing\n", missing.join(", ")));
    } else if !unconfirmed.is_empty() {
        out.push_str(&format!("; not confirmed for the default configuration: {}\n", unconfirmed.join(", ")));
    } else {
        out.push_str("; the default configuration can run here\n");
    }
    out
}

#[cfg(test)]
mod tests;
