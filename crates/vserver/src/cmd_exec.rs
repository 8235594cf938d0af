//! `vserver NAME exec|suexec|enter|apt-get|apt-cache|apt-config`: a command
//! in the running guest, through its monitor (see vserver-core's
//! context/control). Exit code: the command's, 128+N when signal N killed
//! it, 255 when it could not be started (util-vserver's wrappers' code).

use anyhow::Result;
use vserver_core::context::{self, Outcome};
use vserver_core::Paths;

pub fn exec(paths: &Paths, name: &str, user: Option<&str>, argv: &[String]) -> Result<u8> {
    report(name, context::run_in_guest(paths, name, argv, user)?)
}

pub fn enter(paths: &Paths, name: &str) -> Result<u8> {
    let shell = vserver_core::config::shell::enter_shell(paths, name)?;
    report(name, context::enter_shell(paths, name, shell)?)
}

/// util-vserver's package helpers; the guest's own apt does the work.
pub fn apt(paths: &Paths, name: &str, tool: &str, args: &[String]) -> Result<u8> {
    let mut argv = vec![tool.to_string()];
    argv.extend(args.iter().cloned());
    exec(paths, name, None, &argv)
}

fn report(name: &str, outcome: Outcome) -> Result<u8> {
    if let Outcome::NotRun(why) = &outcome {
        eprintln!("vserver {name}: {why}");
    }
    Ok(outcome.exit_code().clamp(0, 255) as u8)
}
