//! The hash store: one directory per store root, entries content-addressed by
//! their key (BLAKE3 of metadata and content), fanned out as `ab/cdef…`.
//! Every entry is immutable and marked (`trusted.vhashify`, marker.rs),
//! except inside a window (window.rs) while links are added or taken away.
//! `.vhashify/` holds the lock, the staging directory where exchanged-out
//! guest inodes wait to be unlinked, the `dirty` marker that says an entry may
//! be without its immutable flag, and `format` (2: entries are marked).

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::{IoResultExt, UnifyError};
use super::hash::Key;
use super::marker;
use super::window::Windows;
use crate::sys::file as sys;

const META_DIR: &str = ".vhashify";
const DIRTY: &str = "dirty";
const FORMAT: &str = "format";
/// Format 2: every entry carries the mark. Older stores are marked on open.
const FORMAT_VERSION: &str = "2";

pub struct Store {
    pub root: PathBuf,
    root_fd: OwnedFd,
    meta_fd: OwnedFd,
    staging_fd: OwnedFd,
    pub dev: u64,
    index: HashMap<Key, u64>,
    inodes: HashSet<u64>,
    _lock: Option<OwnedFd>,
    dirty_marked: bool,
    /// An entry may still lack its immutable flag: leave the marker.
    keep_dirty: AtomicBool,
    tmp_counter: AtomicU64,
}

/// What opening the store found and fixed after an interrupted run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Repair {
    pub refrozen: u64,
    pub stale_removed: u64,
}

