#![forbid(unsafe_code)]
//! `vserver NAME COMMAND`: build, start, stop, enter and inspect guests.
// The doc comments of cli.rs are clap's help text (what `--help` prints),
// not rustdoc: `<confdir>` and `[dev:]` there are meant literally.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use vserver_core::runstate;
use vserver_core::Paths;

mod all_marked;
mod cli;
mod cmd_build;
mod cmd_exec;
mod cmd_ip;
mod guest_arg;
mod lifecycle;
mod status;

use cli::{Cli, Command};

fn main() -> ExitCode {
    vserver_core::cli::exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vserver");
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            vserver_core::cli::report_error("vserver", &e);
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let paths = cli.paths.resolve()?;
    if let Some(mark) = &cli.all_marked {
        let action = match &cli.command {
            Command::Start => all_marked::Action::Start,
            Command::Stop { timeout } => all_marked::Action::Stop { timeout: *timeout },
            _ => {
                eprintln!("vserver: --all-marked only goes with start or stop");
                return Ok(2);
            }
        };
        return all_marked::run(&paths, mark, action, cli.jobs.unwrap_or(all_marked::DEFAULT_JOBS));
    }
    let Some(given) = cli.name.as_deref() else {
        eprintln!("vserver: name a guest (vserver NAME COMMAND) or use --all-marked MARK");
        return Ok(2);
    };
    // A guest by name, by the context id of a running guest, or by its configuration directory.
    let named = if matches!(cli.command, Command::Build { .. }) {
        guest_arg::Named { name: given.to_string(), as_given: given.to_string() }
    } else {
        guest_arg::resolve(&paths, given)?
    };
    let name = named.name.as_str();
    match &cli.command {
        Command::Build(args) => cmd_build::build(&paths, name, args),
        Command::Start => lifecycle::start(&paths, name),
        Command::Stop { timeout } => lifecycle::stop(&paths, name, *timeout),
        Command::Restart { timeout } => lifecycle::restart(&paths, name, *timeout),
        Command::Enter => cmd_exec::enter(&paths, name),
        Command::Exec { user, argv } => cmd_exec::exec(&paths, name, user.as_deref(), argv),
        Command::Suexec { user, argv } => cmd_exec::exec(&paths, name, Some(user), argv),
        Command::AptGet { args } => cmd_exec::apt(&paths, name, "apt-get", args),
        Command::AptCache { args } => cmd_exec::apt(&paths, name, "apt-cache", args),
        Command::AptConfig { args } => cmd_exec::apt(&paths, name, "apt-config", args),
        Command::Condrestart { timeout } => {
            if !runstate::is_running(&paths, name) {
                return Ok(0);
            }
            lifecycle::restart(&paths, name, *timeout)
        }
        Command::Status { json } => status::run(&paths, &named, *json),
        Command::Running => Ok(if runstate::is_running(&paths, name) { 0 } else { 1 }),
        Command::Delete { force } => lifecycle::delete(&paths, &named, *force, 10),
        Command::Ip { action } => cmd_ip::run(&paths, &vserver_core::config::load_guest(&paths, name)?, action),
        Command::Hashify { dry_run, respect_mtime, insecure } => hashify(&paths, name, *dry_run, *respect_mtime, *insecure),
    }
}

/// `vserver NAME hashify`: vhashify for one guest, quiet unless on a terminal.
fn hashify(paths: &Paths, name: &str, dry_run: bool, respect_mtime: bool, insecure: bool) -> Result<u8> {
    use std::io::IsTerminal;
    let opts = vserver_core::unify::UnifyOptions {
        dry_run,
        respect_mtime,
        insecure,
        progress: std::io::stdout().is_terminal(),
        ..Default::default()
    };
    let summary = vserver_core::unify::hashify(paths, &[name.to_string()], &opts)?;
    for m in &summary.error_messages {
        eprintln!("vserver {name}: {m}");
    }
    if dry_run || std::io::stdout().is_terminal() {
        println!("{summary}");
    }
    Ok(u8::from(summary.errors > 0))
}
