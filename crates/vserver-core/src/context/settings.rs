//! The guest's own kernel settings and the process attributes all its
//! processes inherit, applied by its first process: `sysctl/` (written from
//! inside its uts, ipc and network namespaces), `nice`, `ionice/` and
//! `badness` (oom_score_adj).

use crate::context::error::{Result, StepResult};

use crate::config::{Guest, ProcessSettings};
use crate::sys;

/// Called by the guest's first process once it is in its namespaces and
/// cgroup, while it still sees the host's /proc (whose sysctl files resolve
/// in the writer's namespaces) and before it drops its capabilities (a
/// lower nice value, a realtime I/O class and a negative OOM bias need
/// them).
pub fn apply_in_guest(guest: &Guest) -> Result<()> {
    crate::config::sysctl::apply_in_own_namespaces(&guest.sysctls)?;
    apply_process_settings(&guest.process).with_step(|| format!("guest {:?}", guest.name))
}

/// nice, I/O priority and OOM bias of the calling process; its children
/// inherit them.
pub fn apply_process_settings(p: &ProcessSettings) -> Result<()> {
    if let Some(nice) = p.nice {
        sys::resource::set_nice(nice).with_step(|| format!("setting nice level {nice} (nice)"))?;
    }
    if let Some(io) = p.ionice.filter(|io| io.class != 0) {
        sys::resource::set_own_ioprio(io.raw())
            .with_step(|| format!("setting the I/O class {} and priority {} (ionice/)", io.class, io.level))?;
    }
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).with_step(|| format!("setting oom_score_adj {adj} (badness)"))?;
    }
    Ok(())
}

/// The nice level, I/O priority and OOM score of a running process (the
/// guest's pid 1), for a joiner to take over: every guest process runs with
/// what the guest's configuration gave its first process.
pub fn of_process(pid: i32) -> Result<ProcessSettings> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_step(|| format!("reading /proc/{pid}/stat"))?;
    // Field 19 (nice), counted after the command name's closing parenthesis.
    let nice = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(16)).and_then(|n| n.parse::<i32>().ok());
    let raw = sys::resource::ioprio_of(pid).unwrap_or(-1);
    let ionice = (raw > 0).then_some(crate::config::IoPriority { class: ((raw >> 13) & 0x7) as u8, level: (raw & 0xff) as u8 });
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .with_step(|| format!("reading /proc/{pid}/oom_score_adj"))?
        .trim()
        .parse::<i32>()
        .ok();
    Ok(ProcessSettings { nice, ionice, oom_score_adj: adj })
}
