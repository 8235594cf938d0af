//! Phase two of a run: for every key, make all its guest paths one inode, the
//! store entry. The safe link protocol, per guest path:
//!
//! 1. resolve the path again with openat2 (no symlinks, no mount crossing),
//!    open the file by fd, check it is still the inode we hashed with the same
//!    ctime (nothing changed it since) and take a read lease (nobody can open
//!    it for writing or truncate it until we are done);
//! 2. link the store entry to a temporary name in the store's staging dir;
//! 3. renameat2(RENAME_EXCHANGE) that name with the guest path: the path
//!    never disappears and only ever holds the old inode or the entry, whose
//!    content is the same;
//! 4. check that what came out is the inode we hashed (dev, ino, size,
//!    mtime); if not, exchange back;
//! 5. unlink the staging name, freeing the old inode if that was its last name.
//!
//! Entries are immutable, and the kernel refuses link() to, and rename of, an
//! immutable inode, so adding links means: clear the flag, link the whole
//! group, mark the entry and set the flag again, all inside a window
//! (window.rs: every running guest frozen), so no guest process runs while
//! the flag is off. Groups are linked in windows of at most WINDOW_BUDGET,
//! with at least as long between them, so running guests are never stopped
//! for long. As a last check the entry's metadata is compared with what it
//! was and put back if anything changed it.
//!
//! A key is linked only when it is shared: an entry exists already, or the
//! files are in at least two trees. A file only one guest has stays private
//! and writable (its duplicates inside that guest too).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::copy;
use super::error::UnifyError;
use super::hash::{Key, Meta};
use super::hook;
use super::marker;
use super::scan::{open_regular, FileId, Hashed, Skip};
use super::store::Store;
use super::summary::{Progress, Summary};
use super::walk::show;
use super::window::Windows;
use crate::sys::file as sys;

/// The longest a window of linking keeps guests frozen (plus one group).
const WINDOW_BUDGET: Duration = Duration::from_millis(25);

/// A guest tree as phase two needs it.
pub struct Tree {
    pub name: String,
    pub root: OwnedFd,
    pub running: bool,
}

pub struct LinkOptions {
    pub dry_run: bool,
    pub reflink: bool,
    pub progress: bool,
    pub threads: usize,
}

pub fn link_all(
    store: &mut Store,
    trees: &[Tree],
    mut hashed: Vec<Hashed>,
    opts: &LinkOptions,
    windows: &Windows,
    sum: &mut Summary,
) -> Result<Linked, UnifyError> {
    hashed.sort_unstable_by(|a, b| (a.key, a.target, &a.rel).cmp(&(b.key, b.target, &b.rel)));
    let mut groups: Vec<&[Hashed]> = Vec::new();
    let mut linked = Linked::default();
    for g in hashed.chunk_by(|a, b| a.key == b.key) {
        if store.lookup(&g[0].key).is_some() || g.iter().any(|m| m.target != g[0].target) {
            groups.push(g);
        } else {
            sum.unshared += g.len() as u64;
            linked.unshared.extend(g.iter().map(|m| (m.id, m.key)));
        }
    }
    if opts.dry_run {
        for g in groups {
            dry_run_group(store, g, sum);
        }
        return Ok(linked);
    }
    let next = AtomicUsize::new(0);
    while next.load(Ordering::Relaxed) < groups.len() {
        // Reflinked entries are never shared with a guest: no window needed.
        let window = if opts.reflink { None } else { Some(windows.open(&store.root)?) };
        let deadline = Instant::now() + WINDOW_BUDGET;
        let results = link_groups(store, trees, &groups, &next, deadline, opts);
        let frozen_for = window.as_ref().map(|w| (w.elapsed(), w.froze_anything()));
        if let Some(w) = window {
            w.close()?;
        }
        for (s, new, cloned) in results {
            sum.merge(s);
            for (key, ino) in new {
                store.record(key, ino);
            }
            linked.cloned.extend(cloned);
        }
        if let Some((took, froze)) = frozen_for {
            sum.windows += 1;
            sum.window_secs += took.as_secs_f64();
            // Let the guests run at least as long as they were stopped.
            if froze && next.load(Ordering::Relaxed) < groups.len() {
                std::thread::sleep(took);
            }
        }
    }
    Ok(linked)
}

/// One worker's result: its summary, the store entries it made (key,
/// inode) and the files it cloned.
type WorkerResult = (Summary, Vec<(Key, u64)>, Vec<(FileId, Key)>);

