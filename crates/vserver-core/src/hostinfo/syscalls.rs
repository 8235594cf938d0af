//! seccomp filters, pidfds and openat2: system calls every guest relies on.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::fsops::ScratchDir;
use super::kallsyms::{Evidence, Symbols};
use super::{Check, Host, Status};
use crate::sys::{openat2, pidfd};

const SECCOMP_NEEDED_FOR: &str = "every guest: the system-call deny list (kexec, module loading, bpf, open_by_handle_at, keyctl, ...)";
const PIDFD_NEEDED_FOR: &str = "the monitor, exec, enter and stop: signalling a guest's init without being fooled by a reused pid";
const OPENAT2_NEEDED_FOR: &str =
    "every guest start: fstab targets and host-side lookups in a guest tree resolved without following guest symlinks";

pub fn seccomp(host: &Host) -> Check {
    let make = |status, detail: String| Check::new("seccomp", status, detail, SECCOMP_NEEDED_FOR, true);
    let path = host.proc("sys/kernel/seccomp/actions_avail");
    let actions = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => return make(Status::Missing, format!("{}: {e}: the kernel has no seccomp filter mode", path.display())),
    };
    let has = |a: &str| actions.split_whitespace().any(|w| w == a);
    if !has("errno") || !has("allow") {
        return make(Status::Missing, format!("{} lacks the errno or allow action: {}", path.display(), actions.trim()));
    }
    if !host.live {
        return make(Status::Ok, format!("filter mode, actions: {}", actions.trim()));
    }
    match crate::sys::prctl::seccomp_mode() {
        Ok(0) => make(Status::Ok, "filter mode (errno and allow actions available)".into()),
        Ok(2) => make(Status::Ok, "filter mode; this process already runs under a filter (filters stack)".into()),
        Err(e) => make(Status::Missing, format!("prctl(PR_GET_SECCOMP): {e}")),
        Ok(_) => make(Status::Missing, "this process runs in strict seccomp mode".into()),
    }
}

pub fn pidfd(symbols: Option<&Symbols>) -> Check {
    let make = |status, detail: String| Check::new("pidfd", status, detail, PIDFD_NEEDED_FOR, true);
    if let Some(symbols) = symbols {
        return from_symbols(symbols, "pidfd_open", make);
    }
    match pidfd::open(std::process::id() as libc::pid_t) {
        Ok(_) => make(Status::Ok, "pidfd_open on this process works".into()),
        Err(e) => make(Status::Missing, format!("pidfd_open: {e} (needs Linux 5.3)")),
    }
}

pub fn openat2(symbols: Option<&Symbols>) -> Check {
    let make = |status, detail: String| Check::new("openat2", status, detail, OPENAT2_NEEDED_FOR, true);
    if let Some(symbols) = symbols {
        return from_symbols(symbols, "openat2", make);
    }
    match confined_lookup_works() {
        Ok(()) => make(Status::Ok, "RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS refuse a planted symlink".into()),
        Err(e) => make(Status::Missing, e),
    }
}

/// In a scratch directory: `.` opens, a symlink to `/` is refused.
fn confined_lookup_works() -> Result<(), String> {
    let dir = ScratchDir::new(&std::env::temp_dir()).map_err(|e| format!("scratch directory: {e}"))?;
    std::os::unix::fs::symlink("/", dir.path().join("escape")).map_err(|e| format!("scratch symlink: {e}"))?;
    let fd = std::fs::File::open(dir.path()).map_err(|e| format!("{}: {e}", dir.path().display()))?;
    let resolve = openat2::RESOLVE_BENEATH | openat2::RESOLVE_NO_SYMLINKS;
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    openat2::openat2(&fd, Path::new("."), flags, 0, resolve).map_err(|e| format!("openat2: {e} (needs Linux 5.6)"))?;
    match openat2::openat2(&fd, Path::new("escape"), flags, 0, resolve) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV)) => Ok(()),
        Err(e) => Err(format!("openat2 refused a symlink with an unexpected error: {e}")),
        Ok(f) => Err(format!("openat2 followed a symlink despite RESOLVE_NO_SYMLINKS (fd {})", f.as_raw_fd())),
    }
}

fn from_symbols(symbols: &Symbols, syscall: &str, make: impl Fn(Status, String) -> Check) -> Check {
    match symbols.syscall(syscall) {
        Evidence::Present => make(Status::Ok, format!("{} has sys_{syscall}", symbols.path().display())),
        Evidence::Absent => make(Status::Missing, format!("{} has no sys_{syscall}", symbols.path().display())),
        Evidence::Unknown(why) => make(Status::Limited, format!("cannot tell: {why}")),
    }
}
