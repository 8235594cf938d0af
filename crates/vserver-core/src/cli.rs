//! Command-line pieces every binary shares: the path overrides and the exit
//! codes (0 success, 1 failure, 2 bad usage).

use std::path::PathBuf;

use crate::paths::{PathOverrides, Paths, ENV_CONFDIR, ENV_RUNDIR, ENV_VDIRBASE};

pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// `--confdir`, `--vdirbase`, `--rundir`, each also from its environment
/// variable; a flag wins over the environment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PathArgs {
    /// Configuration root (default /etc/vservers)
    #[arg(long, global = true, value_name = "DIR", env = ENV_CONFDIR)]
    pub confdir: Option<PathBuf>,
    /// Base directory of guest roots (default /vservers, or .defaults/vdirbase)
    #[arg(long, global = true, value_name = "DIR", env = ENV_VDIRBASE)]
    pub vdirbase: Option<PathBuf>,
    /// Run-state directory (default /run/vservers)
    #[arg(long, global = true, value_name = "DIR", env = ENV_RUNDIR)]
    pub rundir: Option<PathBuf>,
}

impl PathArgs {
    pub fn resolve(&self) -> anyhow::Result<Paths> {
        let overrides = PathOverrides { confdir: self.confdir.clone(), vdirbase: self.vdirbase.clone(), rundir: self.rundir.clone() };
        Ok(Paths::resolve(&overrides)?)
    }
}

/// Prints an error chain the way every tool does and returns the exit code.
/// Run by someone other than root, a refused operation also says that the
/// tool needs root, instead of leaving a bare "Permission denied".
pub fn report_error(tool: &str, err: &anyhow::Error) -> i32 {
    eprintln!("{tool}: {err:#}");
    if let Some(hint) = privilege_hint(tool, err) {
        eprintln!("{hint}");
    }
    EXIT_FAILURE
}

/// "TOOL: ... needs root" when the error is a refused permission and we are
/// not root; `None` otherwise.
pub fn privilege_hint(tool: &str, err: &anyhow::Error) -> Option<String> {
    if nix::unistd::geteuid().is_root() || !is_permission_error(err) {
        return None;
    }
    Some(format!(
        "{tool}: this needs root (it manages namespaces, cgroups and other users' processes): \
         run it as root, e.g. with sudo"
    ))
}

fn is_permission_error(err: &anyhow::Error) -> bool {
    let refused = |code: Option<i32>| matches!(code, Some(libc::EPERM) | Some(libc::EACCES));
    err.chain().any(|cause| {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return refused(io.raw_os_error()) || io.kind() == std::io::ErrorKind::PermissionDenied;
        }
        if let Some(errno) = cause.downcast_ref::<nix::errno::Errno>() {
            return refused(Some(*errno as i32));
        }
        let text = cause.to_string();
        text.contains("Permission denied") || text.contains("Operation not permitted")
    })
}

/// `vserver NAME status | head -1`: when the reader of stdout goes away, end
/// the way a C tool does (killed by SIGPIPE, silently) instead of panicking
/// in `println!`. Only stdout writes are affected: SIGPIPE stays ignored for
/// everything else (pipes and sockets to guest processes report EPIPE as
/// an error, as they must). Every binary calls this first in `main`.
pub fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            die_by_sigpipe();
        }
        default(info)
    }));
}

/// Ends the process by SIGPIPE with its default action, as a C program
/// writing to a closed pipe ends; the shell sees status 141.
pub fn die_by_sigpipe() -> ! {
    crate::sys::signal::die_by_signal(libc::SIGPIPE)
}

/// Writes `bytes` to stdout; a closed pipe ends the process quietly (see
/// [`exit_quietly_on_closed_pipe`]).
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_by_sigpipe(),
        other => other,
    }
}
