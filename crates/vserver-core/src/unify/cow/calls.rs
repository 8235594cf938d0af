//! Which paths a notified system call would change, and how: the table of
//! the calls the copy-on-write filter sends (seccomp.rs) and their
//! arguments. A call may name two paths (rename's source and target).

use crate::seccomp::{SYS_FCHMODAT2, SYS_REMOVEXATTRAT, SYS_SETXATTRAT};

/// What the call would do to the file a path names; it decides which
/// permission the task needs (creds.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opened for writing or truncated.
    Write,
    /// Its name removed or replaced (unlink, rename source or target).
    Name,
    /// Given a second name (link source); `new` is the address of that name.
    Link {
        new: u64,
    },
    Chmod,
    Chown,
    /// Times set (utime*): to now when `now`, else to given values.
    Times {
        now: bool,
    },
    /// An extended attribute set or removed; `name` is the address of its name.
    Xattr {
        name: u64,
    },
}

/// One path argument: `dirfd` (or AT_FDCWD) and the address of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathArg {
    pub dirfd: i32,
    pub addr: u64,
    /// Whether a symlink as the last component is followed.
    pub follow: bool,
    pub op: Op,
}

/// What a notification asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Paths that may need their link broken first.
    Paths(Vec<PathArg>),
    /// openat2: its flags are in memory (`struct open_how` at `how`).
    OpenAt2 { dirfd: i32, addr: u64, how: u64, size: u64 },
    /// Nothing a path names can change (read-only open, descriptor call).
    Nothing,
}

fn at(dirfd: u64) -> i32 {
    dirfd as i32
}

fn path(dirfd: i32, addr: u64, follow: bool, op: Op) -> PathArg {
    PathArg { dirfd, addr, follow, op }
}

/// An `*at` call's path, unless AT_EMPTY_PATH with an empty path makes it
/// a call on the descriptor (the caller checks emptiness when it reads).
fn flags_follow(flags: u64, default_follow: bool) -> bool {
    let f = flags as i32;
    if f & libc::AT_SYMLINK_NOFOLLOW != 0 {
        false
    } else if f & libc::AT_SYMLINK_FOLLOW != 0 {
        true
    } else {
        default_follow
    }
}

/// Whether open flags can change an existing file (see seccomp.rs).
pub fn open_changes(flags: u64) -> bool {
    let f = flags as i32;
    let writes = f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_TRUNC != 0;
    let new_only = f & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL;
    let tmpfile = f & libc::O_TMPFILE == libc::O_TMPFILE;
    writes && !new_only && !tmpfile && f & libc::O_PATH == 0
}

fn open_call(dirfd: i32, addr: u64, flags: u64) -> Call {
    if !open_changes(flags) {
        return Call::Nothing;
    }
    Call::Paths(vec![path(dirfd, addr, flags as i32 & libc::O_NOFOLLOW == 0, Op::Write)])
}

#[allow(non_upper_case_globals)] // libc's SYS_* names
pub fn decode(nr: i64, a: &[u64; 6]) -> Call {
    use libc::*;
    let p = |dirfd, addr, follow, op| Call::Paths(vec![path(dirfd, addr, follow, op)]);
    match nr {
        #[cfg(target_arch = "x86_64")]
        SYS_open => open_call(AT_FDCWD, a[0], a[1]),
        #[cfg(target_arch = "x86_64")]
        SYS_creat => p(AT_FDCWD, a[0], true, Op::Write),
        SYS_openat => open_call(at(a[0]), a[1], a[2]),
        SYS_openat2 => Call::OpenAt2 { dirfd: at(a[0]), addr: a[1], how: a[2], size: a[3] },
        SYS_truncate => p(AT_FDCWD, a[0], true, Op::Write),
        #[cfg(target_arch = "x86_64")]
        SYS_unlink => p(AT_FDCWD, a[0], false, Op::Name),
        SYS_unlinkat if a[2] as i32 & AT_REMOVEDIR != 0 => Call::Nothing,
        SYS_unlinkat => p(at(a[0]), a[1], false, Op::Name),
        #[cfg(target_arch = "x86_64")]
        SYS_rename => Call::Paths(vec![path(AT_FDCWD, a[0], false, Op::Name), path(AT_FDCWD, a[1], false, Op::Name)]),
        // With RENAME_NOREPLACE an existing target makes the call fail: only the source counts.
        SYS_renameat2 if a[4] as u32 & RENAME_NOREPLACE != 0 => p(at(a[0]), a[1], false, Op::Name),
        SYS_renameat | SYS_renameat2 => Call::Paths(vec![path(at(a[0]), a[1], false, Op::Name), path(at(a[2]), a[3], false, Op::Name)]),
        #[cfg(target_arch = "x86_64")]
        SYS_link => p(AT_FDCWD, a[0], false, Op::Link { new: a[1] }),
        SYS_linkat => p(at(a[0]), a[1], flags_follow(a[4], false), Op::Link { new: a[3] }),
        #[cfg(target_arch = "x86_64")]
        SYS_chmod => p(AT_FDCWD, a[0], true, Op::Chmod),
        SYS_fchmodat => p(at(a[0]), a[1], true, Op::Chmod),
        SYS_FCHMODAT2 => p(at(a[0]), a[1], flags_follow(a[3], true), Op::Chmod),
        #[cfg(target_arch = "x86_64")]
        SYS_chown => p(AT_FDCWD, a[0], true, Op::Chown),
        #[cfg(target_arch = "x86_64")]
        SYS_lchown => p(AT_FDCWD, a[0], false, Op::Chown),
        SYS_fchownat => p(at(a[0]), a[1], flags_follow(a[4], true), Op::Chown),
        #[cfg(target_arch = "x86_64")]
        SYS_utime | SYS_utimes => p(AT_FDCWD, a[0], true, Op::Times { now: a[1] == 0 }),
        #[cfg(target_arch = "x86_64")]
        SYS_futimesat if a[1] == 0 => Call::Nothing,
        #[cfg(target_arch = "x86_64")]
        SYS_futimesat => p(at(a[0]), a[1], true, Op::Times { now: a[2] == 0 }),
        SYS_utimensat if a[1] == 0 => Call::Nothing,
        SYS_utimensat => p(at(a[0]), a[1], flags_follow(a[3], true), Op::Times { now: a[2] == 0 }),
        SYS_setxattr | SYS_removexattr => p(AT_FDCWD, a[0], true, Op::Xattr { name: a[1] }),
        SYS_lsetxattr | SYS_lremovexattr => p(AT_FDCWD, a[0], false, Op::Xattr { name: a[1] }),
        SYS_SETXATTRAT | SYS_REMOVEXATTRAT => p(at(a[0]), a[1], flags_follow(a[2], true), Op::Xattr { name: a[3] }),
        _ => Call::Nothing,
    }
}

