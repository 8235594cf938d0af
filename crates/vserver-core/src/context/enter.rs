//! Joining a running guest: `vserver NAME exec CMD...`, `suexec USER CMD...`,
//! `exec --user USER`, `enter`. The guest's monitor forks the process that
//! joins it (its namespaces through the pidfd of the guest's init, its
//! payload cgroup at creation, the bounding set, rlimits, personality and
//! seccomp filter of the running guest); see control.rs. This module is
//! the entry point for the tools.

use std::time::Duration;

use crate::context::error::{ContextError, Result};

use super::control::{self, ExecOptions, Outcome};
use crate::paths::Paths;

/// Runs `argv` in the guest as root (or `user`), with our stdin, stdout and
/// stderr passed on as control/client.rs describes.
pub fn run_in_guest(paths: &Paths, name: &str, argv: &[String], user: Option<&str>) -> Result<Outcome> {
    let opts = ExecOptions { argv: argv.to_vec(), user: user.map(str::to_string), login: false, timeout: None };
    control::client::run(paths, name, &opts)
}

/// An interactive login shell on a new pty inside the guest (the guest's
/// `shell` setting, else bash, sh or csh, as util-vserver chose).
pub fn enter_shell(paths: &Paths, name: &str, shell: Option<Vec<String>>) -> Result<Outcome> {
    let opts = ExecOptions { argv: shell.unwrap_or_default(), user: None, login: true, timeout: None };
    control::client::run(paths, name, &opts)
}

/// For the tools' own use (`vserver stop` runs the guest's stop command):
/// the exit code, 128+N for signal N; a command that could not be started
/// is an error. With a timeout the command is killed when it runs longer.
pub fn exec_in_guest(paths: &Paths, name: &str, argv: &[String], timeout: Option<Duration>) -> Result<i32> {
    let opts = ExecOptions { argv: argv.to_vec(), user: None, login: false, timeout };
    match control::client::run(paths, name, &opts)? {
        Outcome::NotRun(why) => Err(ContextError::NotRun(why)),
        other => Ok(other.exit_code()),
    }
}
