//! Freezing the processes of a cgroup: cgroup v2's `cgroup.freeze` (kernel
//! 5.2+), or the v1 freezer controller's `freezer.state`. A cgroup counts as
//! frozen once the kernel says every task in it (and below it) is: on v2 a
//! task freezes only on its way back to user space, so no system call of a
//! frozen task is half done, and one that was waiting (for a lease, for a
//! seccomp supervisor) is restarted from the beginning after the thaw.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V2,
    V1,
}

/// One cgroup that can be frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub dir: PathBuf,
    kind: Kind,
}

impl Target {
    /// The freezer of a cgroup directory, if it has one.
    pub fn of(dir: &Path) -> Option<Target> {
        if dir.join("cgroup.freeze").exists() {
            Some(Target { dir: dir.to_path_buf(), kind: Kind::V2 })
        } else if dir.join("freezer.state").exists() {
            Some(Target { dir: dir.to_path_buf(), kind: Kind::V1 })
        } else {
            None
        }
    }

    /// Whether someone already asked for this cgroup itself to be frozen
    /// (an admin, or a window that died): we then neither freeze nor thaw it.
    fn requested(&self) -> io::Result<bool> {
        match self.kind {
            Kind::V2 => Ok(read(&self.dir.join("cgroup.freeze"))?.trim() == "1"),
            Kind::V1 => Ok(read(&self.dir.join("freezer.self_freezing"))?.trim() == "1"),
        }
    }

    fn request(&self, frozen: bool) -> io::Result<()> {
        let (file, value) = match (self.kind, frozen) {
            (Kind::V2, true) => ("cgroup.freeze", "1"),
            (Kind::V2, false) => ("cgroup.freeze", "0"),
            (Kind::V1, true) => ("freezer.state", "FROZEN"),
            (Kind::V1, false) => ("freezer.state", "THAWED"),
        };
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("writing {value} to {}: {e}", path.display())))
    }

    fn status_file(&self) -> PathBuf {
        match self.kind {
            Kind::V2 => self.dir.join("cgroup.events"),
            Kind::V1 => self.dir.join("freezer.state"),
        }
    }
}

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
}

fn says_frozen(kind: Kind, text: &str) -> bool {
    match kind {
        Kind::V2 => text.lines().any(|l| l.trim() == "frozen 1"),
        Kind::V1 => text.trim() == "FROZEN",
    }
}

/// Cgroups this process froze; thawed again by [`Frozen::thaw`] (or on drop).
#[derive(Debug, Default)]
pub struct Frozen {
    /// Frozen by us, to be thawed.
    ours: Vec<Target>,
}

impl Frozen {
    pub fn targets(&self) -> &[Target] {
        &self.ours
    }

    /// Thaws what we froze; the first error is returned, every target is tried.
    pub fn thaw(mut self) -> io::Result<()> {
        self.thaw_all()
    }

    fn thaw_all(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for t in self.ours.drain(..).rev() {
            match t.request(false) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // the cgroup went away with its guest
                Err(e) if first.is_ok() => first = Err(e),
                _ => {}
            }
        }
        first
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.thaw_all();
    }
}

/// The targets not yet asked to freeze by anyone: the ones we will freeze
/// (and thaw). The others are frozen already and stay as they are.
pub fn unrequested(targets: &[Target]) -> io::Result<Vec<Target>> {
    let mut out = Vec::new();
    for t in targets {
        match t.requested() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(true) => {}
            Ok(false) => out.push(t.clone()),
        }
    }
    Ok(out)
}

/// Freezes `ours`, then waits until every one of `all` is frozen. A cgroup
/// that disappears meanwhile (its guest stopped) no longer counts. On error
/// or timeout what we froze is thawed again (by the drop of the result).
pub fn freeze(ours: Vec<Target>, all: &[Target], timeout: Duration) -> io::Result<Frozen> {
    let mut frozen = Frozen::default();
    for t in ours {
        match t.request(true) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(()) => frozen.ours.push(t),
        }
    }
    wait_frozen(all, Instant::now() + timeout)?;
    Ok(frozen)
}

/// Thaws cgroups a dead window froze (from its journal).
pub fn thaw_dirs(dirs: &[PathBuf]) -> io::Result<()> {
    let frozen = Frozen { ours: dirs.iter().filter_map(|d| Target::of(d)).collect() };
    frozen.thaw()
}

/// Waits for the kernel to report every target frozen: cgroup.events wakes
/// pollers (POLLPRI) when it changes; v1 state files are polled by time.
fn wait_frozen(targets: &[Target], deadline: Instant) -> io::Result<()> {
    let mut files: Vec<(Target, File)> = Vec::new();
    for t in targets {
        match OpenOptions::new().read(true).open(t.status_file()) {
            Ok(f) => files.push((t.clone(), f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut nap = Duration::from_micros(50);
    loop {
        let mut pending: Vec<&(Target, File)> = Vec::new();
        for entry in &files {
            let mut buf = [0u8; 256];
            match entry.1.read_at(&mut buf, 0) {
                Ok(n) if says_frozen(entry.0.kind, &String::from_utf8_lossy(&buf[..n])) => {}
                Ok(_) => pending.push(entry),
                // ENODEV: the cgroup was removed (its guest ended): nothing left to freeze.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                Err(e) => return Err(e),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            let names: Vec<String> = pending.iter().map(|(t, _)| t.dir.display().to_string()).collect();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("these cgroups did not freeze in time (a task stuck in the kernel?): {}", names.join(", ")),
            ));
        }
        let left = deadline - now;
        if pending.iter().all(|(t, _)| t.kind == Kind::V2) {
            let mut fds: Vec<PollFd> = pending.iter().map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLPRI)).collect();
            let ms = left.as_millis().clamp(1, 100) as u16;
            let _ = poll(&mut fds, PollTimeout::from(ms));
        } else {
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_states_are_read_from_both_interfaces() {
        assert!(says_frozen(Kind::V2, "populated 1\nfrozen 1\n"));
        assert!(!says_frozen(Kind::V2, "populated 1\nfrozen 0\n"));
        assert!(says_frozen(Kind::V1, "FROZEN\n"));
        assert!(!says_frozen(Kind::V1, "FREEZING\n"));
    }

    #[test]
    fn a_directory_without_freezer_files_is_no_target() {
        let dir = std::env::temp_dir().join(format!("vs-freezer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Target::of(&dir).is_none());
        std::fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
        assert_eq!(Target::of(&dir).map(|t| t.kind), Some(Kind::V2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
