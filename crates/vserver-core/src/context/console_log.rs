//! The guest's console output on the host: `<rundir>/NAME/console.log`,
//! written by the monitor from the master of the guest's /dev/console pty.
//! Bounded: past CONSOLE_LIMIT the file moves to console.log.old and a new
//! one starts, so a chatty guest cannot fill the host's disk. The last few
//! KiB are also kept in memory for the message of a failed start.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Console output kept per file; two files at most (console.log and .old).
pub const CONSOLE_LIMIT: u64 = 1 << 20;
/// monitor.log is bounded the same way, smaller: it holds only the
/// monitor's own messages.
pub const MONITOR_LOG_LIMIT: u64 = 256 << 10;
/// Bytes of recent output kept for `tail`.
const TAIL_BYTES: usize = 16 << 10;

pub(super) struct ConsoleLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    recent: VecDeque<u8>,
    /// A '\r' at the end of the last chunk, not yet known to precede '\n'.
    pending_cr: bool,
}

impl ConsoleLog {
    pub(super) fn new(path: PathBuf) -> ConsoleLog {
        ConsoleLog { path, file: None, written: 0, recent: VecDeque::new(), pending_cr: false }
    }

    /// Appends what the guest wrote, with the tty's "\r\n" turned back into
    /// "\n" (the pty's output processing adds the '\r').
    pub(super) fn append(&mut self, data: &[u8]) {
        let mut clean = Vec::with_capacity(data.len() + 1);
        for &b in data {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    clean.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                clean.push(b);
            }
        }
        self.write(&clean);
    }

    /// A line of our own (boot and shutdown markers).
    pub(super) fn note(&mut self, line: &str) {
        self.write(format!("[vserver] {line}\n").as_bytes());
    }

    fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.recent.extend(data);
        let excess = self.recent.len().saturating_sub(TAIL_BYTES);
        self.recent.drain(..excess);
        if self.file.is_none() || self.written > CONSOLE_LIMIT {
            self.open();
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(data).is_ok() {
                self.written += data.len() as u64;
            }
        }
    }

    fn open(&mut self) {
        self.file = None;
        let size = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size > CONSOLE_LIMIT {
            let _ = fs::rename(&self.path, old_name(&self.path));
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
        self.written = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
    }

    /// The last `lines` lines of output (of this monitor's lifetime).
    pub(super) fn tail(&self, lines: usize) -> String {
        let (a, b) = self.recent.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

fn old_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".old");
    PathBuf::from(s)
}

/// Moves a log past `limit` to NAME.old (one old file kept); true if it did.
pub(super) fn rotate_if_larger(path: &Path, limit: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() > limit) && fs::rename(path, old_name(path)).is_ok()
}

/// In the monitor, between boots: monitor.log (its stdout and stderr)
/// moves aside past MONITOR_LOG_LIMIT and a new one takes its place.
pub(super) fn bound_monitor_log(path: &Path) {
    use std::os::fd::AsRawFd;
    if !rotate_if_larger(path, MONITOR_LOG_LIMIT) {
        return;
    }
    if let Ok(f) = OpenOptions::new().create(true).append(true).open(path) {
        for target in [1, 2] {
            // dup2 onto the monitor's own stdout and stderr.
            let _ = nix::unistd::dup2(f.as_raw_fd(), target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_across_chunks_and_the_tail_keeps_the_last_lines() {
        let dir = crate::config::parse::tests::tempdir();
        let mut log = ConsoleLog::new(dir.join("console.log"));
        log.append(b"one\r\ntwo\r");
        log.append(b"\nthree\rx\r\n");
        assert_eq!(fs::read_to_string(dir.join("console.log")).unwrap(), "one\ntwo\nthree\rx\n");
        assert_eq!(log.tail(2), "two\nthree\rx");
    }

    #[test]
    fn the_file_moves_aside_past_the_limit() {
        let dir = crate::config::parse::tests::tempdir();
        let path = dir.join("console.log");
        let mut log = ConsoleLog::new(path.clone());
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..((CONSOLE_LIMIT as usize / chunk.len()) + 3) {
            log.append(&chunk);
        }
        assert!(dir.join("console.log.old").exists());
        assert!(fs::metadata(&path).unwrap().len() <= CONSOLE_LIMIT + chunk.len() as u64);
        assert_eq!(log.tail(1).len(), TAIL_BYTES);
    }
}
