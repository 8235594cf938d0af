//! The few raw system calls the crates do not wrap, one small module each,
//! every `unsafe` block with its SAFETY note.

pub mod clone;
pub mod clone3;
pub mod fds;
pub mod openat2;
pub mod pidfd;

use std::io;

/// Turns a -1 return into the errno as an io::Error.
pub(crate) fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
