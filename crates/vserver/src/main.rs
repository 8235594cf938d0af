//! `vserver NAME COMMAND`: build, start, stop, enter and inspect guests.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use vserver_core::builder::{self, BuildOptions, InterfaceSpec, Method};
use vserver_core::config::{self, Guest};
use vserver_core::context::{self, StopOptions, Stopped};
use vserver_core::runstate::{self, Status};
use vserver_core::Paths;

mod cli;

use cli::{Cli, Command, EXIT_STOPPED};

fn main() -> ExitCode {
    vserver_core::cli::exit_quietly_on_closed_pipe();
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
        return all_marked(&paths, mark, &cli.command);
    }
    let Some(name) = cli.name.as_deref() else {
        eprintln!("vserver: name a guest (vserver NAME COMMAND) or use --all-marked MARK");
        return Ok(2);
    };
    match &cli.command {
        Command::Build { method, context, hostname, interfaces, force, method_args } => {
            let method = parse_method(method, method_args)?;
            let interfaces = interfaces
                .iter()
                .map(|s| InterfaceSpec::parse(s).map_err(|e| anyhow::anyhow!("--interface {s}: {e}")))
                .collect::<Result<Vec<_>>>()?;
            let opts = BuildOptions { method, context: *context, hostname: hostname.clone(), interfaces, force: *force };
            builder::build_guest(&paths, name, &opts)?;
            Ok(0)
        }
        Command::Start => {
            context::start_guest(&paths, &load(&paths, name)?)?;
            Ok(0)
        }
        Command::Stop { timeout } => stop(&paths, &load(&paths, name)?, *timeout),
        Command::Restart { timeout } => {
            let guest = load(&paths, name)?;
            if runstate::is_running(&paths, name) {
                stop(&paths, &guest, *timeout)?;
            }
            context::start_guest(&paths, &guest)?;
            Ok(0)
        }
        Command::Enter => exit_code(context::enter_shell(&paths, name)?),
        Command::Exec { argv } => exit_code(context::exec_in_guest(&paths, name, argv, None)?),
        Command::Status { json } => status(&paths, name, *json),
        Command::Running => Ok(if runstate::is_running(&paths, name) { 0 } else { 1 }),
        Command::Delete => {
            builder::delete_guest(&paths, name)?;
            Ok(0)
        }
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

fn load(paths: &Paths, name: &str) -> Result<Guest> {
    Ok(config::load_guest(paths, name)?)
}

fn exit_code(code: i32) -> Result<u8> {
    Ok(code.clamp(0, 255) as u8)
}

fn parse_method(method: &str, args: &[String]) -> Result<Method> {
    Ok(match method {
        "skeleton" => Method::Skeleton,
        "busybox" => Method::Busybox,
        "debootstrap" => Method::Debootstrap(args.to_vec()),
        "clone" => {
            let source = match args {
                [s] => s.clone(),
                [flag, s] if flag == "--source" => s.clone(),
                _ => anyhow::bail!("build -m clone needs the source: -- SOURCE (a guest name or a root directory)"),
            };
            Method::Clone(source)
        }
        other => anyhow::bail!("unknown build method {other:?} (skeleton, busybox, debootstrap or clone)"),
    })
}

fn stop(paths: &Paths, guest: &Guest, timeout: u64) -> Result<u8> {
    match context::stop_guest(paths, guest, StopOptions { timeout: Duration::from_secs(timeout) })? {
        Stopped::Stopped => Ok(0),
        Stopped::CleanedStale => {
            eprintln!("vserver: guest {:?} was not running; its stale run state was removed", guest.name);
            Ok(0)
        }
    }
}

fn status(paths: &Paths, name: &str, json: bool) -> Result<u8> {
    config::load_guest(paths, name)?;
    let status = runstate::status(paths, name).context("reading the run state")?;
    let (word, code) = match &status {
        Status::Running(_) => ("running", 0),
        Status::Stopped => ("stopped", EXIT_STOPPED),
        Status::Stale(_) => ("stale", 1),
    };
    if json {
        let mut v = serde_json::json!({ "name": name, "status": word });
        // Keys as in schemas/vserver-status.json: units in the names.
        if let Status::Running(s) | Status::Stale(s) = &status {
            v["xid"] = s.xid.into();
            v["init_pid"] = s.init.pid.into();
            v["monitor_pid"] = s.monitor.pid.into();
            v["started_at_seconds"] = s.started_at.into();
            v["uptime_seconds"] = runstate::now_secs().saturating_sub(s.started_at).into();
        }
        println!("{v}");
    } else {
        match &status {
            Status::Running(s) => {
                println!(
                    "guest {name} is running (context {}, init pid {}, up {}s)",
                    s.xid,
                    s.init.pid,
                    runstate::now_secs().saturating_sub(s.started_at)
                );
                match vserver_core::stat::guest_status_lines(paths, name) {
                    Ok(lines) => print!("{lines}"),
                    Err(e) => eprintln!("vserver: {name}: figures unavailable: {e:#}"),
                }
            }
            Status::Stopped => println!("guest {name} is stopped"),
            Status::Stale(s) => println!(
                "guest {name} is not running, but its run state is stale (monitor {} / init {} gone)",
                s.monitor.pid, s.init.pid
            ),
        }
    }
    Ok(code)
}

/// util-vserver's `vserver --all-marked MARK start|stop` for boot-time autostart.
fn all_marked(paths: &Paths, mark: &str, command: &Command) -> Result<u8> {
    let mut failed = false;
    for name in config::list_guests(paths)? {
        let guest = match config::load_guest(paths, &name) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("vserver: {e}");
                failed = true;
                continue;
            }
        };
        if guest.init.mark.as_deref() != Some(mark) {
            continue;
        }
        let running = runstate::is_running(paths, &name);
        let result = match command {
            Command::Start if !running => context::start_guest(paths, &guest),
            Command::Stop { timeout } if running => stop(paths, &guest, *timeout).map(|_| ()),
            Command::Start | Command::Stop { .. } => Ok(()),
            _ => anyhow::bail!("--all-marked only goes with start or stop"),
        };
        if let Err(e) = result {
            eprintln!("vserver {name}: {e:#}");
            failed = true;
        }
    }
    Ok(u8::from(failed))
}
