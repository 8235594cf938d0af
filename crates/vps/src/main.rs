#![forbid(unsafe_code)]
//! `vps`: ps with util-vserver's CONTEXT column.

mod cli;

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context as _;
use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error, write_stdout};
use vserver_core::stat::owner::ContextMap;
use vserver_core::stat::vps;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vps");
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => ExitCode::from(report_error("vps", &e) as u8),
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<u8> {
    let paths = cli.paths.resolve()?;
    let contexts = ContextMap::load(&paths).with_context(|| format!("reading the run state in {}", paths.rundir.display()))?;
    let program = if Path::new("/bin/ps").exists() { "/bin/ps" } else { "ps" };
    let mut ps = Command::new(program)
        .args(&cli.ps_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program} (apt-get install procps)"))?;
    let mut output = Vec::new();
    ps.stdout.take().expect("piped").read_to_end(&mut output).context("reading ps's output")?;
    // ps has exited but is not reaped yet; its own line belongs to our context.
    let ps_pid = ps.id() as i32;
    let me = contexts.owner_of(std::process::id() as i32);
    let annotated = vps::annotate(&output, |pid| if pid == ps_pid { me.clone() } else { contexts.owner_of(pid) });
    let status = ps.wait().context("waiting for ps")?;
    let code = match status.code() {
        Some(c) => c as u8,
        None => 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0) as u8,
    };
    match annotated {
        Ok(text) => write_stdout(&text).context("writing to stdout")?,
        // ps refused its options: its own message on stderr says why.
        Err(_) if code != 0 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(code)
}
