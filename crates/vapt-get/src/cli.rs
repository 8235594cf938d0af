//! The command line of `vapt-get`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vapt-get",
    version,
    about = "Run apt-get in several guests, one after the other, and report each guest's result",
    long_about = "Runs `vserver NAME exec apt-get ARGS` for each guest named, or for every guest a filter \
                  selects (--all, --running, --stopped, --marked, --unmarked, --mark MARK, as util-vserver's \
                  vsomething takes them), in name order. Before each guest a line names it; after a failure a \
                  line gives its exit code, and at the end a summary lists every guest's result. apt-get's \
                  own input and output are the terminal's, so it can ask questions. A stopped guest is not \
                  started: it fails with a message saying so.",
    after_help = "Examples:\n  vapt-get web1 web2 -- update\n  \
                  vapt-get --running -- -y upgrade\n  \
                  vapt-get --mark default -q -- install -y less\n\n\
                  Exit codes: 0 apt-get succeeded in every guest; otherwise the exit code of the last guest that \
                  failed (with one guest: apt-get's own); 1 when no guest was selected; 2 bad usage."
)]
pub struct Cli {
    /// Every configured guest
    #[arg(long)]
    pub all: bool,
    /// Every running guest
    #[arg(long)]
    pub running: bool,
    /// Every stopped guest (they fail: apt-get needs the guest running)
    #[arg(long)]
    pub stopped: bool,
    /// Every guest with an apps/init/mark
    #[arg(long)]
    pub marked: bool,
    /// Every guest without an apps/init/mark
    #[arg(long)]
    pub unmarked: bool,
    /// Every guest whose apps/init/mark is MARK
    #[arg(long, value_name = "MARK")]
    pub mark: Option<String>,
    /// No per-guest header and no summary, only failures
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub paths: PathArgs,
    /// The guests, by name
    #[arg(value_name = "GUEST")]
    pub guests: Vec<String>,
    /// apt-get's arguments (after --)
    #[arg(last = true, required = true, value_name = "APT-ARGS")]
    pub apt_args: Vec<String>,
}
