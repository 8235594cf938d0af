//! The command line of `vwait`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vwait",
    version,
    about = "Wait until a running guest has stopped",
    long_about = "Waits until the guest has stopped: its monitor has torn the context down (a reboot from \
                  inside is not a stop). With --timeout it gives up after that many seconds, and with \
                  --terminate it then stops the guest the way `vserver NAME stop` ends one. --status-fd writes \
                  util-vserver's status line (FINISHED, KILLED, TIMEOUT or ERROR errno) to that descriptor.",
    after_help = "Examples:\n  vwait web1                              until web1 has stopped\n  \
                  vserver web1 exec halt; vwait --timeout 30 web1 || echo \"web1 did not stop\"\n  \
                  vwait --timeout 60 --terminate --status-fd 3 101 3>status\n\n\
                  Exit codes (util-vserver's): 0 FINISHED, 1 KILLED (--terminate after the timeout), 2 TIMEOUT, \
                  127 ERROR (the guest is not running, unknown, or bad usage)."
)]
pub struct Cli {
    /// Give up after SECONDS (0 or less: wait for ever)
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub timeout: Option<i64>,
    /// When the timeout passes, stop the guest (exit 1, KILLED)
    #[arg(long)]
    pub terminate: bool,
    /// Write the status line (FINISHED, KILLED, TIMEOUT, ERROR N) to this open descriptor
    #[arg(long, value_name = "FD")]
    pub status_fd: Option<i32>,
    #[command(flatten)]
    pub paths: PathArgs,
    /// The guest, by context id or name
    #[arg(value_name = "XID|NAME")]
    pub guest: String,
}
