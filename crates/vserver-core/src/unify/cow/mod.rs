//! Copy-on-write for unified guests: the supervisor of the calls with which
//! a guest process changes a file that exists (open for writing, truncate,
//! rename, link, unlink, chmod, chown, utimes, xattrs), sent to it by the
//! guest's seccomp filter (seccomp::cow_notify_filter) through a listener
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
mod notify;
mod resolve;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use self::breaker::{Break, Outcome};
use self::calls::{Call, Op, PathArg};
use self::creds::{Creds, Owner};
use self::notify::Notification;
use self::resolve::Task;
use super::config;
use super::window::Windows;
use crate::paths::Paths;

/// What the supervisor did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub notifications: u64,
    /// Links broken (private copies put in place).
    pub broken: u64,
    pub windows: u64,
    /// Calls that could not be looked at or a link that could not be
    /// broken: they continued, and the kernel decided (EPERM for an entry).
    pub errors: u64,
}

/// How many error messages are kept until taken.
const MAX_MESSAGES: usize = 20;

pub struct Supervisor {
    guest: String,
    windows: Windows,
    /// The guest's hash store (for crash recovery: its entries are made
    /// immutable again if we die in a window).
    store: Option<PathBuf>,
    epoll: OwnedFd,
    listeners: HashMap<RawFd, OwnedFd>,
    stats: Stats,
    messages: Vec<String>,
}

/// The kernel features copy-on-write needs: seccomp user notification with
/// SECCOMP_USER_NOTIF_FLAG_CONTINUE (5.5) and the cgroup v2 freezer (5.2).
pub fn kernel_supported() -> Result<(), String> {
    let release = nix::sys::utsname::uname().map_err(|e| e.to_string())?.release().to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < (5, 5) {
        return Err(format!("copy-on-write for unified guests needs kernel 5.5 or newer (seccomp user notification); this is {release}"));
    }
    Ok(())
}