impl Store {
    /// Opens (creating when `create`) and locks a store. If a run died
    /// while an entry was not immutable, or left names in staging, or the
    /// store predates the marks, this is repaired in a window first: staging
    /// emptied, every entry marked and immutable.
    pub fn open(root: &Path, create: bool, wait: bool, windows: &Windows) -> Result<Option<(Store, Repair)>, UnifyError> {
        if !root.exists() {
            if !create {
                return Ok(None);
            }
            std::fs::create_dir_all(root).what(|| format!("cannot create hash store {}", root.display()))?;
            std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let croot = sys::cstr(root.as_os_str().as_encoded_bytes())?;
        let root_fd = sys::open_at(cwd(), &croot, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .what(|| format!("cannot open hash store {}", root.display()))?;
        let dev = sys::fstat(root_fd.as_fd())?.st_dev;
        if !create {
            let meta_fd = match sys::open_at(root_fd.as_fd(), &c(META_DIR), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(_) => sys::open_at(root_fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
            };
            let staging_fd = sys::open_at(meta_fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let mut s = Store::assemble(root, root_fd, meta_fd, staging_fd, dev, None);
            s.load_index()?;
            return Ok(Some((s, Repair::default())));
        }
        sys::mkdir_at(root_fd.as_fd(), &c(META_DIR), 0o700)?;
        let meta_fd = sys::open_at(root_fd.as_fd(), &c(META_DIR), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let lock = lock(&meta_fd, root, wait)?;
        sys::mkdir_at(meta_fd.as_fd(), c"staging", 0o700)?;
        let staging_fd = sys::open_at(meta_fd.as_fd(), c"staging", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let mut store = Store::assemble(root, root_fd, meta_fd, staging_fd, dev, Some(lock));
        let repair = store.repair(windows)?;
        store.load_index()?;
        Ok(Some((store, repair)))
    }

    fn repair(&mut self, windows: &Windows) -> Result<Repair, UnifyError> {
        let dirty = sys::fstatat_nofollow(self.meta_fd.as_fd(), &c(DIRTY)).is_ok();
        let stale = self.staging_names()?;
        let format = std::fs::read_to_string(self.root.join(META_DIR).join(FORMAT)).unwrap_or_default();
        let current = format.trim() == FORMAT_VERSION;
        if !dirty && stale.is_empty() && (current || !self.has_entries()?) {
            if !current {
                self.write_format()?;
            }
            return Ok(Repair::default());
        }
        // Staging may hold names of entries, and unlinking one needs its
        // flag off; marking an entry too: only inside a window.
        let window = windows.open(&self.root)?;
        let stale_removed = self.clean_staging(&stale)?;
        let refrozen = refreeze_entries(&self.root)?;
        window.close()?;
        self.write_format()?;
        self.clear_dirty()?;
        Ok(Repair { stale_removed, refrozen })
    }

    fn write_format(&self) -> Result<(), UnifyError> {
        let path = self.root.join(META_DIR).join(FORMAT);
        std::fs::write(&path, format!("{FORMAT_VERSION}\n")).what(|| format!("writing {}", path.display()))
    }

    fn has_entries(&self) -> Result<bool, UnifyError> {
        let mut any = false;
        self.for_each_entry(|_, _, _| {
            any = true;
            Ok(())
        })?;
        Ok(any)
    }

    fn assemble(root: &Path, root_fd: OwnedFd, meta_fd: OwnedFd, staging_fd: OwnedFd, dev: u64, lock: Option<OwnedFd>) -> Store {
        Store {
            root: root.to_path_buf(),
            root_fd,
            meta_fd,
            staging_fd,
            dev,
            index: HashMap::new(),
            inodes: HashSet::new(),
            _lock: lock,
            dirty_marked: false,
            keep_dirty: AtomicBool::new(false),
            tmp_counter: AtomicU64::new(0),
        }
    }

    /// Reads every fan-out directory: entry names give keys, directory
    /// entries give inode numbers, without a stat per entry.
    fn load_index(&mut self) -> Result<(), UnifyError> {
        let mut found = Vec::new();
        self.for_each_entry(|_, name, ino| {
            found.push((name, ino));
            Ok(())
        })?;
        for (name, ino) in found {
            if let Some(key) = Key::from_hex(&name) {
                self.index.insert(key, ino);
                self.inodes.insert(ino);
            }
        }
        Ok(())
    }

    /// Calls `f(fan-out dir fd, full hex name, inode)` for every entry.
    fn for_each_entry(&self, f: impl FnMut(BorrowedFd, String, u64) -> Result<(), UnifyError>) -> Result<(), UnifyError> {
        for_each_entry(self.root_fd.as_fd(), &self.root, f)
    }

    pub fn lookup(&self, key: &Key) -> Option<u64> {
        self.index.get(key).copied()
    }

    pub fn is_entry_inode(&self, ino: u64) -> bool {
        self.inodes.contains(&ino)
    }

    pub fn entry_count(&self) -> usize {
        self.index.len()
    }

    pub fn inode_set(&self) -> &HashSet<u64> {
        &self.inodes
    }

    /// Which entry each inode is (the index the other way round).
    pub fn keys_by_inode(&self) -> HashMap<u64, Key> {
        self.index.iter().map(|(k, i)| (*i, *k)).collect()
    }

    /// Removes an entry's store name. Its flag must be off (inside a window)
    /// and no guest may link to it any more.
    pub fn remove_entry(&mut self, key: &Key) -> io::Result<()> {
        let fan = self.fan_dir(key)?;
        sys::unlink_at(fan.as_fd(), &Store::entry_name(key), 0)?;
        if let Some(ino) = self.index.remove(key) {
            self.inodes.remove(&ino);
        }
        Ok(())
    }

    /// Whether this process holds the store's lock (opened for writing).
    pub fn is_locked(&self) -> bool {
        self._lock.is_some()
    }

    pub fn record(&mut self, key: Key, ino: u64) {
        self.index.insert(key, ino);
        self.inodes.insert(ino);
    }

    /// The fan-out directory of a key, created on demand.
    pub fn fan_dir(&self, key: &Key) -> io::Result<OwnedFd> {
        let hex = key.hex();
        let name = c(&hex[..2]);
        sys::mkdir_at(self.root_fd.as_fd(), &name, 0o700)?;
        sys::open_at(self.root_fd.as_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
    }

    pub fn entry_name(key: &Key) -> CString {
        c(&key.hex()[2..])
    }

    pub fn entry_path(&self, key: &Key) -> PathBuf {
        let hex = key.hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// Opens an entry for reading (never for writing: leases need O_RDONLY).
    pub fn open_entry(&self, key: &Key) -> io::Result<OwnedFd> {
        let fan = self.fan_dir(key)?;
        sys::open_at(fan.as_fd(), &Store::entry_name(key), libc::O_RDONLY | libc::O_NONBLOCK, 0)
    }

    pub fn staging(&self) -> BorrowedFd<'_> {
        self.staging_fd.as_fd()
    }

    pub fn tmp_name(&self) -> CString {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        c(&format!("t{}-{n}", std::process::id()))
    }

    /// Must be called before anything that can leave an entry mutable
    /// (adopting a guest inode, clearing the flag to add links).
    pub fn mark_dirty(&mut self) -> io::Result<()> {
        if !self.dirty_marked {
            let fd = sys::open_at(self.meta_fd.as_fd(), &c(DIRTY), libc::O_WRONLY | libc::O_CREAT, 0o600)?;
            sys::fsync(fd.as_fd())?;
            sys::fsync(self.meta_fd.as_fd())?;
            self.dirty_marked = true;
        }
        Ok(())
    }

    pub fn keep_dirty(&self) {
        self.keep_dirty.store(true, Ordering::Relaxed);
    }

    /// Ends a run: the marker goes unless some entry may still be mutable.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.dirty_marked && !self.keep_dirty.load(Ordering::Relaxed) {
            self.clear_dirty()?;
        }
        Ok(())
    }

    /// After every entry is immutable again.
    pub fn clear_dirty(&mut self) -> io::Result<()> {
        match sys::unlink_at(self.meta_fd.as_fd(), &c(DIRTY), 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            _ => {}
        }
        self.dirty_marked = false;
        Ok(())
    }

    fn staging_names(&self) -> Result<Vec<CString>, UnifyError> {
        let dir = nix::dir::Dir::from_fd(nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(&self.staging_fd))?)?;
        let mut names = Vec::new();
        for e in dir.into_iter() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(CString::from(e.file_name()));
            }
        }
        Ok(names)
    }

    /// Anything in staging belongs to a run that died (we hold the lock).
    /// Inside a window: a name may be a link to an entry, whose flag must
    /// be off to unlink it (refreeze_entries sets it again).
    fn clean_staging(&self, names: &[CString]) -> Result<u64, UnifyError> {
        for n in names {
            if let Ok(fd) = sys::open_at(self.staging_fd.as_fd(), n, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
                let _ = sys::set_immutable(fd.as_fd(), false);
            }
            sys::unlink_at(self.staging_fd.as_fd(), n, 0)
                .what(|| format!("cannot remove stale {}/.vhashify/staging/{}", self.root.display(), n.to_string_lossy()))?;
        }
        Ok(names.len() as u64)
    }

    /// Removes entries no guest links to any more (link count 1: the store's
    /// own name). Returns (entries removed, bytes freed).
    pub fn gc(&mut self) -> Result<(u64, u64), UnifyError> {
        let (mut removed, mut bytes) = (0, 0);
        let mut gone = Vec::new();
        self.for_each_entry(|fan, name, _| {
            let cname = c(&name[2..]);
            let st = sys::fstatat_nofollow(fan, &cname)?;
            if st.st_nlink != 1 {
                return Ok(());
            }
            let fd = sys::open_at(fan, &cname, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            sys::set_immutable(fd.as_fd(), false)?;
            sys::unlink_at(fan, &cname, 0).what(|| format!("cannot remove store entry {name}"))?;
            removed += 1;
            bytes += st.st_blocks as u64 * 512;
            gone.push(name);
            Ok(())
        })?;
        for name in gone {
            if let Some(key) = Key::from_hex(&name) {
                if let Some(ino) = self.index.remove(&key) {
                    self.inodes.remove(&ino);
                }
            }
        }
        Ok((removed, bytes))
    }
}

/// Calls `f(fan-out dir fd, full hex name, inode)` for every entry of the
/// store whose root is open as `root_fd`.
fn for_each_entry(
    root_fd: BorrowedFd,
    root: &Path,
    mut f: impl FnMut(BorrowedFd, String, u64) -> Result<(), UnifyError>,
) -> Result<(), UnifyError> {
    for fan in 0..=255u8 {
        let fan_name = format!("{fan:02x}");
        let fd = match sys::open_at(root_fd, &c(&fan_name), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(err) => return Err(UnifyError::Io { what: format!("{}/{fan_name}", root.display()), err }),
        };
        let dir = nix::dir::Dir::from_fd(nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(&fd))?)?;
        let mut entries = Vec::new();
        for e in dir.into_iter() {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name.len() == 62 && name.iter().all(u8::is_ascii_hexdigit) {
                entries.push((format!("{fan_name}{}", String::from_utf8_lossy(name)), e.ino()));
            }
        }
        for (name, ino) in entries {
            f(fd.as_fd(), name, ino)?;
        }
    }
    Ok(())
}

/// Makes every entry of the store at `root` marked and immutable (after an
/// interrupted run or window, and to mark the entries of an older store).
/// Needs no store lock, but a window: marking an immutable entry means
/// clearing its flag for a moment. Returns how many entries were changed.
pub fn refreeze_entries(root: &Path) -> Result<u64, UnifyError> {
    let croot = sys::cstr(root.as_os_str().as_encoded_bytes())?;
    let root_fd = match sys::open_at(cwd(), &croot, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(0),
        other => other.what(|| format!("cannot open hash store {}", root.display()))?,
    };
    let mut fixed = 0;
    for_each_entry(root_fd.as_fd(), root, |fan, name, _| {
        let fd = sys::open_at(fan, &c(&name[2..]), libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        let key = Key::from_hex(&name).expect("entry names are keys");
        let marked = marker::get(fd.as_fd())? == Some(key);
        let immutable = sys::is_immutable(fd.as_fd())?;
        if marked && immutable {
            return Ok(());
        }
        if !marked {
            sys::set_immutable(fd.as_fd(), false)?;
            marker::set(fd.as_fd(), &key).what(|| format!("marking store entry {}/{}/{}", root.display(), &name[..2], &name[2..]))?;
        }
        sys::set_immutable(fd.as_fd(), true)?;
        fixed += 1;
        Ok(())
    })?;
    Ok(fixed)
}

/// The store's lock; `UnifyError::Locked` when another process holds it.
fn lock(meta_fd: &OwnedFd, root: &Path, wait: bool) -> Result<OwnedFd, UnifyError> {
    let fd = sys::open_at(meta_fd.as_fd(), c"lock", libc::O_RDWR | libc::O_CREAT, 0o600)?;
    match sys::flock(fd.as_fd(), wait) {
        Ok(()) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(UnifyError::Locked { store: root.to_path_buf() }),
        Err(err) => Err(UnifyError::Io { what: format!("cannot lock hash store {}", root.display()), err }),
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("store names have no NUL")
}

fn cwd() -> BorrowedFd<'static> {
    crate::sys::file::cwd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_fan_out_by_the_first_two_hex_digits() {
        let key = Key([0xab; 32]);
        let hex = key.hex();
        assert_eq!(Store::entry_name(&key).to_str().unwrap(), &hex[2..]);
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("abab"));
        assert_eq!(Key::from_hex(&hex), Some(key));
    }

    fn no_guests(dir: &Path) -> Windows {
        let paths = crate::paths::Paths {
            confdir: dir.join("conf"),
            vdirbase: dir.join("guests"),
            rundir: dir.join("run"),
            cgroup_root: dir.join("no-cgroups"),
        };
        Windows::new(&paths)
    }

    #[test]
    fn a_store_is_created_locked_and_indexed() {
        let dir = std::env::temp_dir().join(format!("vs-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let windows = no_guests(&dir.with_extension("paths"));
        let (store, repair) = Store::open(&dir, true, false, &windows).unwrap().unwrap();
        assert_eq!(store.entry_count(), 0);
        assert_eq!(repair.stale_removed, 0);
        assert!(dir.join(".vhashify/staging").is_dir());
        // A second opener cannot take the lock without waiting.
        let err = Store::open(&dir, true, false, &windows).err().expect("lock must be exclusive").to_string();
        assert!(err.contains("--wait"), "{err}");
        drop(store);
        assert!(Store::open(&dir, true, false, &windows).is_ok());
        assert_eq!(std::fs::read_to_string(dir.join(".vhashify/format")).unwrap(), "2\n");
        std::fs::remove_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(dir.with_extension("paths"));
    }
}
