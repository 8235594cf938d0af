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

pub const HEADER: &str = "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME";
const NAME_MAX: usize = 20;

/// A line of fixed columns.
pub struct Line(Vec<u8>);

impl Line {
    pub fn new() -> Line {
        Line(Vec::new())
    }

    /// Writes `text` starting at column `at`.
    pub fn put(&mut self, at: usize, text: &str) {
        if self.0.len() < at + text.len() {
            self.0.resize(at + text.len(), b' ');
        }
        self.0[at..at + text.len()].copy_from_slice(text.as_bytes());
    }

    /// Writes `text` so that it ends just before column `end`.
    pub fn put_right(&mut self, end: usize, text: &str) {
        self.put(end.saturating_sub(text.len()), &text[text.len().saturating_sub(end)..]);
    }

    pub fn into_string(self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

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

/// Bytes with a binary suffix and one decimal when it is not .0: `965.1M`,
/// `14M`; below 1000 bytes the suffix is a blank (`999 `). The decimal is
/// the remainder of the last division by 1024, truncated, as util-vserver does.
pub fn short_mem(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = [" ", "K", "M", "G", "T", "+"];
    let mut val = bytes;
    let mut tenth = 0;
    let mut suffix = "+";
    for s in SUFFIXES {
        if val < 1000 {
            suffix = s;
            break;
        }
        tenth = 10 * (val & 1023) / 1024;
        val >>= 10;
    }
    let val = val.min(9999);
    if val >= 1000 || tenth == 0 {
        format!("{val}{suffix}")
    } else {
        format!("{val}.{tenth}{suffix}")
    }
}

/// A duration in milliseconds the way vserver-stat prints CPU times and
/// uptimes: `14m14s18` (minutes, seconds, hundredths) under an hour,
/// `1h33m46` under a day, `3d04h12` under 1000 days, then `2y270d04`.
pub fn short_time(ms: u64) -> String {
    let hundredths = ms % 1000 / 10;
    let t = ms / 1000;
    let (ss, t) = (t % 60, t / 60);
    let (mm, t) = (t % 60, t / 60);
    let (hh, days) = (t % 24, t / 24);
    if days > 999 * 999 {
        "INVALID".into()
    } else if days > 999 {
        format!("{}y{:02}d{hh:02}", days / 365, days % 365)
    } else if days > 0 {
        format!("{days}d{hh:02}h{mm:02}")
    } else if hh > 0 {
        format!("{hh}h{mm:02}m{ss:02}")
    } else {
        format!("{mm}m{ss:02}s{hundredths:02}")
    }
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
    fn memory_suffixes() {
        assert_eq!(short_mem(0), "0 ");
        assert_eq!(short_mem(999), "999 ");
        assert_eq!(short_mem(1000), "0.9K");
        assert_eq!(short_mem(1024), "1K");
        assert_eq!(short_mem(1536), "1.5K");
        assert_eq!(short_mem(64 << 20), "64M");
        assert_eq!(short_mem((3 << 30) + (1 << 29)), "3.5G");
        // Past the T suffix the C original keeps shifting once more: 16 EiB is "15.9+".
        assert_eq!(short_mem(u64::MAX), "15.9+");
    }

    #[test]
    fn time_formats() {
        assert_eq!(short_time(0), "0m00s00");
        assert_eq!(short_time(854_180), "14m14s18");
        assert_eq!(short_time(50), "0m00s05");
        assert_eq!(short_time(3_600_000), "1h00m00");
        assert_eq!(short_time(5_626_000), "1h33m46");
        assert_eq!(short_time((3 * 86_400 + 4 * 3600 + 12 * 60) * 1000), "3d04h12");
        assert_eq!(short_time(1000 * 86_400 * 1000), "2y270d00");
    }

    #[test]
    fn long_names_are_cut_and_wide_counts_overwrite_like_the_original() {
        let line = row_line(&row(12345, 123456, 0, 0, 0, 0, 0, "a-very-long-guest-name-indeed"));
        assert_eq!(line, "1234123456     0      0    0m00s00   0m00s00   0m00s00 a-very-long-guest-na");
    }
}
