//! Landlock: the ABI version of the running kernel and rulesets that only
//! scope (no file or network access rules).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::check;

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
/// Scope: no connecting to abstract unix sockets made outside the domain (ABI 6).
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;

/// `struct landlock_ruleset_attr` as of ABI 6.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The Landlock ABI version: ENOSYS without Landlock, EOPNOTSUPP when it is
/// built in but not enabled.
pub fn abi_version() -> io::Result<u32> {
    // SAFETY: with a NULL attribute, size 0 and the VERSION flag the call only
    // returns the ABI version; no memory is passed.
    let r = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<RulesetAttr>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION)
    };
    Ok(check(r)? as u32)
}

/// Restricts the calling thread (and what it starts later) to a new domain
/// that handles no access rights and only `scoped` (SCOPE_* bits).
pub fn scope_self(scoped: u64) -> io::Result<()> {
    let attr = RulesetAttr { handled_access_fs: 0, handled_access_net: 0, scoped };
    // SAFETY: attr is a live struct of the size passed; the kernel reads it only.
    let fd = check(unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, std::mem::size_of::<RulesetAttr>(), 0u32)
    })?;
    // SAFETY: fd was just returned to us and is owned by this OwnedFd only.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: restricts the calling thread with the ruleset fd we own.
    check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) }).map(drop)
}
