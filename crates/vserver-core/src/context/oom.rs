//! The OOM score of guest processes. Host daemons run at oom_score_adj 0;
//! every guest process runs at GUEST_OOM_SCORE_ADJ, so when the host runs
//! out of memory the kernel's OOM killer takes guest processes first (a
//! guest process using 1% of memory scores above a host daemon using 50%).
//! Within a guest's own memory limit the monitor (at 0) outlives them too.

use crate::context::error::{Result, StepResult};

/// oom_score_adj of every guest process: pid 1 (set by the monitor before
/// it runs, inherited by all its descendants) and every joiner.
pub const GUEST_OOM_SCORE_ADJ: i32 = 500;

/// Sets the score of `pid` (0: the calling process). Must be written by a
/// process holding CAP_SYS_RESOURCE (the monitor, or a joiner before it
/// drops its capabilities): the kernel then also makes the value the floor
/// (oom_score_adj_min), which guest root, without that capability, can
/// raise but never go below.
pub fn set_guest_score(pid: i32) -> Result<()> {
    let path = if pid == 0 { "/proc/self/oom_score_adj".to_string() } else { format!("/proc/{pid}/oom_score_adj") };
    std::fs::write(&path, GUEST_OOM_SCORE_ADJ.to_string()).with_step(|| format!("writing {path}"))
}
