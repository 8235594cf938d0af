//! Copy-on-write for unified guests: the supervisor of the calls with which
//! a guest process changes a file that exists (open for writing, truncate,
//! rename, link, unlink, chmod, chown, utimes, xattrs), sent to it by the
//! guest's seccomp filter (seccomp::NotifyFilter::copy_on_write) through a listener
//! descriptor per process tree. For each call it finds, in the task's own
//! view, the files the call would change; if one is a store entry (marked
//! by vhashify, immutable) and the task could change a file of its own like
//! that, the guest's name gets a private copy first (breaker.rs, inside a
//! window: every guest frozen while the entry's flag is off). Then the call
//! continues, and the kernel does it, on the copy, with its own checks.
//!
//! Why the guest's call can be let through (SECCOMP_USER_NOTIF_FLAG_CONTINUE)
//! although it re-reads its arguments from memory the guest controls: the
//! supervisor grants nothing. The store entry's immutable flag is what
//! protects it, and it is only ever off while every guest task is frozen. A
//! guest that changes its paths between our look and the kernel's gets the
//! kernel's answer for what it finally names: EPERM for any store entry.
//! The most our look can be fooled into is breaking a link in the task's
//! own tree that the call then does not touch.
//!
//! The monitor owns the supervisor (one per guest): it adds the listener of
//! every process tree it starts (pid 1, each joiner), polls
//! [`Supervisor::poll_fd`] and calls [`Supervisor::handle_ready`].

mod breaker;
mod calls;
mod creds;
mod dpkg;
mod notify;
mod resolve;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{PollFd, PollFlags};

use self::breaker::{Break, Outcome};
use self::calls::{Call, Op, PathArg};
use self::creds::{Creds, Owner};
use self::notify::Notification;
use self::resolve::Task;
use super::config;
use super::error::{IoResultExt, UnifyError};
use super::window::Windows;
use crate::paths::Paths;

/// What the supervisor did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub notifications: u64,
    /// Links broken (private copies put in place).
    pub broken: u64,
    pub windows: u64,
    /// Time spent looking at calls, making private copies, and with the
    /// guests frozen.
    pub look_secs: f64,
    pub copy_secs: f64,
    pub window_secs: f64,
    /// Calls that could not be looked at or a link that could not be
    /// broken: they continued, and the kernel decided (EPERM for an entry).
    pub errors: u64,
}

/// How many error messages are kept until taken.
const MAX_MESSAGES: usize = 20;
/// A package's files broken ahead with one dpkg backup link, at most (each
/// holds a descriptor until its window); the rest go with later links.
const MAX_MATES: usize = 400;
/// Links broken in one window, at most (each holds three descriptors).
const PER_WINDOW: usize = 128;

pub struct Supervisor {
    guest: String,
    windows: Windows,
    /// The guest's hash store (for crash recovery: its entries are made
    /// immutable again if we die in a window).
    store: Option<PathBuf>,
    epoll: OwnedFd,
    /// Shared (Arc) so one can be used while `self` is borrowed mutably.
    listeners: HashMap<RawFd, Arc<OwnedFd>>,
    stats: Stats,
    messages: Vec<String>,
    /// The guest's dpkg lists, while a dpkg run is unpacking.
    dpkg_index: Option<dpkg::Index>,
}

/// Whether a guest's processes are supervised: it takes part in
/// unification (`apps/vunify/`), so its tree may hold store entries.
pub fn wanted(paths: &Paths, guest: &str) -> bool {
    config::takes_part(paths, guest)
}

/// The kernel features copy-on-write needs: seccomp user notification with
/// SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5) and the cgroup v2 freezer (5.2).
pub fn kernel_supported() -> Result<(), UnifyError> {
    let release = nix::sys::utsname::uname()?.release().to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < (5, 5) {
        return Err(UnifyError::OldKernel { release });
    }
    Ok(())
}

impl Supervisor {
    /// The supervisor of guest `name`'s unified files.
    pub fn new(paths: &Paths, name: &str) -> Result<Supervisor, UnifyError> {
        kernel_supported()?;
        // A dpkg run's batch holds a few hundred descriptors at once.
        crate::sys::raise_fd_limit(None);
        let vdir = crate::config::load_guest(paths, name).map(|g| g.vdir).unwrap_or_else(|_| paths.default_vdir(name));
        let store = config::store_candidates(paths, name).ok().and_then(|c| config::pick_store(&c, &vdir, name).ok());
        let epoll = crate::sys::poll::epoll_create().what(|| "creating the supervisor's epoll")?;
        Ok(Supervisor {
            guest: name.to_string(),
            windows: Windows::for_guest(paths, name),
            store,
            epoll,
            listeners: HashMap::new(),
            stats: Stats::default(),
            messages: Vec::new(),
            dpkg_index: None,
        })
    }

    /// Supervises the process tree whose filter this listener belongs to.
    pub fn add_listener(&mut self, listener: OwnedFd) -> io::Result<()> {
        let fd = listener.as_raw_fd();
        // The listener must not leak into processes the monitor starts.
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        notify::set_sync_wake_up(listener.as_fd());
        crate::sys::poll::epoll_add(self.epoll.as_fd(), listener.as_fd(), libc::EPOLLIN as u32, fd as u64)?;
        self.listeners.insert(fd, Arc::new(listener));
        Ok(())
    }

