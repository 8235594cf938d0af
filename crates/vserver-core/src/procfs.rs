//! The one file per process vserver-stat, vps and vtop read: `/proc/PID/stat`, plus
//! `/proc/uptime`. Nothing else per process, which is what keeps it quick
//! with thousands of processes.

use std::fs::{self, File};
use std::io::{self, Read};

/// The fields of /proc/PID/stat vserver-stat adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// Clock ticks (USER_HZ); the c- fields are reaped children's.
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
    /// Ticks after boot.
    pub start_time: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// Parses a stat line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after ')'; we want 14-17 and 22-24.
    let mut fields = rest.split_ascii_whitespace();
    let mut nth = |skip: usize| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    let utime = nth(14 - 3)?;
    let stime = nth(0)?;
    let cutime = nth(0)?;
    let cstime = nth(0)?;
    let start_time = nth(22 - 18)?;
    let vsize_bytes = nth(0)?;
    let rss_pages = nth(0)?;
    Some(ProcStat { utime, stime, cutime, cstime, start_time, vsize_bytes, rss_pages })
}

/// Reads one process's stat with a reused buffer; `None` when it has exited.
pub fn read_stat(pid: i32, buf: &mut String) -> Option<ProcStat> {
    buf.clear();
    let mut f = File::open(format!("/proc/{pid}/stat")).ok()?;
    f.read_to_string(buf).ok()?;
    parse_stat(buf)
}

/// Every process (thread-group leaders) the host sees.
pub fn all_pids() -> io::Result<Vec<i32>> {
    let mut out = Vec::with_capacity(1024);
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            out.push(pid);
        }
    }
    Ok(out)
}

/// Milliseconds since boot.
pub fn uptime_ms() -> io::Result<u64> {
    let text = fs::read_to_string("/proc/uptime")?;
    parse_uptime(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/uptime: unexpected {text:?}")))
}

fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let frac_ms: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
    Some(secs.parse::<u64>().ok()? * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_names() {
        let line = "4242 (we(ird) n) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 98765 14680064 1331 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat { utime: 150, stime: 50, cutime: 7, cstime: 3, start_time: 98765, vsize_bytes: 14680064, rss_pages: 1331 })
        );
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn own_stat_and_uptime() {
        let mut buf = String::new();
        let me = read_stat(std::process::id() as i32, &mut buf).unwrap();
        assert!(me.vsize_bytes > 0 && me.rss_pages > 0);
        assert!(all_pids().unwrap().contains(&(std::process::id() as i32)));
        assert_eq!(parse_uptime("5626.07 100.00\n"), Some(5_626_070));
        assert_eq!(parse_uptime("12.5 1\n"), Some(12_500));
        assert!(uptime_ms().unwrap() > 0);
    }
}
