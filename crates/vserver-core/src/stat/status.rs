//! `vserver NAME status`: the vserver-stat row of one guest and its limits.

use anyhow::bail;

use super::{collect_guest, format, Detail};
use crate::limits::show::stats_table;
use crate::paths::Paths;
use crate::runstate::{self, Status};

/// The lines `vserver NAME status` prints for a running guest: the
/// vserver-stat header and row, then usage, limits, maxima and hits. A guest
/// that is not running is an error saying so.
pub fn guest_status_lines(paths: &Paths, name: &str) -> anyhow::Result<String> {
    let state = match runstate::status(paths, name)? {
        Status::Running(s) => s,
        Status::Stopped => bail!("guest {name:?} is not running"),
        Status::Stale(_) => bail!("guest {name:?} is not running (its run state in {} is stale)", paths.guest_rundir(name).display()),
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
