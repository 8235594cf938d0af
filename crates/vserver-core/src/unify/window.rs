//! Windows: the only moments a store entry's immutable flag is off.
//!
//! The kernel refuses to link, rename or unlink a name of an immutable inode,
//! even for root, so adding a guest's name to a store entry (vhashify) or
//! taking one away (copy-on-write, revert, delete) needs the flag off for a
//! moment. While it is off, any process that can reach the inode (by a name
//! in its tree or by a descriptor it kept) could open it for writing or
//! change its mode, owner, times or xattrs. So the flag only ever goes off
//! inside a window, and a window is: every running guest of this host frozen
//! (cgroup freezer), with the lock `vserver start` holds until a starting
//! guest's run state is written, so that no guest starts unseen during it.
//!
//! A frozen task executes nothing: any permission check a guest task makes
//! happens while the flag is on, and fails for a store entry. With cgroup v2
//! a task freezes only on its way back to user space, so no guest system
//! call is in progress while the flag is off; a system call interrupted by
//! the freeze (a seccomp notification, a lease wait) is restarted after the
//! thaw and checks again.
//!
//! A journal (`<rundir>/.locks/unify-window.json`) lists what a window froze
//! and which stores it touched; if its process dies inside the window, the
//! next window makes every entry of those stores immutable again before it
//! thaws the guests the dead one left frozen.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{IoResultExt, UnifyError};
use super::freezer::{self, Frozen, Target};
use super::hook;
use crate::cgroup::{Layout, PARENT};
use crate::paths::Paths;
use crate::runstate::RunState;

/// The lock `vserver start` holds from before its guest's first process
/// runs until the run state is written (context/start.rs).
const START_LOCK: &str = "start";
const JOURNAL: &str = "unify-window.json";

/// How long a window waits for guests to freeze, and for the start lock.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens windows for one vserver installation (its run dir and guests).
pub struct Windows {
    paths: Paths,
    layout: Option<Layout>,
    /// The guest whose monitor we are: frozen below its `payload` cgroup,
    /// since freezing all of it would freeze us too.
    own_guest: Option<String>,
    /// Our own guest's start holds the start lock (the monitor, until it
    /// reports the start done): no other start or window can be under way,
    /// and waiting for the lock would wait for ourselves.
    start_lock_held: std::cell::Cell<bool>,
}

/// The lock a window holds: the start lock, or nothing when our own
/// guest's start holds it for us.
enum Lock {
    Held(#[allow(dead_code)] File),
    OwnStart,
}

/// An open window: every guest frozen, the start lock held.
pub struct Window {
    _lock: Lock,
    journal_path: PathBuf,
    journal: Journal,
    frozen: Option<Frozen>,
    opened: Instant,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    pid: u32,
    /// The cgroups this window froze (and must thaw).
    frozen: Vec<PathBuf>,
    /// Stores whose entries may be without their immutable flag.
    stores: Vec<PathBuf>,
}

impl Windows {
    pub fn new(paths: &Paths) -> Windows {
        Windows {
            paths: paths.clone(),
            layout: Layout::detect(&paths.cgroup_root).ok(),
            own_guest: None,
            start_lock_held: Default::default(),
        }
    }

    /// For the monitor while its guest starts: `vserver start` holds the
    /// start lock until the monitor reports the start done, so windows
    /// opened meanwhile (a sysv rc script changing a unified file) must not
    /// wait for it. Set back to false once the start is reported.
    pub fn set_start_lock_held(&self, held: bool) {
        self.start_lock_held.set(held);
    }

    /// For a guest's monitor, which runs inside the guest's cgroup.
    pub fn for_guest(paths: &Paths, guest: &str) -> Windows {
        Windows { own_guest: Some(guest.to_string()), ..Windows::new(paths) }
    }

    /// Opens a window in which entries of `store` may lose their flag.
    pub fn open(&self, store: &Path) -> Result<Window, UnifyError> {
        let lock = self.lock()?;
        let journal_path = self.paths.lock_dir().join(JOURNAL);
        recover(&journal_path)?;
        let targets = self.targets()?;
        let ours = freezer::unrequested(&targets).what(|| "reading the guests' freezer state")?;
        let frozen = ours.iter().map(|t| t.dir.clone()).collect();
        let journal = Journal { pid: std::process::id(), frozen, stores: vec![store.to_path_buf()] };
        write_journal(&journal_path, &journal)?;
        let frozen = match freezer::freeze(ours, &targets, FREEZE_TIMEOUT) {
            Ok(f) => f,
            Err(err) => {
                let _ = fs::remove_file(&journal_path);
                return Err(UnifyError::Io { what: "freezing the running guests for a window".into(), err });
            }
        };
        hook::point("window-frozen", b"");
        Ok(Window { _lock: lock, journal_path, journal, frozen: Some(frozen), opened: Instant::now() })
    }

