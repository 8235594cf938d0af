#![forbid(unsafe_code)]
//! `vuname`: a running guest's uts names.

mod cli;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, privilege_hint, write_stdout};
use vserver_core::running::uts::{self, Tag};
use vserver_core::running::{find_running, Selector};

/// util-vserver's vuname exits 255 on every failure.
const EXIT_FAILURE: u8 = 255;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vuname");
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vuname: {e:#}");
            if let Some(hint) = privilege_hint("vuname", &e) {
                eprintln!("{hint} (CAP_SYS_ADMIN to join the guest's uts namespace)");
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let paths = cli.paths.resolve()?;
    let sel = Selector::parse(&cli.xid).map_err(|e| anyhow!("--xid {}: {e}", cli.xid))?;
    let state = find_running(&paths, &sel)?;
    if cli.set || cli.dir.is_some() {
        let changes = match &cli.dir {
            Some(dir) => from_dir(dir, cli.missingok)?,
            None => cli.tags.iter().map(|t| parse_assignment(t)).collect::<anyhow::Result<Vec<_>>>()?,
        };
        if cli.set && changes.is_empty() {
            bail!("-s needs at least one -t TAG=VALUE");
        }
        uts::set(&state, &changes).with_context(|| format!("guest {:?}", state.name))?;
        if let Some((program, args)) = cli.rest.split_first() {
            let err = Command::new(program).args(args).exec();
            bail!("running {program}: {err}");
        }
        return Ok(());
    }
    let tags = if cli.rest.is_empty() {
        uts::ALL.to_vec()
    } else {
        cli.rest.iter().map(|t| Tag::parse(t).map_err(|e| anyhow!(e))).collect::<anyhow::Result<Vec<_>>>()?
    };
    let names = uts::read(&state, &paths.guest_confdir(&state.name)).with_context(|| format!("guest {:?}", state.name))?;
    let line: Vec<&str> = tags.iter().map(|t| names.get(*t)).collect();
    write_stdout(format!("{}\n", line.join(" ")).as_bytes())?;
    Ok(())
}

fn parse_assignment(s: &str) -> anyhow::Result<(Tag, String)> {
    let (tag, value) = s.split_once('=').unwrap_or((s, ""));
    Ok((Tag::parse(tag).map_err(|e| anyhow!(e))?, value.to_string()))
}

/// util-vserver's `--dir`: one file per tag (the last newlines cut off).
fn from_dir(dir: &Path, missing_ok: bool) -> anyhow::Result<Vec<(Tag, String)>> {
    if !dir.exists() {
        if missing_ok {
            return Ok(Vec::new());
        }
        bail!("{}: no such directory", dir.display());
    }
    let mut out = Vec::new();
    for tag in uts::ALL {
        let file = dir.join(tag.name());
        match std::fs::read_to_string(&file) {
            Ok(text) => out.push((tag, text.trim_end_matches('\n').to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow!(e).context(format!("reading {}", file.display()))),
        }
    }
    Ok(out)
}
