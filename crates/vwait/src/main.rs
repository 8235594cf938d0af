#![forbid(unsafe_code)]
//! `vwait`: wait until a guest stops, with util-vserver's exit codes and
//! status lines.

mod cli;

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vserver_core::cli::exit_quietly_on_closed_pipe;
use vserver_core::running::wait::wait_stopped;
use vserver_core::running::{find_running, Selector};
use vserver_core::sys;

/// util-vserver's exit code for ERROR (also used here for bad usage, since
/// 1 and 2 mean KILLED and TIMEOUT).
const EXIT_ERROR: u8 = 127;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vwait");
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // The descriptor is checked before waiting, not found closed at the end.
    let mut status = match cli.status_fd.map(status_file).transpose() {
        Ok(f) => f,
        Err(msg) => return error(None, &msg, libc::EBADF),
    };
    let paths = match cli.paths.resolve() {
        Ok(p) => p,
        Err(e) => return error(status.as_mut(), &format!("{e:#}"), libc::EINVAL),
    };
    let sel = match Selector::parse(&cli.guest) {
        Ok(s) => s,
        Err(e) => return error(status.as_mut(), &e, libc::EINVAL),
    };
    let state = match find_running(&paths, &sel) {
        Ok(s) => s,
        Err(e) if e.is_not_running() => return error(status.as_mut(), &e.to_string(), libc::ESRCH),
        Err(e) => return error(status.as_mut(), &e.to_string(), libc::ENOENT),
    };
    let timeout = cli.timeout.filter(|t| *t > 0).map(|t| Duration::from_secs(t as u64));
    match wait_stopped(&state, timeout, cli.terminate) {
        Ok(outcome) => {
            if let Some(f) = status.as_mut() {
                let _ = writeln!(f, "{}", outcome.word());
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            let code = e.raw_os_error().unwrap_or(libc::EIO);
            error(status.as_mut(), &format!("waiting for guest {:?}: {e}", state.name), code)
        }
    }
}

/// The descriptor given with --status-fd, if it is open for writing.
fn status_file(fd: i32) -> Result<File, String> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(-1);
    if fd < 0 || flags < 0 || flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(format!("--status-fd {fd}: not a descriptor open for writing"));
    }
    // The caller handed us this open descriptor for the status line;
    // nothing else in this process uses it (the contract of adopt_inherited).
    sys::fds::adopt_inherited(fd).map(File::from).map_err(|e| format!("--status-fd {fd}: {e}"))
}

/// util-vserver's ERROR: a message on stderr, `ERROR errno` on the status fd.
fn error(status: Option<&mut File>, msg: &str, errno: i32) -> ExitCode {
    eprintln!("vwait: {msg}");
    if let Some(f) = status {
        let _ = writeln!(f, "ERROR {errno}");
    }
    ExitCode::from(EXIT_ERROR)
}
