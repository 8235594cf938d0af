//! Fixed-column text the way util-vserver's tools print it: a line laid out
//! in a buffer (an overlong value overwrites its neighbour, as in the C
//! originals), memory sizes with binary suffixes and CPU times and uptimes
//! in vserver-stat's short forms. Used by `vserver-stat` and `vlimit`.

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
}
