//! The command line of `vlimit`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).
//! The resource options (`--rss`, `--nofile`, ...) are made from the core's
//! list of resources, in command-line order with the -M/-S/-H before them.

use clap::{ArgAction, CommandFactory, Parser};
use vserver_core::cli::PathArgs;
use vserver_core::limits::rlimit::ALL_RESOURCES;

/// Linux-VServer limits with no counterpart on a stock kernel: accepted as
/// options so that the error says so instead of "unknown option".
pub const VSERVER_ONLY: &[&str] = &["nsock", "openfd", "anon", "shmem", "semary", "nsems", "dentry"];

#[derive(Parser, Debug)]
#[command(
    name = "vlimit",
    about = "Show and change the resource limits of a running guest",
    after_help = "Resources: cpu fsize data stack core rss nproc nofile memlock as locks sigpending msgqueue nice rtprio.\n\
rss and nproc are context-wide (the guest's cgroup); rss is in pages, or bytes with a K/M/G suffix.\n\
Values: 42, 1k (1000), 1K (1024), 1m, 1M, 1g, 1G, inf.\n\n\
Examples:\n  vlimit -c web1 --rss 64M --nproc 200      hard limits of a running guest\n  \
vlimit -c 49000 -S --nofile 1024 --save    soft limit, also saved in rlimits/nofile.soft\n  \
vlimit -c web1 --stats                     usage, limits, maxima and hits\n  \
vlimit --nofile 64 -- ./server             run a command under a limit\n\n\
Exit codes: 0 success, 1 failure, 2 bad usage."
)]
pub struct Args {
    /// The guest, by context id or name
    #[arg(short = 'c', long = "xid", value_name = "XID|NAME")]
    pub context: Option<String>,
    /// Show every limit (util-vserver's columns: minimum, soft, hard)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Show limits in decimal instead of hex
    #[arg(short = 'd')]
    pub decimal: bool,
    /// Show resource numbers instead of names
    #[arg(short = 'n')]
    pub numeric: bool,
    /// The next resource option sets the minimum (rss only)
    #[arg(short = 'M', action = ArgAction::Count)]
    pub min: u8,
    /// The next resource option sets the soft limit
    #[arg(short = 'S', action = ArgAction::Count)]
    pub soft: u8,
    /// The next resource option sets the hard limit (the default)
    #[arg(short = 'H', action = ArgAction::Count)]
    pub hard: u8,
    /// Show usage, limits, maximum seen and limit hits of the context
    #[arg(long)]
    pub stats: bool,
    /// With --stats: JSON instead of a table
    #[arg(long, requires = "stats")]
    pub json: bool,
    /// Also write the changes to <confdir>/NAME/rlimits/ (atomically)
    #[arg(long)]
    pub save: bool,
    /// Show the cgroup layout and which controllers the limits use
    #[arg(long)]
    pub info: bool,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Command to run under the given per-process limits (after --)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The whole command line: the derived options plus one `--<res> VALUE`
/// per resource.
pub struct Cli;

impl Cli {
    pub fn command() -> clap::Command {
        let mut cmd = Args::command();
        for r in ALL_RESOURCES {
            cmd = cmd.arg(clap::Arg::new(r.name()).long(r.name()).value_name("VALUE").action(ArgAction::Append).help_heading("Resources"));
        }
        for name in VSERVER_ONLY {
            cmd = cmd.arg(clap::Arg::new(*name).long(name).value_name("VALUE").action(ArgAction::Append).hide(true));
        }
        cmd
    }
}
