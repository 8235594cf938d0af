//! A security context applied to a process tree: starting a guest (the
//! privileged steps in order), the host-side monitor that is the parent of
//! its pid 1, joining it (`enter`, `exec`) and stopping it.

mod channel;
mod command;
pub mod control;
pub mod enter;
mod init;
mod monitor;
mod network;
mod ping;
mod pty;
pub mod restrict;
mod setup;
pub mod start;
pub mod stop;
pub mod userns;

pub use control::{ExecOptions, Outcome};
pub use enter::{enter_shell, exec_in_guest, run_in_guest};
pub use start::start_guest;
pub use stop::{stop_guest, StopOptions, Stopped};

use crate::paths::Paths;
use crate::runstate::{self, RunState, Status};

/// The running guest's state, or an error saying it does not run.
pub fn require_running(paths: &Paths, name: &str) -> anyhow::Result<RunState> {
    match runstate::status(paths, name)? {
        Status::Running(s) => Ok(s),
        Status::Stopped => anyhow::bail!("guest {name:?} is not running"),
        Status::Stale(s) => anyhow::bail!(
            "guest {name:?} is not running: its run state ({}) is stale (monitor pid {} or init pid {} is gone); \
             `vserver {name} stop` cleans it up",
            RunState::file(paths, name).display(),
            s.monitor.pid,
            s.init.pid
        ),
    }
}

/// Environment of every process started in a guest: nothing of the host's.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
