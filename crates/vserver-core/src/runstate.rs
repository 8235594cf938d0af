//! The run state of a running guest (the paper's /proc/virtual): one JSON file
//! per guest under `<rundir>/<name>/state.json`, written by the guest's
//! monitor. A pid alone can be reused after a host crash or a long uptime, so
//! every pid is stored with its start time (field 22 of /proc/PID/stat) and is
//! only trusted while both still match.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths::Paths;

pub const STATE_FILE: &str = "state.json";

/// A process identified so that pid reuse is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    /// Start time in clock ticks since boot, from /proc/PID/stat.
    pub start_time: u64,
}

impl ProcessId {
    pub fn of(pid: i32) -> io::Result<ProcessId> {
        Ok(ProcessId { pid, start_time: process_start_time(pid)? })
    }

    /// True while this exact process (not a later one with the same pid) lives.
    pub fn is_alive(&self) -> bool {
        process_start_time(self.pid).is_ok_and(|t| t == self.start_time)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub name: String,
    pub xid: u32,
    /// The guest's pid 1, as the host sees it.
    pub init: ProcessId,
    /// The host-side monitor, parent of init.
    pub monitor: ProcessId,
    /// Seconds since the epoch when the guest (last) started.
    pub started_at: u64,
    /// The guest's cgroup directories (`vserver/NAME`), one per hierarchy it
    /// was created in; its processes are in their `payload` children.
    pub cgroups: Vec<PathBuf>,
    /// Host addresses the start added, removed again at stop.
    #[serde(default)]
    pub added_addresses: Vec<String>,
    /// The seccomp filter allows io_uring (cflag IO_URING at start).
    #[serde(default)]
    pub allow_io_uring: bool,
    /// Ping sockets are allowed (ccapability RAW_ICMP at start).
    #[serde(default)]
    pub allow_ping_sockets: bool,
}

/// What the run dir says about a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running(RunState),
    Stopped,
    /// A state file whose monitor or init is gone (host crash, pid reused).
    Stale(RunState),
}

impl RunState {
    pub fn file(paths: &Paths, name: &str) -> PathBuf {
        paths.guest_rundir(name).join(STATE_FILE)
    }

    pub fn load(paths: &Paths, name: &str) -> io::Result<Option<RunState>> {
        let file = Self::file(paths, name);
        match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
        }
    }

    /// Writes the state once per boot, atomically (temporary file, then
    /// rename), so readers never see half a file. No fsync: the run dir is
    /// a tmpfs (/run) and a state that did not survive a crash is what a
    /// crash should leave; the rename alone makes the update atomic.
    pub fn save(&self, paths: &Paths) -> io::Result<()> {
        let dir = paths.guest_rundir(&self.name);
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(io::Error::other)?)?;
        drop(f);
        fs::rename(&tmp, dir.join(STATE_FILE))?;
        xid_index::add(paths, &self.name, self.xid)
    }

    pub fn remove(paths: &Paths, name: &str) -> io::Result<()> {
        if let Ok(Some(s)) = Self::load(paths, name) {
            xid_index::remove(paths, name, s.xid);
        }
        match fs::remove_file(Self::file(paths, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.init.is_alive() && self.monitor.is_alive()
    }
}

pub fn status(paths: &Paths, name: &str) -> io::Result<Status> {
    Ok(match RunState::load(paths, name)? {
        None => Status::Stopped,
        Some(s) if s.is_alive() => Status::Running(s),
        Some(s) => Status::Stale(s),
    })
}

/// As [`status`], but a guest whose pid 1 has ended while its monitor
/// still lives (a reboot between two boots, or the teardown after a halt)
/// is waited for, up to `limit`, until it runs again or is gone: deciding
/// on such a moment (a start cleaning up "stale" state under a monitor that
/// is still tearing down) would race the monitor.
pub fn settled_status(paths: &Paths, name: &str, limit: std::time::Duration) -> io::Result<Status> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let now = status(paths, name)?;
        match &now {
            Status::Stale(s) if s.monitor.is_alive() && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return Ok(now),
        }
    }
}

