//! Breaking a guest's link to a store entry: a private copy (same content,
//! owner, mode, xattrs but the store's mark, times) takes the name's place.
//!
//! The copy is made first, unnamed (O_TMPFILE in the same directory), while
//! everything runs. Then, inside a window (every guest frozen, so nothing
//! can move under us): the name is checked to still be the entry, the copy
//! gets a temporary name next to it, the entry's immutable flag goes off,
//! rename(2) puts the copy in the name's place in one step, and the flag
//! goes on again. The directory is the one the guest task's own path
//! resolution found (its mount, its view), so the rename happens exactly
//! where the guest would have made its change, and nowhere else.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::super::copy;
use super::super::hash::Key;
use super::super::marker;
use super::resolve::{statx, Found};
use crate::sys::file as sys;

/// A link to break: where, and which inode must be there.
pub struct Break {
    pub found: Found,
    pub key: Key,
}

impl Break {
    /// Which name this is: (directory's device, its inode, the name).
    pub fn identity(&self) -> (u64, u64, Vec<u8>) {
        let dir = crate::sys::file::fstat(self.found.parent.as_fd()).map(|s| (s.st_dev, s.st_ino)).unwrap_or((0, 0));
        (dir.0, dir.1, self.found.name.as_bytes().to_vec())
    }
}

/// A private copy waiting for its window.
pub struct Prepared {
    brk: Break,
    /// The entry, open read-only (for its flag).
    entry: OwnedFd,
    copy: OwnedFd,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Broken,
    /// The name no longer is the entry (the guest changed it meanwhile).
    Changed,
}

static TMP: AtomicU64 = AtomicU64::new(0);

/// Outside the window: opens the entry through the guest's name (it must
/// still be that inode, and marked) and makes the private copy.
pub fn prepare(brk: Break) -> io::Result<Option<Prepared>> {
    let f = &brk.found;
    let how = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let entry = match sys::open_beneath(f.parent.as_fd(), &f.name, how) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = sys::fstat(entry.as_fd())?;
    if !is_same(&st, &brk.found.stx) || marker::get(entry.as_fd())? != Some(brk.key) {
        return Ok(None);
    }
    let copy = copy::private_copy_auto(entry.as_fd(), &st, f.parent.as_fd())?;
    Ok(Some(Prepared { brk, entry, copy }))
}

fn is_same(st: &libc::stat, stx: &libc::statx) -> bool {
    st.st_ino == stx.stx_ino
        && st.st_dev == libc::makedev(stx.stx_dev_major, stx.stx_dev_minor)
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
}

impl Prepared {
    /// Inside the window: puts the copy in the name's place.
    pub fn swap(self) -> io::Result<Outcome> {
        let (parent, name) = (self.brk.found.parent.as_fd(), self.brk.found.name.as_c_str());
        match statx(parent, name) {
            Ok(now)
                if now.stx_ino == self.brk.found.stx.stx_ino
                    && now.stx_dev_major == self.brk.found.stx.stx_dev_major
                    && now.stx_dev_minor == self.brk.found.stx.stx_dev_minor => {}
            Ok(_) => return Ok(Outcome::Changed),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT)) => return Ok(Outcome::Changed),
            Err(e) => return Err(e),
        }
        let tmp = tmp_name();
        sys::link_fd(self.copy.as_fd(), parent, &tmp)?;
        let result = replace(self.entry.as_fd(), parent, &tmp, name);
        if result.is_err() {
            let _ = sys::unlink_at(parent, &tmp, 0);
        }
        result.map(|()| Outcome::Broken)
    }
}

/// The flag is off only around the rename; it is set again whatever happened.
fn replace(entry: BorrowedFd, dir: BorrowedFd, tmp: &CStr, name: &CStr) -> io::Result<()> {
    sys::set_immutable(entry, false)?;
    let renamed = rename(dir, tmp, name);
    let refrozen = sys::set_immutable(entry, true);
    renamed.and(refrozen)
}

fn rename(dir: BorrowedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    sys::rename_at(dir, from, dir, to)
}

fn tmp_name() -> CString {
    let n = TMP.fetch_add(1, Ordering::Relaxed);
    CString::new(format!(".vhashify-cow-{}-{n}", std::process::id())).expect("no NUL")
}

/// The key of the store entry a found file is (marked, immutable, linked
/// from the store too), or None for any other file.
pub fn entry_key(found: &Found) -> io::Result<Option<Key>> {
    let immutable = found.stx.stx_attributes & libc::STATX_ATTR_IMMUTABLE as u64 != 0;
    if !immutable || found.stx.stx_nlink < 2 {
        return Ok(None);
    }
    // Read through the magic link of an O_PATH descriptor (fgetxattr does
    // not take O_PATH): nothing of the guest's is opened for real here.
    let fd = match sys::open_beneath(found.parent.as_fd(), &found.name, libc::O_PATH) {
        Ok(fd) => fd,
        Err(_) => return Ok(None),
    };
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
    let mut buf = [0u8; 80];
    let Ok(n) = sys::getxattr(&path, c"trusted.vhashify", &mut buf) else { return Ok(None) };
    Ok(std::str::from_utf8(&buf[..n]).ok().and_then(Key::from_hex))
}