    /// `<rundir>/.locks/start`, exclusively; waits for a guest start in
    /// progress (it holds the lock until its run state is written).
    fn lock(&self) -> Result<Lock, UnifyError> {
        if self.start_lock_held.get() {
            return Ok(Lock::OwnStart);
        }
        self.take_lock().map(Lock::Held)
    }

    fn take_lock(&self) -> Result<File, UnifyError> {
        let dir = self.paths.lock_dir();
        fs::create_dir_all(&dir).what(|| format!("creating {}", dir.display()))?;
        let path = dir.join(START_LOCK);
        let file = File::create(&path).what(|| format!("creating {}", path.display()))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut nap = Duration::from_micros(200);
        loop {
            let e = match crate::sys::flock(file.as_fd(), false) {
                Ok(()) => return Ok(file),
                Err(e) => e,
            };
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(UnifyError::Io { what: format!("locking {}", path.display()), err: e });
            }
            if Instant::now() > deadline {
                return Err(UnifyError::StartLockTimeout { lock: path, secs: LOCK_TIMEOUT.as_secs() });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Every guest of this installation that may have processes: those with
    /// a run state (running or stale) and those whose cgroup exists (one that
    /// is rebooting). Each is frozen as a whole, except our own guest.
    fn targets(&self) -> Result<Vec<Target>, UnifyError> {
        let states = run_states(&self.paths);
        let Some(layout) = &self.layout else {
            if let Some((name, _)) = states.iter().find(|(_, dirs)| dirs.iter().any(|d| d.exists())) {
                return Err(UnifyError::NoCgroupHierarchy { guest: name.clone(), cgroup_root: self.paths.cgroup_root.clone() });
            }
            return Ok(Vec::new());
        };
        let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (name, state_dirs) in states {
            match freezer_dir(layout, &state_dirs, &name) {
                Some(d) => {
                    dirs.insert(name, d);
                }
                // A guest whose cgroup is there (so it may have processes)
                // but cannot be frozen: no window may open.
                None if state_dirs.iter().any(|d| d.exists()) => {
                    return Err(UnifyError::GuestWithoutFreezer { guest: name, cgroups: state_dirs });
                }
                None => {}
            }
        }
        for root in freezer_roots(layout) {
            let Ok(entries) = fs::read_dir(root.join(PARENT)) else { continue };
            for e in entries.flatten() {
                let Ok(name) = e.file_name().into_string() else { continue };
                if !dirs.contains_key(&name) && self.paths.guest_confdir(&name).is_dir() && e.path().is_dir() {
                    if let Some(d) = freezer_dir(layout, &[], &name) {
                        dirs.insert(name, d);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (name, dir) in dirs {
            let dir = if self.own_guest.as_deref() == Some(name.as_str()) && is_inside(&dir, layout)? {
                let payload = dir.join("payload");
                if !payload.is_dir() {
                    return Err(UnifyError::NoPayloadCgroup { guest: name, cgroup: dir });
                }
                payload
            } else {
                dir
            };
            match Target::of(&dir) {
                Some(t) => out.push(t),
                None if !dir.exists() => {}
                None => return Err(UnifyError::CgroupWithoutFreezer { cgroup: dir }),
            }
        }
        Ok(out)
    }
}

impl Window {
    /// Whether this window stopped any guest (none may be running).
    pub fn froze_anything(&self) -> bool {
        self.frozen.as_ref().is_some_and(|f| !f.targets().is_empty())
    }

    pub fn elapsed(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Thaws the guests; the window's work must have made every entry
    /// immutable again.
    pub fn close(mut self) -> Result<(), UnifyError> {
        self.thaw()
    }

    fn thaw(&mut self) -> Result<(), UnifyError> {
        let Some(frozen) = self.frozen.take() else { return Ok(()) };
        frozen.thaw().what(|| "thawing the guests after a window")?;
        let _ = fs::remove_file(&self.journal_path);
        Ok(())
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // An early return (error, panic) inside a window: entries of the noted
        // stores may be mutable, so they are frozen again before any guest runs.
        if self.frozen.is_some() {
            for store in &self.journal.stores {
                let _ = super::store::refreeze_entries(store);
            }
            let _ = self.thaw();
        }
    }
}

/// A window whose process died: its stores' entries get their flag back,
/// then the guests it froze are thawed.
fn recover(journal_path: &Path) -> Result<(), UnifyError> {
    let text = match fs::read(journal_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.what(|| format!("reading {}", journal_path.display()))?,
    };
    if let Ok(j) = serde_json::from_slice::<Journal>(&text) {
        for store in &j.stores {
            super::store::refreeze_entries(store).map_err(|err| UnifyError::Refreeze {
                store: store.clone(),
                pid: j.pid,
                err: Box::new(err),
            })?;
        }
        freezer::thaw_dirs(&j.frozen).what(|| format!("thawing what the window of pid {} froze", j.pid))?;
    }
    fs::remove_file(journal_path).what(|| format!("removing {}", journal_path.display()))
}

fn write_journal(path: &Path, j: &Journal) -> Result<(), UnifyError> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec(j).map_err(UnifyError::Journal)?;
    fs::write(&tmp, text).what(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).what(|| format!("writing {}", path.display()))
}

/// (guest name, recorded cgroup dirs) of every run state file.
fn run_states(paths: &Paths) -> Vec<(String, Vec<PathBuf>)> {
    let Ok(entries) = fs::read_dir(&paths.rundir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(name) = e.file_name().into_string() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Ok(Some(state)) = RunState::load(paths, &name) {
            out.push((name, state.cgroups));
        }
    }
    out
}

/// Where guests' cgroups with a freezer live: the cgroup2 mount, else the
/// v1 freezer hierarchy.
fn freezer_roots(layout: &Layout) -> Vec<PathBuf> {
    layout.v2.iter().cloned().chain(layout.v1_mount("freezer").map(Path::to_path_buf)).collect()
}

/// The cgroup to freeze for a guest: its cgroup2 directory, else its v1
/// freezer one; recorded directories win over computed ones.
fn freezer_dir(layout: &Layout, recorded: &[PathBuf], name: &str) -> Option<PathBuf> {
    for root in freezer_roots(layout) {
        if let Some(d) = recorded.iter().find(|d| d.starts_with(&root)) {
            return Some(d.clone());
        }
        let d = root.join(PARENT).join(name);
        if d.is_dir() {
            return Some(d);
        }
    }
    None
}

/// Whether this process is inside the cgroup `dir` (or below it).
fn is_inside(dir: &Path, layout: &Layout) -> Result<bool, UnifyError> {
    let text = fs::read_to_string("/proc/self/cgroup").what(|| "reading /proc/self/cgroup")?;
    Ok(cgroup_file_is_inside(&text, dir, layout))
}

/// is_inside on the text of /proc/self/cgroup.
fn cgroup_file_is_inside(text: &str, dir: &Path, layout: &Layout) -> bool {
    for root in freezer_roots(layout) {
        let Ok(rel) = dir.strip_prefix(&root) else { continue };
        let v2 = layout.v2.as_deref() == Some(root.as_path());
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
            let ours = if v2 { ctrl.is_empty() } else { ctrl.split(',').any(|c| c == "freezer") };
            if ours && Path::new(path.trim_start_matches('/')).starts_with(rel) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips() {
        let j = Journal { pid: 7, frozen: vec!["/sys/fs/cgroup/vserver/a".into()], stores: vec!["/vservers/.hash".into()] };
        let back: Journal = serde_json::from_slice(&serde_json::to_vec(&j).unwrap()).unwrap();
        assert_eq!((back.pid, back.frozen, back.stores), (7, j.frozen, j.stores));
    }

    #[test]
    fn a_monitor_in_its_guests_supervisor_cgroup_is_inside_it() {
        let hybrid = Layout {
            v1: vec![crate::cgroup::V1Hierarchy { controllers: vec!["freezer".into()], mount: "/cg/freezer".into() }],
            v2: Some("/cg/unified".into()),
        };
        let text = "7:freezer:/vserver/web1/supervisor\n0::/vserver/web1/supervisor\n";
        assert!(cgroup_file_is_inside(text, Path::new("/cg/unified/vserver/web1"), &hybrid));
        assert!(!cgroup_file_is_inside(text, Path::new("/cg/unified/vserver/web2"), &hybrid));
        assert!(!cgroup_file_is_inside(text, Path::new("/cg/unified/vserver/web"), &hybrid), "a prefix of the name is not the cgroup");
        assert!(cgroup_file_is_inside(text, Path::new("/cg/freezer/vserver/web1"), &hybrid));
        assert!(!cgroup_file_is_inside("0::/user.slice\n", Path::new("/cg/unified/vserver/web1"), &hybrid));
    }

    #[test]
    fn recorded_cgroup_dirs_are_preferred() {
        let layout = Layout { v1: Vec::new(), v2: Some("/nonexistent-cg".into()) };
        let rec = vec![PathBuf::from("/nonexistent-cg/vserver/web1")];
        assert_eq!(freezer_dir(&layout, &rec, "web1"), Some(rec[0].clone()));
        assert_eq!(freezer_dir(&layout, &[], "web1"), None);
    }
}
