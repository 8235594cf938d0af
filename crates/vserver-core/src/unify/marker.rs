//! The mark every store entry carries: the extended attribute
//! `trusted.vhashify`, whose value is the entry's key in hex. Guests can
//! neither read, set nor remove a `trusted.*` attribute (that needs
//! CAP_SYS_ADMIN in the host's user namespace), so a file that has it is a
//! store entry, and a guest cannot make the copy-on-write supervisor treat
//! any other file as one. The mark is not part of the unification key and
//! never copied into a private copy.

use std::io;
use std::os::fd::BorrowedFd;

use super::hash::Key;
use crate::sys::file as sys;

pub const NAME: &[u8] = b"trusted.vhashify";

/// Whether an attribute name is the mark (left out of keys and copies).
pub fn is_marker(name: &[u8]) -> bool {
    name == NAME
}

pub fn set(fd: BorrowedFd, key: &Key) -> io::Result<()> {
    sys::set_xattr(fd, NAME, key.hex().as_bytes())
}

/// The key an entry is marked with, `None` when it has no mark. Works on
/// any descriptor but O_PATH (fgetxattr needs a real open file).
pub fn get(fd: BorrowedFd) -> io::Result<Option<Key>> {
    let mut buf = [0u8; 80];
    let n = match sys::fgetxattr(fd, c"trusted.vhashify", &mut buf) {
        Ok(n) => n,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
                _ => Err(e),
            }
        }
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    Ok(Some(Key::from_hex(text).ok_or_else(|| io::Error::other(format!("malformed {} value", String::from_utf8_lossy(NAME))))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_recognised_by_name_only() {
        assert!(is_marker(b"trusted.vhashify"));
        assert!(!is_marker(b"trusted.vhashify2"));
        assert!(!is_marker(b"user.vhashify"));
    }
}