/// Links groups until the deadline, on several workers: groups touch
/// disjoint entries and paths, and the work mostly waits on the disk.
fn link_groups(
    store: &Store,
    trees: &[Tree],
    groups: &[&[Hashed]],
    next: &AtomicUsize,
    deadline: Instant,
    opts: &LinkOptions,
) -> Vec<WorkerResult> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..opts.threads.max(1))
            .map(|w| {
                s.spawn(move || {
                    let mut progress = Progress::new(opts.progress && w == 0);
                    let (mut sum, mut new, mut cloned) = (Summary::default(), Vec::new(), Vec::new());
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(group) = groups.get(i) else { break };
                        progress.show("linking", i as u64, Some(groups.len() as u64));
                        let mut g = Group {
                            store,
                            trees,
                            reflink: opts.reflink,
                            held: Vec::new(),
                            sum: &mut sum,
                            new: &mut new,
                            cloned: &mut cloned,
                            clone_source: None,
                        };
                        g.run(group);
                    }
                    progress.finish();
                    (sum, new, cloned)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("link worker panicked")).collect()
    })
}

fn dry_run_group(store: &mut Store, group: &[Hashed], sum: &mut Summary) {
    let existing = store.lookup(&group[0].key).is_some();
    let first_ino = group[0].id.ino;
    let linkable = group.iter().filter(|m| existing || m.id.ino != first_ino);
    for m in linkable {
        sum.linked += 1;
        sum.bytes_saved += m.id.size;
    }
    if !existing {
        sum.new_entries += 1;
        store.record(group[0].key, first_ino);
    }
}

/// One key's guest paths being made one inode.
struct Group<'a> {
    store: &'a Store,
    trees: &'a [Tree],
    reflink: bool,
    /// Guest inodes verified in this group, with their leases still held: a
    /// second name of the same inode needs no ctime check (our own exchange
    /// of the first name changed its ctime).
    held: Vec<(u64, File)>,
    sum: &'a mut Summary,
    /// Entries this worker created, recorded in the store index afterwards.
    new: &'a mut Vec<(Key, u64)>,
    /// --reflink: the guest files made clones of an entry (so the next run
    /// can leave them alone), and the inode a new entry was cloned from
    /// (replacing it frees nothing: the entry holds its extents).
    cloned: &'a mut Vec<(FileId, Key)>,
    clone_source: Option<u64>,
}

/// What linking a key's group gave: new entries, and reflink clones.
#[derive(Default)]
pub struct Linked {
    pub unshared: Vec<(FileId, Key)>,
    pub cloned: Vec<(FileId, Key)>,
}

/// An entry being linked: its fd (read-only, leased) and metadata to keep.
struct Entry {
    fd: File,
    ino: u64,
    meta: Meta,
}

