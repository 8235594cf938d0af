#![forbid(unsafe_code)]
//! `vtop`: a refreshing per-context view of the host.

mod cli;

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error, write_stdout};
use vserver_core::stat::top::{compare, now_line, render, Sample};
use vserver_core::sys;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vtop");
    let cli = cli::Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(report_error("vtop", &e) as u8),
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    if !(cli.delay.is_finite() && cli.delay >= 0.05) {
        bail!("-d {}: the delay must be at least 0.05 seconds", cli.delay);
    }
    let paths = cli.paths.resolve()?;
    let delay = Duration::from_secs_f64(cli.delay);
    let interactive = !cli.batch && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let frames = cli.iterations.or(if interactive { None } else { Some(1) });
    if interactive {
        catch_interrupts();
    }
    let _keys = if interactive { Some(RawKeys::new()?) } else { None };
    let mut prev = Sample::take(&paths).context("reading the contexts")?;
    let mut shown = 0;
    while frames.is_none_or(|n| shown < n) {
        if wait_or_quit(delay, interactive) {
            break;
        }
        let cur = Sample::take(&paths).context("reading the contexts")?;
        let (contexts, procs) = compare(&prev, &cur);
        let max = cli.processes.unwrap_or_else(|| if interactive { fit(contexts.len()) } else { 15 });
        let frame = render(&now_line(), &contexts, &procs, max);
        if interactive {
            write_stdout(format!("\x1b[H\x1b[2J{}", frame.replace('\n', "\r\n")).as_bytes())?;
        } else {
            write_stdout(format!("{frame}\n").as_bytes())?;
        }
        prev = cur;
        shown += 1;
    }
    Ok(())
}

/// Process lines that fit the terminal under the context table.
fn fit(contexts: usize) -> usize {
    let rows = termsize_rows().unwrap_or(24);
    rows.saturating_sub(contexts + 6).max(3)
}

fn termsize_rows() -> Option<usize> {
    let ws = sys::tty::window_size(std::io::stdout().as_fd()).ok()?;
    (ws.ws_row > 0).then_some(ws.ws_row as usize)
}

/// Sleeps `delay`; on a terminal returns early (true) at q or Ctrl-C.
fn wait_or_quit(delay: Duration, interactive: bool) -> bool {
    if !interactive {
        std::thread::sleep(delay);
        return false;
    }
    let deadline = std::time::Instant::now() + delay;
    loop {
        // Ctrl-C or SIGTERM (see `catch_interrupts`).
        if sys::signal::signal_noted() {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        if let Ok(n) = poll(&mut fds, ms) {
            if n > 0 {
                let mut b = [0u8; 16];
                let got = nix::unistd::read(0, &mut b).unwrap_or(0);
                if got == 0 || b[..got].iter().any(|c| matches!(c, b'q' | b'Q')) {
                    return true;
                }
            }
        }
    }
}

fn catch_interrupts() {
    use nix::sys::signal::Signal;
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let _ = sys::signal::note_signal(sig);
    }
}

/// The terminal without line buffering and echo while vtop runs (keys are
/// read at once); restored on drop.
struct RawKeys {
    saved: Termios,
}

impl RawKeys {
    fn new() -> anyhow::Result<RawKeys> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("reading the terminal settings")?;
        let mut raw = saved.clone();
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("setting the terminal")?;
        Ok(RawKeys { saved })
    }
}

impl Drop for RawKeys {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
        let _ = write_stdout(b"\r\n");
    }
}
