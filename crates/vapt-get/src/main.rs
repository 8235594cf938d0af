#![forbid(unsafe_code)]
//! `vapt-get`: apt-get in several guests, each through `vserver NAME exec`.

mod cli;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error};
use vserver_core::paths::{Paths, ENV_CONFDIR, ENV_RUNDIR, ENV_VDIRBASE};
use vserver_core::running::select::{guests_matching, Filter};

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vapt-get");
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => ExitCode::from(report_error("vapt-get", &e) as u8),
    }
}

fn filters(cli: &cli::Cli) -> Vec<Filter> {
    let mut f = Vec::new();
    let flags = [(cli.all, Filter::All), (cli.running, Filter::Running), (cli.stopped, Filter::Stopped)];
    f.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, x)| x));
    let flags = [(cli.marked, Filter::Marked), (cli.unmarked, Filter::Unmarked)];
    f.extend(flags.into_iter().filter(|(on, _)| *on).map(|(_, x)| x));
    f.extend(cli.mark.clone().map(Filter::Mark));
    f
}

fn run(cli: &cli::Cli) -> anyhow::Result<u8> {
    let paths = cli.paths.resolve()?;
    let mut guests = cli.guests.clone();
    let filters = filters(cli);
    if !filters.is_empty() {
        for g in guests_matching(&paths, &filters)? {
            if !guests.contains(&g) {
                guests.push(g);
            }
        }
    }
    if guests.is_empty() {
        anyhow::bail!("no guest selected (name guests, or use --all, --running, --mark MARK, ...)");
    }
    let quiet = cli.quiet || guests.len() == 1;
    let vserver = vserver_binary();
    let mut results = Vec::new();
    for (i, name) in guests.iter().enumerate() {
        if !quiet {
            eprintln!("vapt-get: operating on vserver {name} [{}/{}]", i + 1, guests.len());
        }
        let status =
            guest_command(&vserver, &paths, name, &cli.apt_args).status().with_context(|| format!("running {}", vserver.display()))?;
        let code = status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
        if code != 0 && guests.len() > 1 {
            eprintln!("vapt-get failed on vserver '{name}' with errorcode {code}");
        }
        results.push((name.clone(), code));
    }
    if !quiet {
        let summary: Vec<String> =
            results.iter().map(|(n, c)| if *c == 0 { format!("{n} ok") } else { format!("{n} failed ({c})") }).collect();
        eprintln!("vapt-get: {}", summary.join(", "));
    }
    Ok(results.iter().rev().find(|(_, c)| *c != 0).map_or(0, |(_, c)| (*c).clamp(1, 255) as u8))
}

/// `vserver NAME exec apt-get ARGS`, with our paths handed on.
fn guest_command(vserver: &PathBuf, paths: &Paths, name: &str, args: &[String]) -> Command {
    let mut c = Command::new(vserver);
    c.env(ENV_CONFDIR, &paths.confdir).env(ENV_VDIRBASE, &paths.vdirbase).env(ENV_RUNDIR, &paths.rundir);
    c.arg(name).arg("exec").arg("apt-get").args(args);
    c
}

/// The vserver binary installed beside this one, else the one in PATH.
fn vserver_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("vserver")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("vserver"))
}