    /// While the guest starts, `vserver start` holds the start lock a window
    /// takes: call with true before the guest's first process may run and
    /// with false once the start is reported (see Windows::set_start_lock_held).
    pub fn set_start_lock_held(&self, held: bool) {
        self.windows.set_start_lock_held(held);
    }

    /// Readable when some listener has a notification (or lost its last task).
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Error messages since the last call (for the monitor's log).
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    /// Answers every notification that is waiting, without blocking: calls
    /// that need a link broken are handled together, in one window.
    pub fn handle_ready(&mut self) -> Result<(), UnifyError> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let n = match crate::sys::poll::epoll_wait(self.epoll.as_fd(), &mut events, 0) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(()),
            Err(err) => return Err(UnifyError::Io { what: "epoll_wait".into(), err }),
        };
        let mut waiting: Vec<Waiting> = Vec::new();
        for ev in &events[..n] {
            let fd = ev.u64 as RawFd;
            if ev.events & libc::EPOLLIN as u32 != 0 {
                self.receive_all(fd, &mut waiting);
            } else if ev.events & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                self.remove_listener(fd);
            }
        }
        if !waiting.is_empty() {
            self.break_links(&mut waiting);
        }
        for w in waiting {
            if let Some(l) = self.listeners.get(&w.listener) {
                let answer = match w.errno {
                    Some(errno) => notify::fail_call(l.as_fd(), w.id, errno),
                    None => notify::continue_call(l.as_fd(), w.id),
                };
                if let Err(e) = answer {
                    self.note(format!("answering a notification: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Runs until `stop` is set (for a dedicated thread).
    pub fn run_until(&mut self, stop: &AtomicBool) -> Result<(), UnifyError> {
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(self.epoll.as_fd(), PollFlags::POLLIN)];
            if matches!(nix::poll::poll(&mut fds, 100u8), Ok(n) if n > 0) {
                self.handle_ready()?;
            }
        }
        Ok(())
    }

    fn remove_listener(&mut self, fd: RawFd) {
        if let Some(l) = self.listeners.remove(&fd) {
            let _ = crate::sys::poll::epoll_del(self.epoll.as_fd(), l.as_fd());
        }
    }

    /// Receives what one listener has: a call that needs nothing is let
    /// through at once, the others wait for the window.
    fn receive_all(&mut self, fd: RawFd, waiting: &mut Vec<Waiting>) {
        let Some(listener) = self.listeners.get(&fd).map(Arc::clone) else { return };
        let listener = listener.as_fd();
        for _ in 0..64 {
            if !has_input(listener) {
                break;
            }
            let n = match notify::recv(listener) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    self.note(format!("receiving a notification: {e}"));
                    break;
                }
            };
            self.stats.notifications += 1;
            let started = std::time::Instant::now();
            let looked = self.look(listener, &n);
            self.stats.look_secs += started.elapsed().as_secs_f64();
            let breaks = match looked {
                Ok(b) => b,
                Err(e) => {
                    self.note(format!("pid {} call {}: {e}", n.pid, n.data.nr));
                    Vec::new()
                }
            };
            if breaks.is_empty() {
                if let Err(e) = notify::continue_call(listener, n.id) {
                    self.note(format!("answering a notification: {e}"));
                }
            } else {
                waiting.push(Waiting { listener: fd, id: n.id, breaks, errno: None });
            }
        }
    }

    /// The store entries this call would change that its task may change.
    fn look(&mut self, listener: BorrowedFd, n: &Notification) -> io::Result<Vec<Break>> {
        let args: Vec<PathArg> = match calls::decode(i64::from(n.data.nr), &n.data.args) {
            Call::Nothing => return Ok(Vec::new()),
            Call::Paths(v) => v,
            Call::OpenAt2 { dirfd, addr, how, size } => {
                let mut buf = [0u8; 24];
                let want = (size as usize).min(buf.len());
                let got = notify::read_memory(n.pid as i32, how, &mut buf[..want])?;
                match calls::decode_open_how(dirfd, addr, &buf[..got]) {
                    Call::Paths(v) => v,
                    _ => return Ok(Vec::new()),
                }
            }
        };
        let tid = n.pid as i32;
        let task = Task::open(tid)?;
        let mut creds: Option<Creds> = None;
        let mut out = Vec::new();
        for a in args {
            let path = notify::read_string(tid, a.addr)?;
            let Some(found) = task.find(a.dirfd, &path, a.follow)? else { continue };
            let Some(key) = breaker::entry_key(&found)? else { continue };
            if creds.is_none() {
                creds = Some(Creds::of(tid)?);
            }
            let creds = creds.as_ref().expect("just read");
            let xattr = match a.op {
                Op::Xattr { name } => notify::read_string(tid, name)?,
                _ => Vec::new(),
            };
            if !allowed(creds, a.op, &found, &xattr)? {
                continue;
            }
            out.push(Break { found, key });
            if let Op::Link { new } = a.op {
                if dpkg::is_backup_name(&notify::read_string(tid, new)?) {
                    out.extend(self.package_mates(&task, creds, &path)?);
                }
            }
        }
        // What we read from /proc/TID is the waiting task's only while its
        // notification is still pending (no pid reuse in between).
        if !notify::is_valid(listener, n.id) {
            return Ok(Vec::new());
        }
        Ok(out)
    }

    /// The other unified files of the package dpkg is unpacking (dpkg.rs)
    /// that the task may replace.
    fn package_mates(&mut self, task: &Task, creds: &Creds, path: &[u8]) -> io::Result<Vec<Break>> {
        let mut out = Vec::new();
        for mate in dpkg::package_mates(task, &mut self.dpkg_index, path) {
            if out.len() >= MAX_MATES {
                break;
            }
            let Some(found) = task.find(libc::AT_FDCWD, &mate, false)? else { continue };
            let Some(key) = breaker::entry_key(&found)? else { continue };
            if allowed(creds, Op::Name, &found, b"")? {
                out.push(Break { found, key });
            }
        }
        Ok(out)
    }

    /// Copies outside, swaps inside a window, for all the calls waiting
    /// (PER_WINDOW links at a time).
    fn break_links(&mut self, waiting: &mut [Waiting]) {
        let Some(store) = self.store.clone() else {
            self.note(format!("guest {}: no hash store found for its root; links are not broken", self.guest));
            return;
        };
        // (waiting call, link): one name is broken once, however many ask.
        let mut all: Vec<(usize, Break)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, w) in waiting.iter_mut().enumerate() {
            for b in w.breaks.drain(..) {
                if seen.insert(b.identity()) {
                    all.push((i, b));
                }
            }
        }
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(PER_WINDOW));
            let chunk = std::mem::replace(&mut all, rest);
            self.break_chunk(&store, chunk, waiting);
        }
    }

    fn break_chunk(&mut self, store: &std::path::Path, chunk: Vec<(usize, Break)>, waiting: &mut [Waiting]) {
        let mut prepared = Vec::new();
        let started = std::time::Instant::now();
        for (i, b) in chunk {
            match breaker::prepare(b) {
                Ok(Some(p)) => prepared.push(p),
                Ok(None) => {}
                // The call cannot get its private copy: it fails as a
                // write would on a full disk, not with a puzzling EPERM.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => waiting[i].errno = e.raw_os_error(),
                Err(e) => self.note(format!("copying a unified file: {e}")),
            }
        }
        self.stats.copy_secs += started.elapsed().as_secs_f64();
        if prepared.is_empty() {
            return;
        }
        let store = store.to_path_buf();
        if let Err(e) = mark_store_dirty(&store) {
            self.note(format!("{e:#}"));
            return;
        }
        let started = std::time::Instant::now();
        let window = match self.windows.open(&store) {
            Ok(w) => w,
            Err(e) => return self.note(format!("{e:#}")),
        };
        self.stats.windows += 1;
        for p in prepared {
            match p.swap() {
                Ok(Outcome::Broken) => self.stats.broken += 1,
                Ok(Outcome::Changed) => {}
                Err(e) => self.note(format!("breaking the link of a unified file: {e}")),
            }
        }
        if let Err(e) = window.close() {
            self.note(format!("{e:#}"));
        }
        self.stats.window_secs += started.elapsed().as_secs_f64();
    }

    fn note(&mut self, message: String) {
        self.stats.errors += 1;
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }
}

