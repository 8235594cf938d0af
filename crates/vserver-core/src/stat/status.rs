//! `vserver NAME status`: the vserver-stat row of one guest and its limits.

use super::{collect_guest, format, Detail, StatError};
use crate::limits::show::stats_table;
use crate::paths::Paths;
use crate::runstate::{self, Status};

/// The lines `vserver NAME status` prints for a running guest: the
/// vserver-stat header and row, then usage, limits, maxima and hits. A guest
/// that is not running is an error saying so.
pub fn guest_status_lines(paths: &Paths, name: &str) -> Result<String, StatError> {
    let guest = name.to_string();
    let state = match runstate::status(paths, name).map_err(StatError::Sys)? {
        Status::Running(s) => s,
        Status::Stopped => return Err(StatError::NotRunning { guest }),
        Status::Stale(_) => return Err(StatError::Stale { guest, rundir: paths.guest_rundir(name) }),
    };
    let row = collect_guest(paths, &state, Detail::WithLimits)?;
    let mut out = format!("{}\n{}\n", format::HEADER, format::row_line(&row));
    if let Some(stats) = &row.limits {
        out.push('\n');
        out.push_str(&stats_table(stats));
    }
    out.push_str(&crate::dlimit::stats_lines(&row.disk));
    Ok(out)
}