impl Group<'_> {
    fn run(&mut self, members: &[Hashed]) {
        let key = members[0].key;
        let (entry, rest) = match self.store.lookup(&key) {
            Some(_) => match self.open_existing(&key) {
                Ok(e) => (e, members),
                Err(m) => return self.sum.error(format!("store entry {}: {m}", self.store.entry_path(&key).display())),
            },
            None => match self.create_entry(&key, members) {
                Some((e, used)) => (e, &members[used..]),
                None => return,
            },
        };
        let entry = match self.unfreeze(entry, &key) {
            Ok(e) => e,
            Err(m) => return self.sum.error(format!("store entry {}: {m}", self.store.entry_path(&key).display())),
        };
        for m in rest.iter().filter(|m| m.id.ino != entry.ino) {
            match self.link_member(&entry, m) {
                Ok(saved) => {
                    self.sum.linked += 1;
                    self.sum.bytes_saved += saved;
                }
                Err(Skip::Busy) => self.sum.skipped += 1,
                Err(Skip::Gone) => {}
                Err(Skip::Error(e)) => self.sum.error(format!("{}: {}: {e}", self.trees[m.target].name, show(&m.rel))),
            }
        }
        if let Err(m) = self.refreeze(&entry, &key) {
            if sys::is_immutable(entry.fd.as_fd()).map_or(true, |on| !on) {
                self.store.keep_dirty();
            }
            self.sum.error(format!("store entry {}: {m}", self.store.entry_path(&key).display()));
        }
    }

    fn open_existing(&mut self, key: &Key) -> Result<Entry, String> {
        let fd = File::from(self.store.open_entry(key).map_err(|e| e.to_string())?);
        sys::take_read_lease(fd.as_fd()).map_err(|e| format!("cannot lease (open for writing somewhere?): {e}"))?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| e.to_string())?;
        let meta = Meta::read(fd.as_fd(), &st, false).map_err(|e| e.to_string())?;
        Ok(Entry { fd, ino: st.st_ino, meta })
    }

    /// Makes the first usable member the new entry: its own inode when its
    /// guest is not running, else a fresh copy nobody in the guest has open.
    /// Returns the entry and how many members were used up trying.
    fn create_entry(&mut self, key: &Key, members: &[Hashed]) -> Option<(Entry, usize)> {
        for (i, m) in members.iter().enumerate() {
            let tree = &self.trees[m.target];
            let copy = tree.running || self.reflink;
            match self.make_entry(key, m, copy) {
                Ok(entry) => {
                    self.new.push((*key, entry.ino));
                    self.sum.new_entries += 1;
                    // An adopted member is the entry already; a copied one still needs linking.
                    return Some((entry, if copy { i } else { i + 1 }));
                }
                Err(Skip::Busy) => self.sum.skipped += 1,
                Err(Skip::Gone) => {}
                Err(Skip::Error(e)) => self.sum.error(format!("{}: {}: {e}", tree.name, show(&m.rel))),
            }
        }
        None
    }

    fn make_entry(&mut self, key: &Key, m: &Hashed, copy: bool) -> Result<Entry, Skip> {
        let (_parent, _base, file, st) = self.open_member(m)?;
        let meta = Meta::read(file.as_fd(), &st, false).map_err(err)?;
        let fan = self.store.fan_dir(key).map_err(err)?;
        let name = Store::entry_name(key);
        if !copy {
            sys::link_fd(file.as_fd(), fan.as_fd(), &name).map_err(err)?;
            hook::point("adopted", &m.rel);
            let ino = st.st_ino;
            return Ok(Entry { fd: file, ino, meta });
        }
        let new = copy::tmpfile(fan.as_fd()).map_err(err)?;
        if self.reflink {
            sys::ficlone(new.as_fd(), file.as_fd()).map_err(reflink_err)?;
            self.clone_source = Some(st.st_ino);
        } else {
            copy::copy_content(file.as_fd(), new.as_fd(), st.st_size as u64).map_err(err)?;
        }
        copy::copy_meta(new.as_fd(), &meta, &st).map_err(err)?;
        sys::link_fd(new.as_fd(), fan.as_fd(), &name).map_err(err)?;
        drop(new);
        let fd = File::from(sys::open_at(fan.as_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(err)?);
        sys::take_read_lease(fd.as_fd()).map_err(err)?;
        let ino = sys::fstat(fd.as_fd()).map_err(err)?.st_ino;
        Ok(Entry { fd, ino, meta })
    }

    /// Inside the window: clear the flag (a window's recovery may have set
    /// it on an entry made by this run, so the flag itself is asked).
    fn unfreeze(&mut self, entry: Entry, _key: &Key) -> Result<Entry, String> {
        let immutable = sys::is_immutable(entry.fd.as_fd()).map_err(|e| e.to_string())?;
        if immutable && !self.reflink {
            hook::point("unfreeze", b"");
            sys::set_immutable(entry.fd.as_fd(), false).map_err(|e| format!("cannot clear the immutable flag: {e}"))?;
        }
        Ok(entry)
    }

    /// Marks the entry, sets the flag again and undoes any metadata change
    /// that slipped in while it was off (none can: guests are frozen).
    fn refreeze(&mut self, entry: &Entry, key: &Key) -> Result<(), String> {
        let fd = entry.fd.as_fd();
        if marker::get(fd).map_err(|e| e.to_string())? != Some(*key) {
            marker::set(fd, key).map_err(|e| format!("cannot mark the entry: {e}"))?;
        }
        sys::set_immutable(fd, true).map_err(|e| format!("cannot set the immutable flag: {e}"))?;
        hook::point("refrozen", b"");
        let st = sys::fstat(fd).map_err(|e| e.to_string())?;
        let now = Meta::read(fd, &st, false).map_err(|e| e.to_string())?;
        self.held.clear();
        if now == entry.meta {
            return Ok(());
        }
        sys::set_immutable(fd, false).map_err(|e| e.to_string())?;
        let restored = copy::restore_meta(fd, &entry.meta, &now);
        sys::set_immutable(fd, true).map_err(|e| e.to_string())?;
        restored.map_err(|e| format!("metadata changed while linking and could not be restored: {e}"))?;
        Err("metadata was changed while the immutable flag was off; restored".into())
    }

    /// Resolves a member's path again and opens it (step 1 of the protocol).
    fn open_member(&mut self, m: &Hashed) -> Result<(OwnedFd, CString, File, libc::stat), Skip> {
        let root = self.trees[m.target].root.as_fd();
        let (parent_rel, base) = match m.rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&m.rel[..i], &m.rel[i + 1..]),
            None => (&b"."[..], &m.rel[..]),
        };
        let parent =
            sys::open_beneath(root, &sys::cstr(parent_rel).map_err(err)?, libc::O_PATH | libc::O_DIRECTORY).map_err(|_| Skip::Gone)?;
        let base = sys::cstr(base).map_err(err)?;
        let (file, st) = open_regular(parent.as_fd(), &base, Some(m.id.ino))?;
        let seen = self.held.iter().any(|(ino, _)| *ino == st.st_ino);
        if !seen && FileId::of(&st) != m.id {
            return Err(Skip::Busy);
        }
        let flags = sys::get_flags(file.as_fd()).map_err(err)?;
        if flags & (sys::FS_IMMUTABLE_FL | sys::FS_APPEND_FL) != 0 {
            return Err(Skip::Error("has the immutable or append-only flag but is no store entry; left alone".into()));
        }
        Ok((parent, base, file, st))
    }

    fn link_member(&mut self, entry: &Entry, m: &Hashed) -> Result<u64, Skip> {
        let (parent, base, file, st) = self.open_member(m)?;
        hook::point("before-link", &m.rel);
        let staging = self.store.staging();
        let tmp = self.store.tmp_name();
        if self.reflink {
            let new = copy::tmpfile(staging).map_err(err)?;
            sys::ficlone(new.as_fd(), entry.fd.as_fd()).map_err(reflink_err)?;
            copy::copy_meta(new.as_fd(), &entry.meta, &st).map_err(err)?;
            sys::link_fd(new.as_fd(), staging, &tmp).map_err(err)?;
        } else {
            sys::link_fd(entry.fd.as_fd(), staging, &tmp).map_err(err)?;
        }
        hook::point("linked-tmp", &m.rel);
        if let Err(e) = sys::exchange(staging, &tmp, parent.as_fd(), &base) {
            let _ = sys::unlink_at(staging, &tmp, 0);
            return Err(err(e));
        }
        hook::point("exchanged", &m.rel);
        let mut saved = check_exchanged(staging, &tmp, parent.as_fd(), &base, &st)?;
        sys::unlink_at(staging, &tmp, 0).map_err(err)?;
        hook::point("unlinked", &m.rel);
        if self.reflink {
            if self.clone_source == Some(st.st_ino) {
                saved = 0;
            }
            // What is at the path now is our clone: remembered for the next run.
            if let Ok(now) = sys::fstatat_nofollow(parent.as_fd(), &base) {
                self.cloned.push((FileId::of(&now), m.key));
            }
        }
        self.held.push((st.st_ino, file));
        Ok(saved)
    }
}

