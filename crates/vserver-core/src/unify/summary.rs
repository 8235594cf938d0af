//! What a run did, for people (Display) and machines (serde, `--json`), and
//! the progress line shown while it runs on a terminal.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

/// How many error messages a summary keeps; the count is always exact.
const MAX_MESSAGES: usize = 50;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub guests: Vec<String>,
    pub dry_run: bool,
    /// Regular files looked at (not excluded, not already shared).
    pub files_scanned: u64,
    /// Files whose inode already is a store entry: no stat, no read.
    pub already_shared: u64,
    /// Files whose content was read (the others were known).
    pub hashed: u64,
    /// Files replaced by a link to a store entry (or, dry run: would be).
    pub linked: u64,
    /// Store entries created.
    pub new_entries: u64,
    /// Disk space freed by linking (blocks of inodes whose last name went).
    #[serde(rename = "saved_bytes")]
    pub bytes_saved: u64,
    /// Files left alone on purpose: setuid/setgid, too small, busy, changed.
    pub skipped: u64,
    /// Files left private because no other guest and no store entry has
    /// their content.
    pub unshared: u64,
    pub reverted: u64,
    pub gc_removed: u64,
    pub gc_bytes: u64,
    /// Store entries made immutable again and stale staging names removed
    /// after an interrupted run.
    pub repaired: u64,
    /// Windows in which the running guests were frozen, and how long in all.
    pub windows: u64,
    #[serde(rename = "window_seconds")]
    pub window_secs: f64,
    /// Directory arguments of --revert not reverted (no --recursive).
    pub skipped_dirs: Vec<String>,
    pub errors: u64,
    pub error_messages: Vec<String>,
    #[serde(rename = "duration_seconds")]
    pub duration_secs: f64,
}

impl Summary {
    pub fn error(&mut self, message: String) {
        self.errors += 1;
        if self.error_messages.len() < MAX_MESSAGES {
            self.error_messages.push(message);
        }
    }

    pub fn merge(&mut self, other: Summary) {
        self.files_scanned += other.files_scanned;
        self.already_shared += other.already_shared;
        self.hashed += other.hashed;
        self.linked += other.linked;
        self.new_entries += other.new_entries;
        self.bytes_saved += other.bytes_saved;
        self.skipped += other.skipped;
        self.unshared += other.unshared;
        self.windows += other.windows;
        self.window_secs += other.window_secs;
        self.reverted += other.reverted;
        self.repaired += other.repaired;
        let unlisted = other.errors - other.error_messages.len() as u64;
        for m in other.error_messages {
            self.error(m);
        }
        self.errors += unlisted;
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would link" } else { "linked" };
        writeln!(f, "guests:         {}", self.guests.join(" "))?;
        writeln!(f, "files scanned:  {}", self.files_scanned)?;
        writeln!(f, "already shared: {}", self.already_shared)?;
        if self.linked == 0 && !self.dry_run {
            writeln!(f, "linked:         0 (nothing new to share)")?;
        } else {
            writeln!(f, "{verb:<15} {}", self.linked)?;
        }
        writeln!(f, "new entries:    {}", self.new_entries)?;
        writeln!(f, "bytes saved:    {} ({})", self.bytes_saved, human(self.bytes_saved))?;
        writeln!(f, "skipped:        {}", self.skipped)?;
        if self.unshared > 0 {
            writeln!(f, "left private:   {} (no other guest has them)", self.unshared)?;
        }
        if self.reverted > 0 {
            writeln!(f, "reverted:       {}", self.reverted)?;
        }
        if self.gc_removed > 0 {
            writeln!(f, "gc removed:     {} entries, {}", self.gc_removed, human(self.gc_bytes))?;
        }
        if self.repaired > 0 {
            writeln!(f, "repaired:       {} (after an interrupted run)", self.repaired)?;
        }
        if self.windows > 0 {
            writeln!(f, "guests frozen:  {} windows, {:.3} s in all", self.windows, self.window_secs)?;
        }
        writeln!(f, "errors:         {}", self.errors)?;
        write!(f, "duration:       {:.2} s", self.duration_secs)
    }
}

fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

/// A one-line progress display on stderr, redrawn at most ten times a second.
pub struct Progress {
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Progress { enabled, last: None }
    }

    pub fn show(&mut self, phase: &str, done: u64, total: Option<u64>) {
        if !self.enabled || self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Some(Instant::now());
        let line = match total {
            Some(t) if t > 0 => format!("\r{phase}: {done}/{t} ({}%)   ", done * 100 / t),
            _ => format!("\r{phase}: {done}   "),
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    pub fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
            self.last = None;
        }
    }
}
