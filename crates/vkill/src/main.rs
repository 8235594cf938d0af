#![forbid(unsafe_code)]
//! `vkill`: signals to a guest's processes by their guest pids.

mod cli;

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error, EXIT_USAGE};
use vserver_core::running::signal::{find_guest_pid, guest_processes, parse_signal};
use vserver_core::running::{find_running, Selector};
use vserver_core::sys::pidfd;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vkill");
    let cli = cli::Cli::parse();
    let signal = match parse_signal(&cli.signal) {
        Ok(s) => s,
        Err(e) => return usage(&format!("invalid signal: {e}")),
    };
    let mut pids = Vec::new();
    for p in &cli.pids {
        match p.parse::<i32>() {
            Ok(n) if n >= 0 => pids.push(n),
            _ => return usage(&format!("{p:?} is not a process id")),
        }
    }
    if cli.xid.is_none() && pids.is_empty() {
        return usage("no pid given (with --xid and no pid, every process of the guest gets the signal)");
    }
    let mut failed = false;
    let result = match &cli.xid {
        Some(x) => in_guest(&cli, x, signal, &pids, &mut failed),
        None => host_pids(signal, &pids, &mut failed),
    };
    match result {
        Err(e) => ExitCode::from(report_error("vkill", &e) as u8),
        Ok(()) => ExitCode::from(u8::from(failed)),
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("vkill: {msg}; try 'vkill --help'");
    ExitCode::from(EXIT_USAGE as u8)
}

/// `--xid`: the pids are the guest's own; none or 0 means all of them.
fn in_guest(cli: &cli::Cli, xid: &str, signal: i32, pids: &[i32], failed: &mut bool) -> anyhow::Result<()> {
    let paths = cli.paths.resolve()?;
    let sel = Selector::parse(xid).map_err(|e| anyhow!("--xid {xid}: {e}"))?;
    let state = find_running(&paths, &sel)?;
    if pids.is_empty() || pids.contains(&0) {
        let all = guest_processes(&state).with_context(|| format!("listing the processes of guest {:?}", state.name))?;
        for p in &all {
            // A process that exits meanwhile needs no signal any more.
            match p.signal(signal) {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                    report(failed, anyhow!(e).context(format!("guest {:?}: pid {}", state.name, p.guest_pid)))
                }
                _ => {}
            }
        }
    }
    for &pid in pids.iter().filter(|p| **p != 0) {
        match find_guest_pid(&state, pid) {
            Err(e) => report(failed, anyhow!(e)),
            Ok(p) => {
                if let Err(e) = p.signal(signal) {
                    report(failed, anyhow!(e).context(format!("guest {:?}: pid {pid}", state.name)));
                }
            }
        }
    }
    Ok(())
}

/// No `--xid`: util-vserver's form with host pids.
fn host_pids(signal: i32, pids: &[i32], failed: &mut bool) -> anyhow::Result<()> {
    for &pid in pids {
        if pid == 0 {
            bail!("pid 0 needs --xid (it means every process of that guest)");
        }
        if let Err(e) = pidfd::open(pid).and_then(|fd| pidfd::send_signal(&fd, signal)) {
            report(failed, anyhow!(e).context(format!("pid {pid}")));
        }
    }
    Ok(())
}

fn report(failed: &mut bool, e: anyhow::Error) {
    report_error("vkill", &e);
    *failed = true;
}
