//! `vps`: ps's output with util-vserver's CONTEXT column inserted after the
//! PID column, laid out as util-vserver's vps.c does it:
//!
//! ```text
//!     PID CONTEXT             TTY      STAT   TIME COMMAND
//!       1     0 root server   ?        Ss     0:01 /sbin/init
//!    4242   101 web1          ?        S      0:00 nginx: worker process
//! ```
//!
//! The column is 20 wide: the xid right-aligned in 5, a blank, the name; a
//! longer entry is followed by a single blank. Scripts find a context's
//! processes with `vps ax | egrep "^ *[^ ]+ +$XID "` (util-vserver's own stop
//! script does), which is why the column follows the PID.

use super::owner::Owner;

const XID_WIDTH: usize = 5;
const CONTEXT_WIDTH: usize = 20;

#[derive(Debug, PartialEq, Eq)]
pub enum VpsError {
    /// ps printed nothing at all.
    Empty,
    /// The header has no PID column (e.g. `-o comm` without `pid`).
    NoPidColumn(String),
}

impl std::fmt::Display for VpsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VpsError::Empty => f.write_str("ps printed nothing (no header line to add the CONTEXT column to)"),
            VpsError::NoPidColumn(h) => write!(
                f,
                "ps's header {h:?} has no PID column, so the context of each line cannot be found; \
                 include pid in -o (e.g. vps -o pid,comm)"
            ),
        }
    }
}

impl std::error::Error for VpsError {}

/// Inserts the CONTEXT column into ps's output. `owner` answers for a pid;
/// `None` (the process is gone) prints util-vserver's `ERR`.
pub fn annotate(ps_output: &[u8], owner: impl Fn(i32) -> Option<Owner>) -> Result<Vec<u8>, VpsError> {
    let mut lines = ps_output.split(|&b| b == b'\n');
    let header = lines.next().filter(|h| !h.is_empty()).ok_or(VpsError::Empty)?;
    let pid_at = pid_column(header).ok_or_else(|| VpsError::NoPidColumn(String::from_utf8_lossy(header).into()))?;
    // The column goes after "PID" and the blank that follows it.
    let cut = pid_at + 4;
    let mut out = Vec::with_capacity(ps_output.len() + 24 * 64);
    push_split(&mut out, header, cut, format!("{:<width$}", "CONTEXT", width = CONTEXT_WIDTH).as_bytes());
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let who = pid_in_line(line, pid_at + 2).and_then(&owner);
        push_split(&mut out, line, cut, context_field(who.as_ref()).as_bytes());
    }
    Ok(out)
}

/// Where the header's `PID` token starts (a whole word: not `PPID`, `SPID`).
fn pid_column(header: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < header.len() {
        if header[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < header.len() && header[i] != b' ' {
            i += 1;
        }
        if &header[start..i] == b"PID" {
            return Some(start);
        }
    }
    None
}

/// The number in `line` that covers column `at` (ps right-aligns the PID
/// under its header, and a wider number grows to the left or right).
fn pid_in_line(line: &[u8], at: usize) -> Option<i32> {
    if !line.get(at)?.is_ascii_digit() {
        return None;
    }
    let start = line[..at].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |p| p + 1);
    let end = line[at..].iter().position(|b| !b.is_ascii_digit()).map_or(line.len(), |p| at + p);
    std::str::from_utf8(&line[start..end]).ok()?.parse().ok()
}

fn context_field(who: Option<&Owner>) -> String {
    let (xid, name) = match who {
        Some(o) => (o.xid().map_or("ERR".to_string(), |x| x.to_string()), o.label()),
        None => ("ERR".to_string(), String::new()),
    };
    let field = format!("{xid:>XID_WIDTH$} {name}");
    if field.len() < CONTEXT_WIDTH {
        format!("{field:<CONTEXT_WIDTH$}")
    } else {
        field + " "
    }
}

fn push_split(out: &mut Vec<u8>, line: &[u8], cut: usize, insert: &[u8]) {
    if line.len() >= cut {
        out.extend_from_slice(&line[..cut]);
        out.extend_from_slice(insert);
        out.extend_from_slice(&line[cut..]);
    } else {
        // PID is the last column: pad to where the column goes.
        out.extend_from_slice(line);
        out.resize(out.len() + cut - line.len(), b' ');
        out.extend_from_slice(insert.trim_ascii_end());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(pid: i32) -> Option<Owner> {
        match pid {
            1 | 77 => Some(Owner::Host),
            4242 | 1234567 => Some(Owner::Guest { xid: 101, name: "web1".into() }),
            4241 => Some(Owner::Monitor { xid: 101, name: "web1".into() }),
            5 => Some(Owner::Orphan { name: "old".into() }),
            _ => None,
        }
    }

    fn vps(input: &str) -> String {
        String::from_utf8(annotate(input.as_bytes(), owners).unwrap()).unwrap()
    }

    #[test]
    fn ps_ax_gets_the_column_after_pid() {
        let out = vps("    PID TTY      STAT   TIME COMMAND\n      1 ?        Ss     0:01 /sbin/init\n   4242 ?        S      0:00 nginx\n   4241 ?        S      0:00 vserver\n");
        assert_eq!(
            out,
            "    PID CONTEXT             TTY      STAT   TIME COMMAND\n      \
             1     0 root server   ?        Ss     0:01 /sbin/init\n   \
             4242   101 web1          ?        S      0:00 nginx\n   \
             4241   101 web1:monitor  ?        S      0:00 vserver\n"
        );
        // util-vserver's stop script greps a context's processes like this.
        let re_line = out.lines().find(|l| l.trim_start().starts_with("4242")).unwrap();
        let fields: Vec<&str> = re_line.split_whitespace().collect();
        assert_eq!(&fields[..3], ["4242", "101", "web1"]);
    }

    #[test]
    fn ps_ef_and_wide_pids_and_gone_processes() {
        let out = vps("UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 init\nroot     1234567       1  0 10:00 ?        00:00:00 sh\nroot          99       1  0 10:00 ?        00:00:00 gone\nroot           5       1  0 10:00 ?        00:00:00 orphan\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "UID          PID CONTEXT                PPID  C STIME TTY          TIME CMD");
        assert_eq!(lines[1], "root           1     0 root server         0  0 10:00 ?        00:00:01 init");
        assert!(lines[2].starts_with("root     1234567   101 web1           "), "{}", lines[2]);
        assert!(lines[3].starts_with("root          99   ERR                "), "{}", lines[3]);
        assert!(lines[4].starts_with("root           5   ERR old            "), "{}", lines[4]);
    }

    #[test]
    fn pid_as_last_column_and_long_names() {
        let out = vps("COMMAND             PID\ninit                  1\n");
        assert_eq!(out, "COMMAND             PID CONTEXT\ninit                  1     0 root server\n");
        let long = |_| Some(Owner::Guest { xid: 49151, name: "a-rather-long-guest-name".into() });
        let out = String::from_utf8(annotate(b"  PID X\n   12 y\n", long).unwrap()).unwrap();
        assert_eq!(out, "  PID CONTEXT             X\n   12 49151 a-rather-long-guest-name y\n");
    }

    #[test]
    fn no_pid_column_is_an_error_naming_the_fix() {
        assert!(matches!(annotate(b"  PPID COMMAND\n 1 x\n", owners), Err(VpsError::NoPidColumn(_))));
        assert_eq!(annotate(b"", owners), Err(VpsError::Empty));
        let msg = annotate(b"COMMAND\n", owners).unwrap_err().to_string();
        assert!(msg.contains("vps -o pid,comm"), "{msg}");
    }
}
