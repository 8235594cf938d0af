//! The few raw system calls the crates do not wrap, one small module each,
//! every `unsafe` block with its SAFETY note.

pub mod clone;
pub mod clone3;
pub mod fds;
pub mod openat2;
pub mod pidfd;

use std::io;

/// A file's owner, group and mode (permission bits, and the type bits where
/// it was read from a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Owner {
    pub const ROOT_FILE: Owner = Owner { uid: 0, gid: 0, mode: 0o644 };
    pub const ROOT_SECRET: Owner = Owner { uid: 0, gid: 0, mode: 0o600 };

    pub fn of(stx: &libc::statx) -> Owner {
        Owner { uid: stx.stx_uid, gid: stx.stx_gid, mode: u32::from(stx.stx_mode) }
    }
}

/// Turns a -1 return into the errno as an io::Error.
pub(crate) fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
