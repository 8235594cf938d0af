//! The command line of `vserver`, kept apart from main.rs so that man pages
//! and shell completions are generated from the very same definitions.

use clap::{Parser, Subcommand};
use vserver_core::cli::PathArgs;

/// Exit code of `status` for a stopped guest (as LSB init scripts use it).
pub const EXIT_STOPPED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "vserver",
    version,
    about = "Build, start, stop and enter Linux-VServer style guests on a stock kernel",
    after_help = "Examples:\n  vserver web1 build -m busybox --context 101 --interface lo:127.0.0.101/8\n  vserver web1 start\n  vserver web1 exec ps ax\n  vserver web1 exec --user www-data id\n  vserver web1 suexec www-data id\n  vserver web1 enter\n  vserver --all-marked default start\n\nExit codes: 0 success, 1 failure, 2 bad usage; `status` exits 3 when the guest is stopped; exec, suexec and enter exit with the command's code (128+N when signal N killed it, 255 when it could not be started)."
)]
pub struct Cli {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Act on every guest whose apps/init/mark is MARK (start or stop only)
    #[arg(long, value_name = "MARK")]
    pub all_marked: Option<String>,
    /// The guest (a directory under the configuration root)
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the guest's configuration and root
    Build {
        /// skeleton, busybox, debootstrap or clone
        #[arg(short = 'm', long = "method", value_name = "METHOD")]
        method: String,
        /// Context id (2-49151); default: the lowest free id from 100
        #[arg(long = "context", value_name = "XID")]
        context: Option<u32>,
        #[arg(long)]
        hostname: Option<String>,
        /// [name=]dev:ip[/prefix], repeatable; dev "nodev" for set-only addresses
        #[arg(long = "interface", value_name = "SPEC")]
        interfaces: Vec<String>,
        /// Replace an existing (stopped) guest
        #[arg(long)]
        force: bool,
        /// Method arguments after "--": debootstrap -d SUITE [-m MIRROR]; clone SOURCE
        #[arg(last = true)]
        method_args: Vec<String>,
    },
    /// Start the guest
    Start,
    /// Stop the guest: its stop command, SIGTERM, then SIGKILL after the timeout
    Stop {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Stop, then start
    Restart {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// An interactive login shell on a new pty in the running guest
    Enter,
    /// Run a command in the running guest; its exit code is ours (255: it could not be started)
    Exec {
        /// Run as this guest user (name or number, from the guest's /etc/passwd)
        #[arg(short = 'u', long = "user", value_name = "USER")]
        user: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
    },
    /// Run a command as a guest user (util-vserver's form of exec --user)
    Suexec {
        /// Name or number, resolved in the guest's /etc/passwd
        #[arg(value_name = "USER")]
        user: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
    },
    /// Restart the guest if it is running; do nothing (exit 0) if not
    Condrestart {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// apt-get in the guest (vserver NAME exec apt-get ARGS...)
    #[command(name = "apt-get")]
    AptGet {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// apt-cache in the guest
    #[command(name = "apt-cache")]
    AptCache {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// apt-config in the guest
    #[command(name = "apt-config")]
    AptConfig {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Is the guest running? (exit 0 running, 3 stopped)
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if the guest runs, 1 if not (quiet)
    Running,
    /// Remove a stopped guest's root and configuration
    Delete,
    /// Unify this guest's files with the hash store (vhashify NAME)
    Hashify {
        /// Count what would be done; change nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Make the mtime part of the key
        #[arg(long)]
        respect_mtime: bool,
        /// Also unify setuid and setgid files
        #[arg(long)]
        insecure: bool,
    },
}

