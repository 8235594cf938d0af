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
    after_help = "Examples:\n  vserver web1 build -m busybox --context 101 --interface lo:127.0.0.101/8\n  vserver web1 start\n  vserver web1 exec ps ax\n  vserver web1 enter\n  vserver --all-marked default start\n\nExit codes: 0 success, 1 failure, 2 bad usage; `status` exits 3 when the guest is stopped."
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
    /// An interactive login shell in the running guest
    Enter,
    /// Run a command in the running guest; its exit code is ours
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
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
    /// Change the running guest's IP set without a restart (util-vserver's naddress)
    #[command(
        after_help = "Examples:\n  vserver web1 ip add 192.0.2.11/24 --dev eth0 --save\n  vserver web1 ip del 192.0.2.11 --save\n  vserver web1 ip show\n\n\
                      A change is one step for the guest: binds, connects and packets see the old set or the\n\
                      new one. --save writes interfaces/ as well (otherwise a restart forgets the change)."
    )]
    Ip {
        #[command(subcommand)]
        action: IpAction,
    },
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


#[derive(Subcommand)]
pub enum IpAction {
    /// Add an address to the set (and to DEV on the host, if it is not there)
    Add {
        /// The address; the prefix names its subnet (sources for it), it does not widen the set
        #[arg(value_name = "ADDR[/PREFIX]")]
        address: String,
        /// Host device to put the address on (without: it is only in the set, like nodev)
        #[arg(long, value_name = "DEV")]
        dev: Option<String>,
        /// Also write it to the guest's interfaces/
        #[arg(long)]
        save: bool,
    },
    /// Remove an address from the set (and from its device, if the guest put it there)
    Del {
        #[arg(value_name = "ADDR")]
        address: std::net::IpAddr,
        /// Also remove it from the guest's interfaces/
        #[arg(long)]
        save: bool,
        /// Remove it although sockets of the guest are bound to it (they keep it until they close)
        #[arg(long)]
        force: bool,
    },
    /// The set as it is now
    Show,
}