/// How long the commands that act on a guest wait for a reboot or a
/// teardown under way to finish.
pub const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn is_running(paths: &Paths, name: &str) -> bool {
    matches!(status(paths, name), Ok(Status::Running(_)))
}

/// Every guest with a live run state, sorted by xid.
pub fn running_guests(paths: &Paths) -> io::Result<Vec<RunState>> {
    let mut out = Vec::new();
    for name in recorded_guests(paths)? {
        if let Ok(Status::Running(s)) = status(paths, &name) {
            out.push(s);
        }
    }
    out.sort_by_key(|s| s.xid);
    Ok(out)
}

/// The running guest with context id `xid`, if any: one look-up in the
/// xid index, so that a start costs the same with 1 or 500 guests running.
/// Callers hold the start lock.
pub fn running_guest_with_xid(paths: &Paths, xid: u32) -> io::Result<Option<RunState>> {
    if !xid_index::is_complete(paths) {
        return index_every_running_guest(paths, xid);
    }
    let Some(name) = xid_index::lookup(paths, xid) else { return Ok(None) };
    // The link is a hint (one left by a crash names a stopped guest or one
    // whose xid changed since): the state it names decides.
    Ok(RunState::load(paths, &name)?.filter(|s| s.xid == xid && s.is_alive()))
}

/// A run dir written before the xid index existed (guests started by an
/// earlier version): every run state is read once and indexed.
fn index_every_running_guest(paths: &Paths, xid: u32) -> io::Result<Option<RunState>> {
    let mut found = None;
    for name in recorded_guests(paths)? {
        if let Ok(Some(s)) = RunState::load(paths, &name) {
            if s.is_alive() {
                xid_index::add(paths, &s.name, s.xid)?;
                if s.xid == xid {
                    found = Some(s);
                }
            }
        }
    }
    xid_index::mark_complete(paths)?;
    Ok(found)
}

/// `<rundir>/.xids/XID`: a symlink to the name of the guest that runs with
/// context id XID, made when its run state is written and removed with it.
mod xid_index {
    use std::fs;
    use std::io;
    use std::path::PathBuf;

    use crate::paths::Paths;

    const DIR: &str = ".xids";
    /// Present once every running guest is indexed.
    const COMPLETE: &str = ".complete";

    fn link(paths: &Paths, xid: u32) -> PathBuf {
        paths.rundir.join(DIR).join(xid.to_string())
    }

    /// Replaces the link atomically (a new link, then rename).
    pub(super) fn add(paths: &Paths, name: &str, xid: u32) -> io::Result<()> {
        let dir = paths.rundir.join(DIR);
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{xid}.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp)?;
        fs::rename(&tmp, link(paths, xid))
    }

    /// Only a link that still names `name`: the xid may be another guest's by now.
    pub(super) fn remove(paths: &Paths, name: &str, xid: u32) {
        if lookup(paths, xid).as_deref() == Some(name) {
            let _ = fs::remove_file(link(paths, xid));
        }
    }

    pub(super) fn lookup(paths: &Paths, xid: u32) -> Option<String> {
        fs::read_link(link(paths, xid)).ok()?.into_os_string().into_string().ok()
    }

    pub(super) fn is_complete(paths: &Paths) -> bool {
        paths.rundir.join(DIR).join(COMPLETE).exists()
    }

    pub(super) fn mark_complete(paths: &Paths) -> io::Result<()> {
        let dir = paths.rundir.join(DIR);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(COMPLETE), "")
    }
}

/// The names that have a directory in the run dir (running, stale or
/// being torn down).
fn recorded_guests(paths: &Paths) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(&paths.rundir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect())
}

/// Field 22 of /proc/PID/stat. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last ')'.
pub fn process_start_time(pid: i32) -> io::Result<u64> {
    parse_start_time(&fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))?)
}

