//! `start`, `stop`, `restart` and `delete` with util-vserver's behaviour
//! where admins' scripts rely on it: starting a running guest and stopping
//! a stopped one warn and succeed (idempotent init scripts), `delete` asks
//! on a terminal. Around the core's start: the `initialize` scriptlets
//! (before the configuration is read, which they may still change) and the
//! warnings about files that do nothing here.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use vserver_core::config::{self, known, Guest, GuestBasics};
use vserver_core::context::{self, scripts, StopOptions, Stopped};
use vserver_core::runstate::{self, Status};
use vserver_core::Paths;

use crate::guest_arg::Named;

/// Exit code of `delete` when the admin says no (util-vserver's).
pub const EXIT_NOT_CONFIRMED: u8 = 2;

pub fn start(paths: &Paths, name: &str) -> Result<u8> {
    if !paths.guest_confdir(name).is_dir() {
        config::load_guest(paths, name)?; // the "no such guest" error
    }
    if runstate::is_running(paths, name) {
        eprintln!("vserver '{name}' already running");
        return Ok(0);
    }
    let disabled = paths.guest_confdir(name).join("disabled");
    if disabled.exists() {
        bail!("guest {name:?} is disabled ({} exists); remove that file to start it", disabled.display());
    }
    scripts::initialize(paths, name)?;
    let guest = config::load_guest(paths, name)?;
    print_warnings(paths, &guest);
    context::start_guest(paths, &guest)?;
    Ok(0)
}

pub fn stop(paths: &Paths, name: &str, timeout: u64) -> Result<u8> {
    let guest = config::load_basics(paths, name)?;
    if runstate::settled_status(paths, name, runstate::SETTLE_LIMIT)? == Status::Stopped {
        eprintln!("vserver '{name}' is not running");
        return Ok(0);
    }
    stop_loaded(paths, &guest, timeout)
}

fn stop_loaded(paths: &Paths, guest: &GuestBasics, timeout: u64) -> Result<u8> {
    match context::stop_guest(paths, guest, StopOptions { timeout: Duration::from_secs(timeout) })? {
        Stopped::Stopped => Ok(0),
        Stopped::CleanedStale => {
            eprintln!("vserver: guest {:?} was not running; its stale run state was removed", guest.name);
            Ok(0)
        }
    }
}

pub fn restart(paths: &Paths, name: &str, timeout: u64) -> Result<u8> {
    if runstate::settled_status(paths, name, runstate::SETTLE_LIMIT)? != Status::Stopped {
        stop_loaded(paths, &config::load_basics(paths, name)?, timeout)?;
    }
    start(paths, name)
}

/// util-vserver asks `Are you sure you want to delete the vserver NAME
/// (y/N)` and exits 2 unless the answer is y; here only when stdin is a
/// terminal, and `--force` skips it. A running guest is stopped first.
pub fn delete(paths: &Paths, guest: &Named, force: bool, timeout: u64) -> Result<u8> {
    if !paths.guest_confdir(&guest.name).is_dir() {
        config::load_guest(paths, &guest.name)?; // the "no such guest" error
    }
    if !force && std::io::stdin().is_terminal() {
        eprint!("Are you sure you want to delete the vserver {} (y/N) ", guest.as_given);
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y") {
            eprintln!("vserver {}: not deleted", guest.name);
            return Ok(EXIT_NOT_CONFIRMED);
        }
    }
    if runstate::settled_status(paths, &guest.name, runstate::SETTLE_LIMIT)? != Status::Stopped {
        stop_loaded(paths, &config::load_basics(paths, &guest.name)?, timeout)?;
    }
    crate::cmd_build::delete(paths, &guest.name)
}

/// Settings that change nothing here, deprecated names, and files nobody
/// knows: each named, never silently ignored.
pub fn print_warnings(paths: &Paths, guest: &Guest) {
    for w in &guest.findings.warnings {
        eprintln!("vserver {}: warning: {w}", guest.name);
    }
    let unknown = known::unknown_files(&guest.confdir, known::Place::Guest)
        .into_iter()
        .chain(known::unknown_files(&paths.defaults_dir(), known::Place::Defaults));
    for file in unknown {
        eprintln!(
            "vserver {}: warning: {}: neither vserver-rs nor util-vserver reads a file of this name; it has no effect",
            guest.name,
            file.display()
        );
    }
}
