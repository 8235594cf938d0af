//! The hash store: one directory per store root, entries content-addressed by
//! their key (BLAKE3 of metadata and content), fanned out as `ab/cdef…`.
//! Every entry is immutable except for the moment vhashify adds links to it.
//! `.vhashify/` holds the lock, the staging directory where exchanged-out
//! guest inodes wait to be unlinked, and the `dirty` marker that says a run
//! may have left an entry without its immutable flag.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{bail, Context};

use super::hash::Key;
use super::sys;

const META_DIR: &str = ".vhashify";
const DIRTY: &str = "dirty";

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
    /// Opens (creating when `create`) and locks a store, removes what an
    /// interrupted run left in staging and, if a run died while an entry was
    /// not immutable, makes every entry immutable again.
    pub fn open(root: &Path, create: bool, wait: bool) -> anyhow::Result<Option<(Store, Repair)>> {
        if !root.exists() {
            if !create {
                return Ok(None);
            }
            std::fs::create_dir_all(root).with_context(|| format!("cannot create hash store {}", root.display()))?;
            std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let croot = sys::cstr(root.as_os_str().as_encoded_bytes())?;
        let root_fd = sys::open_at(cwd(), &croot, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .with_context(|| format!("cannot open hash store {}", root.display()))?;
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
        let mut repair = Repair { stale_removed: store.clean_staging()?, refrozen: 0 };
        // Staging may have held a link of an entry whose flag was cleared.
        if repair.stale_removed > 0 || sys::fstatat_nofollow(store.meta_fd.as_fd(), &c(DIRTY)).is_ok() {
            repair.refrozen = store.refreeze_all()?;
            store.clear_dirty()?;
        }
        store.load_index()?;
        Ok(Some((store, repair)))
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
    fn load_index(&mut self) -> anyhow::Result<()> {
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
    fn for_each_entry(&self, mut f: impl FnMut(BorrowedFd, String, u64) -> anyhow::Result<()>) -> anyhow::Result<()> {
        for fan in 0..=255u8 {
            let fan_name = format!("{fan:02x}");
            let fd = match sys::open_at(self.root_fd.as_fd(), &c(&fan_name), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("{}/{fan_name}", self.root.display())),
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

    /// Anything in staging belongs to a run that died (we hold the lock).
    fn clean_staging(&self) -> anyhow::Result<u64> {
        let dir = nix::dir::Dir::from_fd(nix::unistd::dup(std::os::fd::AsRawFd::as_raw_fd(&self.staging_fd))?)?;
        let mut names = Vec::new();
        for e in dir.into_iter() {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(CString::from(e.file_name()));
            }
        }
        for n in &names {
            if let Ok(fd) = sys::open_at(self.staging_fd.as_fd(), n, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
                let _ = sys::set_immutable(fd.as_fd(), false);
            }
            sys::unlink_at(self.staging_fd.as_fd(), n, 0)
                .with_context(|| format!("cannot remove stale {}/.vhashify/staging/{}", self.root.display(), n.to_string_lossy()))?;
        }
        Ok(names.len() as u64)
    }

    fn refreeze_all(&self) -> anyhow::Result<u64> {
        let mut fixed = 0;
        self.for_each_entry(|fan, name, _| {
            let fd = sys::open_at(fan, &c(&name[2..]), libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            if !sys::is_immutable(fd.as_fd())? {
                sys::set_immutable(fd.as_fd(), true)?;
                fixed += 1;
            }
            Ok(())
        })?;
        Ok(fixed)
    }

    /// Removes entries no guest links to any more (link count 1: the store's
    /// own name). Returns (entries removed, bytes freed).
    pub fn gc(&mut self) -> anyhow::Result<(u64, u64)> {
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
            sys::unlink_at(fan, &cname, 0).with_context(|| format!("cannot remove store entry {name}"))?;
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

impl Store {
    /// Removes the entries among `inodes` that no guest links to any more
    /// (link count 1: the store's own name), without looking at the rest of
    /// the store: what `vserver NAME delete` calls with the inodes whose
    /// last guest link it removed. Returns (entries removed, bytes freed).
    pub fn gc_inodes(&mut self, inodes: &HashSet<u64>) -> anyhow::Result<(u64, u64)> {
        let keys: Vec<Key> = self.index.iter().filter(|(_, ino)| inodes.contains(ino)).map(|(k, _)| *k).collect();
        let (mut removed, mut bytes) = (0, 0);
        for key in keys {
            let fan = self.fan_dir(&key)?;
            let name = Store::entry_name(&key);
            let st = match sys::fstatat_nofollow(fan.as_fd(), &name) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("store entry {}", self.entry_path(&key).display())),
            };
            if st.st_nlink != 1 {
                continue;
            }
            let fd = sys::open_at(fan.as_fd(), &name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
            sys::set_immutable(fd.as_fd(), false)?;
            sys::unlink_at(fan.as_fd(), &name, 0).with_context(|| format!("cannot remove store entry {}", self.entry_path(&key).display()))?;
            removed += 1;
            bytes += st.st_blocks as u64 * 512;
            if let Some(ino) = self.index.remove(&key) {
                self.inodes.remove(&ino);
            }
        }
        Ok((removed, bytes))
    }

    /// Adds the name `dir/name` for a store entry, given as a read-only
    /// descriptor of its inode (`build -m clone` keeps a unified guest's
    /// files linked). The same steps as linking a guest path (link.rs): a
    /// read lease so nobody opens it for writing meanwhile, the immutable
    /// flag off only for the link, then on again, and metadata a guest may
    /// have changed in that moment put back.
    pub fn add_link(&mut self, entry: BorrowedFd, dir: BorrowedFd, name: &std::ffi::CStr) -> io::Result<()> {
        let st = sys::fstat(entry)?;
        if st.st_dev != self.dev || !self.inodes.contains(&st.st_ino) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an entry of this hash store"));
        }
        sys::take_read_lease(entry)?;
        let before = super::hash::Meta::read(entry, &st, false)?;
        self.mark_dirty()?;
        sys::set_immutable(entry, false)?;
        let linked = sys::link_fd(entry, dir, name);
        sys::set_immutable(entry, true)?;
        let now_st = sys::fstat(entry)?;
        let now = super::hash::Meta::read(entry, &now_st, false)?;
        if now != before {
            sys::set_immutable(entry, false)?;
            let restored = super::copy::restore_meta(entry, &before, &now);
            sys::set_immutable(entry, true)?;
            restored?;
        }
        // SAFETY: F_SETLEASE with F_UNLCK releases our own lease on this descriptor.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&entry), libc::F_SETLEASE, libc::F_UNLCK) };
        linked
    }
}

fn lock(meta_fd: &OwnedFd, root: &Path, wait: bool) -> anyhow::Result<OwnedFd> {
    let fd = sys::open_at(meta_fd.as_fd(), c"lock", libc::O_RDWR | libc::O_CREAT, 0o600)?;
    match sys::flock(fd.as_fd(), wait) {
        Ok(()) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => bail!(
            "another vhashify run holds the lock of hash store {} (use --wait to wait for it)",
            root.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot lock hash store {}", root.display())),
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("store names have no NUL")
}

fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a valid "fd" for *at calls for the whole process life.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
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

    #[test]
    fn a_store_is_created_locked_and_indexed() {
        let dir = std::env::temp_dir().join(format!("vs-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, repair) = Store::open(&dir, true, false).unwrap().unwrap();
        assert_eq!(store.entry_count(), 0);
        assert_eq!(repair.stale_removed, 0);
        assert!(dir.join(".vhashify/staging").is_dir());
        // A second opener cannot take the lock without waiting.
        let err = Store::open(&dir, true, false).err().expect("lock must be exclusive").to_string();
        assert!(err.contains("--wait"), "{err}");
        drop(store);
        assert!(Store::open(&dir, true, false).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