fn parse_start_time(stat: &str) -> io::Result<u64> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/PID/stat format");
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    // After ')' come field 3 (state) onwards; starttime is field 22.
    rest.split_whitespace().nth(22 - 3).and_then(|f| f.parse().ok()).ok_or_else(bad)
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The running guest's state, or an error saying it does not run.
pub fn require_running(paths: &Paths, name: &str) -> Result<RunState, NotRunning> {
    match settled_status(paths, name, SETTLE_LIMIT).map_err(NotRunning::Unreadable)? {
        Status::Running(s) => Ok(s),
        Status::Stopped => Err(NotRunning::Stopped { guest: name.to_string() }),
        Status::Stale(s) => {
            Err(NotRunning::Stale { guest: name.to_string(), file: RunState::file(paths, name), monitor: s.monitor.pid, init: s.init.pid })
        }
    }
}

/// Why a command that needs the guest running cannot act on it.
#[derive(Debug, thiserror::Error)]
pub enum NotRunning {
    #[error("guest {guest:?} is not running")]
    Stopped { guest: String },
    #[error(
        "guest {guest:?} is not running: its run state ({}) is stale (monitor pid {monitor} or init pid {init} is gone); \
         `vserver {guest} stop` cleans it up",
        file.display()
    )]
    Stale { guest: String, file: PathBuf, monitor: i32, init: i32 },
    /// The run state could not be read (the message names the file).
    #[error("{0}")]
    Unreadable(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_start_time(stat).unwrap(), 98765);
    }

    fn temp_paths() -> Paths {
        let root = crate::conffile::tests::tempdir();
        Paths { confdir: root.join("etc"), vdirbase: root.join("v"), rundir: root.join("run"), cgroup_root: root.join("cg") }
    }

    /// A state whose init and monitor are this (live) test process.
    fn live_state(name: &str, xid: u32) -> RunState {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        RunState {
            name: name.into(),
            xid,
            init: me,
            monitor: me,
            started_at: 0,
            cgroups: Vec::new(),
            added_addresses: Vec::new(),
            allow_io_uring: false,
            allow_ping_sockets: false,
        }
    }

    #[test]
    fn the_xid_index_finds_a_running_guest_and_forgets_it_at_removal() {
        let paths = temp_paths();
        assert_eq!(running_guest_with_xid(&paths, 77).unwrap(), None);
        live_state("a", 77).save(&paths).unwrap();
        live_state("b", 78).save(&paths).unwrap();
        assert_eq!(running_guest_with_xid(&paths, 77).unwrap().map(|s| s.name), Some("a".into()));
        RunState::remove(&paths, "a").unwrap();
        assert_eq!(running_guest_with_xid(&paths, 77).unwrap(), None);
        assert_eq!(running_guest_with_xid(&paths, 78).unwrap().map(|s| s.name), Some("b".into()));
    }

    #[test]
    fn a_link_is_only_a_hint_the_state_it_names_decides() {
        let paths = temp_paths();
        live_state("a", 77).save(&paths).unwrap();
        // The guest now runs with another xid (its link to 77 left behind).
        live_state("a", 79).save(&paths).unwrap();
        assert_eq!(running_guest_with_xid(&paths, 77).unwrap(), None);
        // A state whose processes are gone (a crash).
        let mut dead = live_state("c", 80);
        dead.init.start_time += 1;
        dead.save(&paths).unwrap();
        assert_eq!(running_guest_with_xid(&paths, 80).unwrap(), None);
    }

    #[test]
    fn states_written_before_the_index_are_indexed_by_one_full_read() {
        let paths = temp_paths();
        live_state("old", 90).save(&paths).unwrap();
        fs::remove_dir_all(paths.rundir.join(".xids")).unwrap();
        assert_eq!(running_guest_with_xid(&paths, 90).unwrap().map(|s| s.name), Some("old".into()));
        assert_eq!(xid_index::lookup(&paths, 90).as_deref(), Some("old"));
        assert!(xid_index::is_complete(&paths));
    }

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        assert!(!ProcessId { start_time: me.start_time + 1, ..me }.is_alive());
    }
}
