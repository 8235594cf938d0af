//! A security context applied to a process tree: starting a guest (the
//! privileged steps in order), the host-side monitor that is the parent of
//! its pid 1 (console, readiness, stop requests), joining it (`enter`,
//! `exec`) and stopping it.

mod channel;
mod command;
mod console_log;
pub mod control;
pub mod enter;
pub mod error;
mod fdpass;
mod guest_main;
pub mod halt;
mod init;
pub mod killseq;
mod monitor;
mod network;
mod notify;
pub mod oom;
#[cfg(test)]
mod order_tests;
mod pid1;
mod ping;
mod pty;
mod report;
pub mod restrict;
pub mod scripts;
pub mod settings;
mod setup;
pub mod start;
pub mod stop;
pub mod userns;

pub use console_log::{CONSOLE_LIMIT, MONITOR_LOG_LIMIT};
pub use control::{ExecOptions, Outcome};
pub use enter::{enter_shell, exec_in_guest, run_in_guest};
pub use guest_main::SYSTEMD_PATHS;
pub use monitor::DEFAULT_READY_TIMEOUT;
pub use notify::NOTIFY_PATH;
pub use oom::GUEST_OOM_SCORE_ADJ;
pub use start::start_guest;
pub use stop::{stop_guest, StopOptions, Stopped};

pub use crate::runstate::require_running;

/// Environment of every process started in a guest: nothing of the host's.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
