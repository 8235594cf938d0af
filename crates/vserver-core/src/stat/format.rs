//! util-vserver's `vserver-stat` table, column for column:
//!
//! ```text
//! CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME
//! 0       77 965.1M 334.6M  14m14s18   2m28s69   1h33m46 root server
//! ```
//!
//! The xid starts at column 0, the process count ends at column 10, memory
//! fields are 7 wide and times 10 wide (right-aligned), the name starts at
//! column 55. Like the C original the row is laid out in a fixed buffer, so
//! an overlong value overwrites its neighbour instead of shifting the row.

use super::ContextRow;
pub use crate::columns::{short_mem, short_time, Line};

pub const HEADER: &str = "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME";
const NAME_MAX: usize = 20;

pub fn table(rows: &[ContextRow]) -> String {
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    for row in rows {
        out.push_str(&row_line(row));
        out.push('\n');
    }
    out
}

pub fn row_line(row: &ContextRow) -> String {
    let mut line = Line::new();
    line.put(0, &row.xid.to_string());
    line.put_right(10, &row.processes.to_string());
    line.put_right(17, &short_mem(row.vsz_bytes));
    line.put_right(24, &short_mem(row.rss_bytes));
    line.put_right(34, &short_time(row.cpu_user_us / 1000));
    line.put_right(44, &short_time(row.cpu_system_us / 1000));
    line.put_right(54, &short_time(row.uptime_ms));
    let name: String = row.name.chars().take(NAME_MAX).collect();
    line.put(55, &name);
    line.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn row(xid: u32, processes: u64, vsz: u64, rss: u64, user: u64, sys: u64, up: u64, name: &str) -> ContextRow {
        ContextRow {
            xid,
            name: name.into(),
            processes,
            vsz_bytes: vsz,
            rss_bytes: rss,
            cpu_user_us: user * 1000,
            cpu_system_us: sys * 1000,
            uptime_ms: up,
            limits: None,
            disk: Vec::new(),
        }
    }

    #[test]
    fn the_faq_example_comes_out_column_for_column() {
        // The FAQ's figures: 965.1M, 334.6M, 14m14s18, 2m28s69, 1h33m46 and 14M, 5.2M, ...
        let m = |whole: u64, tenth: u64| (whole << 20) + (tenth << 20) / 10 + 1024;
        let rows = [
            row(0, 77, m(965, 1), m(334, 6), 854_180, 148_690, 5_626_000, "root server"),
            row(49152, 7, 14 << 20, m(5, 2), 400, 300, 5_415_000, "chiffon"),
        ];
        assert_eq!(
            table(&rows),
            "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME\n\
             0       77 965.1M 334.6M  14m14s18   2m28s69   1h33m46 root server\n\
             49152    7    14M   5.2M   0m00s40   0m00s30   1h30m15 chiffon\n"
        );
    }

    #[test]
    fn long_names_are_cut_and_wide_counts_overwrite_like_the_original() {
        let line = row_line(&row(12345, 123456, 0, 0, 0, 0, 0, "a-very-long-guest-name-indeed"));
        assert_eq!(line, "1234123456     0      0    0m00s00   0m00s00   0m00s00 a-very-long-guest-na");
    }
}