impl Supervisor {
    /// The supervisor of guest `name`'s unified files.
    pub fn new(paths: &Paths, name: &str) -> anyhow::Result<Supervisor> {
        kernel_supported().map_err(anyhow::Error::msg)?;
        let vdir = crate::config::load_guest(paths, name).map(|g| g.vdir).unwrap_or_else(|_| paths.default_vdir(name));
        let store = config::store_candidates(paths, name).ok().and_then(|c| config::pick_store(&c, &vdir, name).ok());
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error()).context("creating the supervisor's epoll");
        }
        Ok(Supervisor {
            guest: name.to_string(),
            windows: Windows::for_guest(paths, name),
            store,
            // SAFETY: a new descriptor we own.
            epoll: unsafe { OwnedFd::from_raw_fd(epfd) },
            listeners: HashMap::new(),
            stats: Stats::default(),
            messages: Vec::new(),
        })
    }

    /// Supervises the process tree whose filter this listener belongs to.
    pub fn add_listener(&mut self, listener: OwnedFd) -> io::Result<()> {
        let fd = listener.as_raw_fd();
        // The listener must not leak into processes the monitor starts.
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: fd as u64 };
        // SAFETY: ev is a valid epoll_event; both descriptors are ours.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.listeners.insert(fd, listener);
        Ok(())
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
    pub fn handle_ready(&mut self) -> anyhow::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        // SAFETY: events is valid for its length.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) { Ok(()) } else { Err(e).context("epoll_wait") };
        }
        let mut waiting: Vec<(RawFd, u64, Vec<Break>)> = Vec::new();
        for ev in &events[..n as usize] {
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
        for (fd, id, _) in waiting {
            if let Some(l) = self.listeners.get(&fd) {
                if let Err(e) = notify::continue_call(l.as_fd(), id) {
                    self.note(format!("answering a notification: {e}"));
                }
            }
        }
        Ok(())
    }

    /// Runs until `stop` is set (for a dedicated thread).
    pub fn run_until(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [libc::pollfd { fd: self.epoll.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            // SAFETY: fds is valid for one entry.
            if unsafe { libc::poll(fds.as_mut_ptr(), 1, 100) } > 0 {
                self.handle_ready()?;
            }
        }
        Ok(())
    }

    fn remove_listener(&mut self, fd: RawFd) {
        if let Some(l) = self.listeners.remove(&fd) {
            // SAFETY: removing a descriptor we own from our epoll set.
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, l.as_raw_fd(), std::ptr::null_mut()) };
        }
    }

    /// Receives what one listener has: a call that needs nothing is let
    /// through at once, the others wait for the window.
    fn receive_all(&mut self, fd: RawFd, waiting: &mut Vec<(RawFd, u64, Vec<Break>)>) {
        let Some(listener) = self.listeners.get(&fd).map(|l| l.as_raw_fd()) else { return };
        // SAFETY: the listener stays open while it is in self.listeners.
        let listener = unsafe { BorrowedFd::borrow_raw(listener) };
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
            let breaks = match self.look(listener, &n) {
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
                waiting.push((fd, n.id, breaks));
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
            if allowed(creds.as_ref().expect("just read"), a.op, &found)? {
                out.push(Break { found, key });
            }
        }
        // What we read from /proc/TID is the waiting task's only while its
        // notification is still pending (no pid reuse in between).
        if !notify::is_valid(listener, n.id) {
            return Ok(Vec::new());
        }
        Ok(out)
    }

    /// Copies outside, swaps inside one window for all the calls waiting.
    fn break_links(&mut self, waiting: &mut [(RawFd, u64, Vec<Break>)]) {
        let Some(store) = self.store.clone() else {
            self.note(format!("guest {}: no hash store found for its root; links are not broken", self.guest));
            return;
        };
        let mut prepared = Vec::new();
        for (_, _, breaks) in waiting.iter_mut() {
            for b in breaks.drain(..) {
                match breaker::prepare(b) {
                    Ok(Some(p)) => prepared.push(p),
                    Ok(None) => {}
                    Err(e) => self.note(format!("copying a unified file: {e}")),
                }
            }
        }
        if prepared.is_empty() {
            return;
        }
        if let Err(e) = mark_store_dirty(&store) {
            self.note(format!("{e:#}"));
            return;
        }
        let mut window = match self.windows.open() {
            Ok(w) => w,
            Err(e) => return self.note(format!("{e:#}")),
        };
        if let Err(e) = window.note_store(&store) {
            return self.note(format!("{e:#}"));
        }
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
    }

    fn note(&mut self, message: String) {
        self.stats.errors += 1;
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }
}

/// Whether the task could make this change to a file of its own.
fn allowed(creds: &Creds, op: Op, found: &resolve::Found) -> io::Result<bool> {
    let file = Owner::of(&found.stx);
    Ok(match op {
        Op::Write => creds.may_write(&file),
        Op::Name => creds.may_change_name(&Owner::of(&resolve::statx(found.parent.as_fd(), c"")?), &file),
        Op::Link => creds.may_link(&file),
        Op::Chmod => creds.may_chmod(&file),
        Op::Chown => creds.may_chown(&file),
        Op::Times { now } => creds.may_set_times(&file, now),
        Op::Xattr => creds.may_set_xattr(&file),
    })
}

fn has_input(fd: BorrowedFd) -> bool {
    let mut p = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: p is valid for one entry.
    unsafe { libc::poll(p.as_mut_ptr(), 1, 0) > 0 && p[0].revents & libc::POLLIN != 0 }
}

/// `.vhashify/dirty` of the store: if the host dies while an entry's flag
/// is off, the next vhashify run makes every entry immutable again.
fn mark_store_dirty(store: &std::path::Path) -> anyhow::Result<()> {
    let dirty = store.join(".vhashify/dirty");
    if dirty.exists() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(&dirty).with_context(|| format!("creating {}", dirty.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", dirty.display()))
}
