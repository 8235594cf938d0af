//! clone3(2)/clone(2) used like fork(2), but with namespace flags: the child
//! is created directly inside new namespaces (a new pid namespace makes it
//! pid 1) and, where the kernel allows it (>= 5.7, CLONE_INTO_CGROUP),
//! directly inside a cgroup v2 directory, so it never runs for a moment in
//! the monitor's cgroup and no `cgroup.procs` write is needed afterwards.
//! Unlike unshare(CLONE_NEWPID) in the parent, this can be repeated for every
//! guest restart by the same monitor.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::check;

use super::clone3::{CloneArgs, CLONE_INTO_CGROUP, CLONE_PIDFD};

/// What fork_into returns in each of the two processes.
pub enum Forked {
    Child,
    Parent {
        pid: libc::pid_t,
        /// A pidfd of the child, made atomically with it (CLONE_PIDFD).
        pidfd: OwnedFd,
        /// The child was created inside the cgroup given to fork_into; when
        /// false the caller must move it there itself (cgroup.procs).
        in_cgroup: bool,
    },
}

/// Forks a child into new `namespaces` (CLONE_NEW* flags), into the cgroup
/// v2 directory `cgroup` when given and the kernel can do that at creation.
/// Callers are single-threaded processes (the monitor): the child gets a
/// copy of the address space like after fork(2) and continues from here.
pub fn fork_into(namespaces: libc::c_int, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    if let Some(cg) = cgroup {
        match clone3(namespaces as u64 | CLONE_INTO_CGROUP, cg.as_raw_fd() as u64) {
            Ok(forked) => return Ok(forked),
            // No clone3 (< 5.3), or no CLONE_INTO_CGROUP (< 5.7): the old way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)) => {}
            Err(e) => return Err(e),
        }
    }
    legacy_clone(namespaces as u64)
}

fn clone3(flags: u64, cgroup: u64) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup,
        ..Default::default()
    };
    // SAFETY: clone3 with a NULL stack behaves like fork(2) (see fork_into);
    // `args` and `pidfd` outlive the call, and the size is that of `args`.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    finish(check(rc)?, pidfd, flags & CLONE_INTO_CGROUP != 0)
}

fn legacy_clone(flags: u64) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let flags = flags | CLONE_PIDFD | libc::SIGCHLD as u64;
    // SAFETY: with a NULL stack clone(2) behaves like fork(2); with
    // CLONE_PIDFD the kernel stores the pidfd through the third argument
    // (parent_tid on every architecture), which points at `pidfd`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    finish(check(rc)?, pidfd, false)
}

fn finish(rc: libc::c_long, pidfd: libc::c_int, in_cgroup: bool) -> io::Result<Forked> {
    if rc == 0 {
        return Ok(Forked::Child);
    }
    // SAFETY: the kernel filled `pidfd` with a new descriptor we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Forked::Parent { pid: rc as libc::pid_t, pidfd, in_cgroup })
}

/// How new guest processes get into their cgroup on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupEntry {
    /// clone3(CLONE_INTO_CGROUP): created inside it (kernel >= 5.7).
    AtCreation,
    /// clone3 exists but without CLONE_INTO_CGROUP (5.3 to 5.6): a write to
    /// cgroup.procs after the fork.
    ProcsWriteNoIntoCgroup,
    /// No clone3 at all (before 5.3, or a seccomp filter hides it).
    ProcsWriteNoClone3,
}

impl std::fmt::Display for CgroupEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupEntry::AtCreation => "created inside their cgroup (clone3 CLONE_INTO_CGROUP)",
            CgroupEntry::ProcsWriteNoIntoCgroup => {
                "moved by a cgroup.procs write after fork (clone3 lacks CLONE_INTO_CGROUP: kernel < 5.7)"
            }
            CgroupEntry::ProcsWriteNoClone3 => "moved by a cgroup.procs write after fork (no clone3: kernel < 5.3)",
        })
    }
}

/// Asks the kernel which path fork_into takes, without creating a process:
/// clone3 with CLONE_INTO_CGROUP and a descriptor number that is not open
/// fails with EBADF where the flag is known, EINVAL where it is not, and
/// ENOSYS without clone3.
pub fn probe_cgroup_entry() -> CgroupEntry {
    let args = CloneArgs { flags: CLONE_INTO_CGROUP, exit_signal: libc::SIGCHLD as u64, cgroup: i32::MAX as u64, ..Default::default() };
    // SAFETY: as in clone3(); the cgroup descriptor is never open, so the
    // kernel refuses before a child exists. Should it exist anyway, it only
    // _exits below.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if rc == 0 {
        // SAFETY: leaving the unexpected child at once.
        unsafe { libc::_exit(0) };
    }
    if rc > 0 {
        let mut status = 0;
        // SAFETY: reaping the child just made.
        unsafe { libc::waitpid(rc as libc::pid_t, &mut status, 0) };
        return CgroupEntry::AtCreation;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EBADF) => CgroupEntry::AtCreation,
        Some(libc::EINVAL | libc::E2BIG) => CgroupEntry::ProcsWriteNoIntoCgroup,
        // ENOSYS, or a filter refusing clone3 otherwise: fork_into cannot use it.
        _ => CgroupEntry::ProcsWriteNoClone3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_have_the_kernels_ver2_size() {
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
    }

    #[test]
    fn the_probe_matches_the_kernel_version() {
        // SAFETY: uname fills the struct we own.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::uname(&mut u) }, 0);
        let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned();
        let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
        let (major, minor) = (v.next().unwrap(), v.next().unwrap());
        let expected = if (major, minor) >= (5, 7) { CgroupEntry::AtCreation } else { CgroupEntry::ProcsWriteNoIntoCgroup };
        assert_eq!(probe_cgroup_entry(), expected, "kernel {release}");
    }
}
