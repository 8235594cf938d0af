//! The guest's first process, from its clone to its init: the privileged
//! steps (setup.rs, in their order), then the guest's own init (styles
//! `plain` and `systemd`, exec'd with the container environment) or the
//! built-in one (style `sysv`, which never execs).

use crate::context::error::ContextError;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::SigSet;

use super::channel::send;
use super::restrict::Restrictions;
use super::GUEST_PATH;
use super::{init, notify, setup};
use crate::config::{Guest, InitStyle};
use crate::sys;
use crate::sys::process::exit_now;

/// The first process of the guest, in its new namespaces. Failures go back
/// to the monitor through `report`; success is exec (or, for the built-in
/// init, `report` being closed once the start command has run).
pub(super) fn guest_main(
    guest: &Guest,
    go: File,
    report: File,
    userns_ready: File,
    start: OwnedFd,
    v1_tasks: &[File],
    restrictions: &Restrictions,
) -> ! {
    // The monitor's stdio (monitor.log) must not reach the guest: /dev/null
    // until /dev/console exists. Its other descriptors (the signalfd, the
    // pipe to `vserver start`) must not either: the built-in init never
    // execs, so close-on-exec alone would not drop them.
    let mut keep = vec![go.as_raw_fd(), report.as_raw_fd(), userns_ready.as_raw_fd(), start.as_raw_fd()];
    keep.extend(v1_tasks.iter().map(|f| f.as_raw_fd()));
    crate::sys::fds::close_all_except(&keep);
    // A clean signal state for the guest, which exec would keep: the
    // monitor blocks the signals its signalfd reads, and Rust's runtime
    // ignores SIGPIPE.
    let _ = SigSet::all().thread_unblock();
    let _ = sys::signal::set_default(libc::SIGPIPE);
    if let Ok(null) = File::open("/dev/null") {
        for target in 0..3 {
            // Onto the standard descriptors of this (forked) process.
            let _ = nix::unistd::dup2(null.as_raw_fd(), target);
        }
    }
    let mut steps = setup::Pid1Steps::new(guest, go, userns_ready, start, v1_tasks, restrictions);
    let set_up = setup::setup_guest(guest, &mut steps);
    // The monitor's channels close here, before the guest's init runs (the
    // built-in init never execs, so close-on-exec would not close them).
    drop(steps);
    let err = match set_up {
        Err(e) => e,
        Ok(()) => match guest.init.style {
            InitStyle::Plain => exec_plain(guest),
            InitStyle::Systemd => exec_systemd(guest),
            InitStyle::Sysv => match super::restrict::limit_own_capabilities(&restrictions.bcaps) {
                Ok(()) => init::run(guest, report),
                Err(e) => e,
            },
        },
    };
    send(&report, &format!("{err:#}"));
    // Leaving the failed child without unwinding.
    exit_now(127)
}

/// The argv of the guest's pid 1 for style `plain`: `cmd.start` or /sbin/init.
pub(super) fn plain_init_argv(guest: &Guest) -> Vec<String> {
    match (&guest.init.style, &guest.init.cmd_start) {
        (InitStyle::Plain, Some(cmd)) if !cmd.is_empty() => cmd.clone(),
        _ => vec!["/sbin/init".to_string()],
    }
}

/// Where a systemd guest's pid 1 is looked for, as systemd-nspawn does.
pub const SYSTEMD_PATHS: &[&str] = &["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"];

/// The argv of a systemd guest's pid 1: `cmd.start`, or the guest's systemd.
/// `exists` says whether a path is an executable file inside the guest.
pub(super) fn systemd_argv(guest: &Guest, exists: impl Fn(&str) -> bool) -> Option<Vec<String>> {
    match &guest.init.cmd_start {
        Some(cmd) if !cmd.is_empty() => Some(cmd.clone()),
        _ => SYSTEMD_PATHS.iter().find(|p| exists(p)).map(|p| vec![p.to_string()]),
    }
}

/// Execs a systemd guest's pid 1 (after pivot_root: paths are the guest's)
/// with systemd's container environment: `container=vserver` and the
/// readiness socket. Returns only on failure.
pub(super) fn exec_systemd(guest: &Guest) -> ContextError {
    let Some(argv) = systemd_argv(guest, is_executable) else {
        return ContextError::InGuest(format!("no systemd in the guest (looked for {})", SYSTEMD_PATHS.join(", ")));
    };
    let mut env = init_environment(guest);
    env.push(format!("NOTIFY_SOCKET={}", notify::NOTIFY_PATH));
    exec_clean_with(&argv, None, &env)
}

/// Execs a plain-style guest's own init with `apps/init/environment`.
pub(super) fn exec_plain(guest: &Guest) -> ContextError {
    exec_clean_with(&plain_init_argv(guest), None, &init_environment(guest))
}

/// `apps/init/environment` as NAME=VALUE entries, for the guest's own init.
fn init_environment(guest: &Guest) -> Vec<String> {
    guest.init.environment.iter().flatten().map(|(n, v)| format!("{n}={v}")).collect()
}

fn exec_clean_with(argv: &[String], term: Option<&str>, extra_env: &[String]) -> ContextError {
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(cargs) = cargs else { return ContextError::NulByte("a command argument") };
    let Some(prog) = cargs.first() else { return ContextError::NoCommand };
    let mut env = vec![format!("PATH={GUEST_PATH}"), "HOME=/root".to_string(), "container=vserver".to_string()];
    env.push(format!("TERM={}", term.unwrap_or("linux")));
    for extra in extra_env {
        // A later entry of the same name wins (apps/init/environment may set PATH).
        let name = extra.split_once('=').map_or(extra.as_str(), |(n, _)| n);
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(extra.clone());
    }
    let Ok(cenv) = env.into_iter().map(CString::new).collect::<Result<Vec<CString>, _>>() else {
        return ContextError::NulByte("an environment variable");
    };
    // Search PATH inside the guest for a bare command name.
    let path = if argv[0].contains('/') {
        prog.clone()
    } else {
        match GUEST_PATH.split(':').map(|d| format!("{d}/{}", argv[0])).find(|p| is_executable(p)) {
            Some(p) => CString::new(p).expect("no NUL"),
            None => return ContextError::CommandNotFound { command: argv[0].clone() },
        }
    };
    match nix::unistd::execve(&path, &cargs, &cenv) {
        Err(err) => ContextError::Exec { command: argv[0].clone(), err },
        Ok(never) => match never {},
    }
}

fn is_executable(path: &str) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && Path::new(path).metadata().map(|m| m.is_file()).unwrap_or(false)
}