/// Step 4: what came out of the exchange must be the inode we checked; if a
/// guest swapped something in between, put it back where it was.
fn check_exchanged(staging: BorrowedFd, tmp: &CString, parent: BorrowedFd, base: &CString, st: &libc::stat) -> Result<u64, Skip> {
    let out = sys::fstatat_nofollow(staging, tmp).map_err(err)?;
    let same = out.st_dev == st.st_dev
        && out.st_ino == st.st_ino
        && out.st_size == st.st_size
        && (out.st_mtime, out.st_mtime_nsec) == (st.st_mtime, st.st_mtime_nsec);
    if same {
        return Ok(if out.st_nlink == 1 { out.st_blocks as u64 * 512 } else { 0 });
    }
    let back = sys::exchange(staging, tmp, parent, base);
    let _ = sys::unlink_at(staging, tmp, 0);
    Err(Skip::Error(match back {
        Ok(()) => "was replaced while being linked; left as it was".into(),
        Err(e) => format!("was replaced while being linked and could not be put back: {e}"),
    }))
}

fn err(e: std::io::Error) -> Skip {
    Skip::Error(e.to_string())
}

fn reflink_err(e: std::io::Error) -> Skip {
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV) => {
            Skip::Error(format!("--reflink: the filesystem cannot share extents (FICLONE: {e}); use XFS or btrfs, or drop --reflink"))
        }
        _ => err(e),
    }
}
