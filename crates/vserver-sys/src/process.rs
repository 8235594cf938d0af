//! fork(2), _exit(2) and waitpid(2) for vserver-rs's processes.
//!
//! The callers are single-threaded at the moment they fork (the CLI, the
//! monitor, pid 1, a probe's child) or, in tests, fork a child that only
//! makes system calls: after fork(2) only the calling thread exists in the
//! child, so a lock another thread held (malloc's, stdio's) stays held.
//! That is the contract of every function here, as it is of `clone::fork_into`.

use std::io;

use crate::check;

/// What fork returns in each of the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Child,
    Parent(libc::pid_t),
}

/// fork(2): the child continues from here with a copy of the address space.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: see the module's contract (single-threaded callers).
    match check(unsafe { libc::fork() })? {
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Ends this process at once with `code`: no destructors, no atexit
/// handlers, no flush of buffers the parent also holds (what a forked child
/// must do instead of returning).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes no pointers and does not return.
    unsafe { libc::_exit(code) }
}

/// Forks a child that runs `child` and exits with the code it returns (a
/// panic exits with 127); returns the child's pid in the parent.
pub fn fork_child(child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    match fork()? {
        Fork::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(127);
            exit_now(code)
        }
        Fork::Parent(pid) => Ok(pid),
    }
}

/// waitpid(2) for `pid` with `flags` (retried on EINTR): the raw wait
/// status, or None with WNOHANG when it has not changed state yet.
pub fn wait_pid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer for the call.
        match check(unsafe { libc::waitpid(pid, &mut status, flags) }) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(status)),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The exit code a raw wait status stands for, the shell's way: the code of
/// a normal exit, 128 + the signal of a killed process.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Registers `f` to run when the process exits normally (atexit(3)).
pub fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: atexit stores a plain function pointer that lives forever.
    if unsafe { libc::atexit(f) } == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit: no room for another handler"))
    }
}

/// sysconf(3) of `name`, None where the value is indeterminate or unknown.
pub fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes no pointers.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as u64)
}

/// Makes `cmd`'s child, between fork and exec, unblock every signal and move
/// itself into the cgroup whose `cgroup.procs` is `procs` (writing "0"), so
/// the program runs in the cgroup from its first instruction. A failure
/// fails the spawn.
pub fn unblock_and_join_cgroup_at_exec(cmd: &mut std::process::Command, procs: std::ffi::CString) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe calls (sigprocmask, open, write, close) on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&nix::sys::signal::SigSet::empty()), None)?;
            write_zero(&procs)
        });
    }
}

/// Makes `cmd`'s child, between fork and exec, write "0" to each of
/// `files` (`cgroup.procs` or a v1 `tasks`: it moves itself there), so the
/// program never runs in the cgroups its parent is in. A failure fails the
/// spawn.
pub fn join_cgroups_at_exec(cmd: &mut std::process::Command, files: Vec<std::ffi::CString>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe calls (open, write, close) on data prepared before
    // the fork.
    unsafe {
        cmd.pre_exec(move || files.iter().try_for_each(|f| write_zero(f)));
    }
}

/// Writes "0" to the file `path` (a `cgroup.procs`: moves the writer) with
/// async-signal-safe calls only.
fn write_zero(path: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: path is NUL-terminated; the fd is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: writes one byte from a static buffer to the fd opened above.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = io::Error::last_os_error();
    // SAFETY: fd was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    if n != 1 {
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_exits_with_what_it_returns() {
        let pid = fork_child(|| 7).unwrap();
        let status = wait_pid(pid, 0).unwrap().expect("exited");
        assert_eq!(exit_code(status), 7);
    }

    #[test]
    fn a_panicking_child_exits_with_127() {
        let pid = fork_child(|| panic!("in the child")).unwrap();
        assert_eq!(exit_code(wait_pid(pid, 0).unwrap().unwrap()), 127);
    }
}
