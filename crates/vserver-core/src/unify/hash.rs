//! The unification key: BLAKE3 over what must be equal for two files to be
//! one inode — mode, owner, group, every extended attribute (file
//! capabilities, ACLs, SELinux labels), optionally the mtime, then the
//! content. Two files whose capabilities differ must never share an inode:
//! that would grant or drop privileges.

use std::io::{self, Read};
use std::os::fd::BorrowedFd;

use crate::sys::file as sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        Some(Key(out))
    }
}

/// The metadata part of the key, as read from an open fd (without the
/// store's mark, see marker.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Only when mtime is part of the key (--respect-mtime).
    pub mtime: Option<(i64, i64)>,
}

impl Meta {
    pub fn read(fd: BorrowedFd, st: &libc::stat, respect_mtime: bool) -> io::Result<Meta> {
        Ok(Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            // The store's own mark is not part of what a file is.
            xattrs: sys::xattrs(fd)?.into_iter().filter(|(name, _)| !super::marker::is_marker(name)).collect(),
            mtime: respect_mtime.then_some((st.st_mtime, st.st_mtime_nsec)),
        })
    }

    fn feed(&self, h: &mut blake3::Hasher, size: u64) {
        h.update(b"vhashify key v1\0");
        h.update(&self.mode.to_le_bytes());
        h.update(&self.uid.to_le_bytes());
        h.update(&self.gid.to_le_bytes());
        match self.mtime {
            Some((s, ns)) => h.update(&[1]).update(&s.to_le_bytes()).update(&ns.to_le_bytes()),
            None => h.update(&[0]),
        };
        h.update(&(self.xattrs.len() as u64).to_le_bytes());
        for (name, value) in &self.xattrs {
            h.update(&(name.len() as u64).to_le_bytes()).update(name);
            h.update(&(value.len() as u64).to_le_bytes()).update(value);
        }
        h.update(&size.to_le_bytes());
    }
}

/// Hashes metadata and the whole content of `file` (read once, from the fd
/// we hold, never by path). Fails if the size seen does not match `size`.
pub fn key_of(file: &std::fs::File, meta: &Meta, size: u64, buf: &mut [u8]) -> io::Result<Key> {
    let mut h = blake3::Hasher::new();
    meta.feed(&mut h, size);
    let mut reader = file;
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    if total != size {
        return Err(io::Error::other(format!("changed size while being read ({size} → {total} bytes)")));
    }
    Ok(Key(*h.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Meta {
        Meta { mode, uid: 0, gid: 0, xattrs, mtime: None }
    }

    fn key(m: &Meta, content: &[u8]) -> Key {
        let mut h = blake3::Hasher::new();
        m.feed(&mut h, content.len() as u64);
        h.update(content);
        Key(*h.finalize().as_bytes())
    }

    #[test]
    fn hex_round_trips() {
        let k = key(&meta(0o755, vec![]), b"x");
        assert_eq!(Key::from_hex(&k.hex()), Some(k));
        assert_eq!(Key::from_hex("zz"), None);
    }

    #[test]
    fn metadata_is_part_of_the_key() {
        let base = key(&meta(0o755, vec![]), b"same");
        assert_ne!(base, key(&meta(0o644, vec![]), b"same"));
        let cap = vec![(b"security.capability".to_vec(), vec![1, 2, 3])];
        assert_ne!(base, key(&meta(0o755, cap), b"same"));
        let mut owned = meta(0o755, vec![]);
        owned.uid = 1000;
        assert_ne!(base, key(&owned, b"same"));
        let mut timed = meta(0o755, vec![]);
        timed.mtime = Some((1, 0));
        assert_ne!(base, key(&timed, b"same"));
        assert_eq!(base, key(&meta(0o755, vec![]), b"same"));
    }

    #[test]
    fn metadata_and_content_cannot_be_confused() {
        // The xattr value length is framed: moving bytes between fields changes the key.
        let a = key(&meta(0, vec![(b"user.a".to_vec(), b"xy".to_vec())]), b"z");
        let b = key(&meta(0, vec![(b"user.a".to_vec(), b"x".to_vec())]), b"yz");
        assert_ne!(a, b);
    }
}
