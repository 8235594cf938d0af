//! The guest's own kernel settings and the process attributes all its
//! processes inherit, applied by its first process: `sysctl/` (written from
//! inside its uts, ipc and network namespaces), `nice`, `ionice/` and
//! `badness` (oom_score_adj).

use anyhow::{Context, Result};

use crate::config::{Guest, ProcessSettings};

/// Called by the guest's first process once it is in its namespaces and
/// cgroup, while it still sees the host's /proc (whose sysctl files resolve
/// in the writer's namespaces) and before it drops its capabilities (a
/// lower nice value, a realtime I/O class and a negative OOM bias need
/// them).
pub fn apply_in_guest(guest: &Guest) -> Result<()> {
    crate::config::sysctl::apply_in_own_namespaces(&guest.sysctls)?;
    apply_process_settings(&guest.process).with_context(|| format!("guest {:?}", guest.name))
}

/// nice, I/O priority and OOM bias of the calling process; its children
/// inherit them.
pub fn apply_process_settings(p: &ProcessSettings) -> Result<()> {
    if let Some(nice) = p.nice {
        // SAFETY: setpriority(2) with plain integers.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("setting nice level {nice} (nice)"));
        }
    }
    if let Some(io) = p.ionice.filter(|io| io.class != 0) {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set(2) with plain integers.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, io.raw() as libc::c_long) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("setting the I/O class {} and priority {} (ionice/)", io.class, io.level));
        }
    }
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).with_context(|| format!("setting oom_score_adj {adj} (badness)"))?;
    }
    Ok(())
}
