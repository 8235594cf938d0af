//! The command line of `vserver-stat`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vserver-stat",
    about = "Show the processes, memory, CPU time and uptime of every running context",
    after_help = "Columns: CTX context id (0 = host), PROC processes, VSZ virtual memory, RSS resident memory,\n\
userTIME/sysTIME CPU time (m s hundredths), UPTIME since the context's oldest process, NAME.\n\n\
Examples:\n  vserver-stat\n  vserver-stat --json | jq '.contexts[] | select(.limits.memory.hits > 0)'\n  \
vserver-stat --prometheus > /var/lib/node_exporter/vserver.prom\n\n\
Exit codes: 0 success, 1 failure, 2 bad usage."
)]
pub struct Cli {
    /// JSON: every figure as a number, plus limits, peaks and limit hits
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Prometheus text format (node exporter textfile collector)
    #[arg(long)]
    pub prometheus: bool,
    #[command(flatten)]
    pub paths: PathArgs,
}
