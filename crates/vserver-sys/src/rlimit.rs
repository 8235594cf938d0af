//! prlimit(2): reading and setting the rlimits of a process (another one,
//! or this one with [`SELF`]). libc wraps it; nix does not.

use std::io;

/// Soft and hard value, `libc::RLIM_INFINITY` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub soft: u64,
    pub hard: u64,
}

/// The pid that stands for the calling process.
pub const SELF: i32 = 0;

pub fn get(pid: i32, resource: libc::__rlimit_resource_t) -> io::Result<Pair> {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a null new limit only reads; `old` is a struct we own.
    if unsafe { libc::prlimit(pid, resource, std::ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Pair { soft: old.rlim_cur, hard: old.rlim_max })
}

/// Sets both values and returns the previous ones.
pub fn set(pid: i32, resource: libc::__rlimit_resource_t, new: Pair) -> io::Result<Pair> {
    let new = libc::rlimit { rlim_cur: new.soft, rlim_max: new.hard };
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: both pointers are to structs we own, valid for the call.
    if unsafe { libc::prlimit(pid, resource, &new, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Pair { soft: old.rlim_cur, hard: old.rlim_max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_limits_round_trip() {
        let me = std::process::id() as i32;
        let before = get(me, libc::RLIMIT_CORE).unwrap();
        let lowered = Pair { soft: 0, hard: before.hard };
        assert_eq!(set(me, libc::RLIMIT_CORE, lowered).unwrap(), before);
        assert_eq!(get(me, libc::RLIMIT_CORE).unwrap(), lowered);
        set(me, libc::RLIMIT_CORE, before).unwrap();
        assert!(get(i32::MAX, libc::RLIMIT_CORE).is_err(), "no such process");
    }
}