/// A call waiting for its links to be broken.
struct Waiting {
    listener: RawFd,
    id: u64,
    breaks: Vec<Break>,
    /// Fail it with this instead of letting it continue.
    errno: Option<i32>,
}

/// Whether the task could make this change to a file of its own
/// (`xattr`: the attribute's name, for Op::Xattr).
fn allowed(creds: &Creds, op: Op, found: &resolve::Found, xattr: &[u8]) -> io::Result<bool> {
    let file = Owner::of(&found.stx);
    Ok(match op {
        Op::Write => creds.may_write(&file),
        Op::Name => creds.may_change_name(&Owner::of(&resolve::statx(found.parent.as_fd(), c"")?), &file),
        Op::Link { .. } => creds.may_link(&file),
        Op::Chmod => creds.may_chmod(&file),
        Op::Chown => creds.may_chown(&file),
        Op::Times { now } => creds.may_set_times(&file, now),
        Op::Xattr { .. } => creds.may_set_xattr(&file, xattr),
    })
}

fn has_input(fd: BorrowedFd) -> bool {
    let mut p = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut p, 0u8), Ok(n) if n > 0) && p[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// `.vhashify/dirty` of the store: if the host dies while an entry's flag
/// is off, the next vhashify run makes every entry immutable again.
fn mark_store_dirty(store: &std::path::Path) -> Result<(), UnifyError> {
    let dirty = store.join(".vhashify/dirty");
    if dirty.exists() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&dirty)
        .what(|| format!("creating {}", dirty.display()))?;
    f.sync_all().what(|| format!("syncing {}", dirty.display()))
}
