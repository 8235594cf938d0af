//! The command line of `vkill`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vkill",
    version,
    about = "Send a signal to processes of a running guest, named by their pid inside the guest",
    long_about = "Sends a signal to processes of a running guest. With --xid, each PID is a process id as the \
                  guest sees it (1 is the guest's init); without PIDs (or with PID 0) every process of the guest \
                  gets the signal. Without --xid the PIDs are host pids. The processes are found through the \
                  guest's cgroup and pid namespace and signalled through pidfds, so a pid reused meanwhile \
                  is never hit.",
    after_help = "Examples:\n  vkill --xid web1 -s HUP 1          reload the guest's init\n  \
                  vkill -c 101 -s TERM 345 346       two processes of context 101, by their guest pids\n  \
                  vkill --xid web1 -s KILL           every process of web1 (the guest ends)\n\n\
                  Signals: a number, or a name with or without SIG (HUP, SIGTERM, RTMIN+3); default TERM.\n\
                  Exit codes: 0 every signal was sent, 1 failure (no such guest or process, not permitted), 2 bad usage."
)]
pub struct Cli {
    /// The guest, by context id or name (its PIDs are then guest pids)
    #[arg(short = 'c', long = "xid", value_name = "XID|NAME")]
    pub xid: Option<String>,
    /// The signal (default TERM)
    #[arg(short = 's', value_name = "SIGNAL", default_value = "TERM")]
    pub signal: String,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Processes to signal; none (or 0) means every process of the guest
    #[arg(value_name = "PID")]
    pub pids: Vec<String>,
}