/// openat2's `struct open_how` (flags, mode, resolve), as far as read.
pub fn decode_open_how(dirfd: i32, addr: u64, how: &[u8]) -> Call {
    if how.len() < 8 {
        return Call::Nothing;
    }
    let flags = u64::from_ne_bytes(how[..8].try_into().expect("eight bytes"));
    let resolve = if how.len() >= 24 { u64::from_ne_bytes(how[16..24].try_into().expect("eight bytes")) } else { 0 };
    match open_call(dirfd, addr, flags) {
        // RESOLVE_NO_SYMLINKS forbids a final symlink too.
        Call::Paths(mut v) if resolve & libc::RESOLVE_NO_SYMLINKS != 0 => {
            v[0].follow = false;
            Call::Paths(v)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_opens_that_can_change_an_existing_file_count() {
        assert!(open_changes(libc::O_WRONLY as u64));
        assert!(open_changes((libc::O_RDWR | libc::O_CREAT) as u64));
        assert!(open_changes((libc::O_RDONLY | libc::O_TRUNC) as u64));
        assert!(!open_changes(libc::O_RDONLY as u64));
        assert!(!open_changes((libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL) as u64));
        assert!(!open_changes((libc::O_WRONLY | libc::O_PATH) as u64));
        assert!(!open_changes((libc::O_RDWR | libc::O_TMPFILE) as u64));
    }

    #[test]
    fn calls_name_their_paths() {
        let a = [3, 0x1000, 7, 0x2000, 0, 0];
        assert_eq!(decode(libc::SYS_renameat2, &a), Call::Paths(vec![path(3, 0x1000, false, Op::Name), path(7, 0x2000, false, Op::Name)]));
        assert_eq!(decode(libc::SYS_unlinkat, &[3, 0x1000, libc::AT_REMOVEDIR as u64, 0, 0, 0]), Call::Nothing);
        let link = decode(libc::SYS_linkat, &[3, 0x1000, 4, 0x2000, libc::AT_SYMLINK_FOLLOW as u64, 0]);
        assert_eq!(link, Call::Paths(vec![path(3, 0x1000, true, Op::Link { new: 0x2000 })]));
        let touch = decode(libc::SYS_utimensat, &[libc::AT_FDCWD as u64, 0x1000, 0, 0, 0, 0]);
        assert_eq!(touch, Call::Paths(vec![path(libc::AT_FDCWD, 0x1000, true, Op::Times { now: true })]));
        assert_eq!(decode(libc::SYS_openat, &[0, 0x1000, libc::O_RDONLY as u64, 0, 0, 0]), Call::Nothing);
        assert_eq!(decode(libc::SYS_read, &[0; 6]), Call::Nothing);
    }

    #[test]
    fn open_how_flags_and_resolve_are_read() {
        let mut how = Vec::new();
        how.extend_from_slice(&(libc::O_WRONLY as u64).to_ne_bytes());
        how.extend_from_slice(&0u64.to_ne_bytes());
        how.extend_from_slice(&libc::RESOLVE_NO_SYMLINKS.to_ne_bytes());
        assert_eq!(decode_open_how(5, 0x10, &how), Call::Paths(vec![path(5, 0x10, false, Op::Write)]));
        assert_eq!(decode_open_how(5, 0x10, &0u64.to_ne_bytes()), Call::Nothing);
    }
}
