//! The command line of `vtop`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vtop",
    version,
    about = "A top for contexts: which guest uses the CPU, memory and its limits, refreshed",
    long_about = "Shows every running context (the host as 0 first, then the guests, busiest first) with its \
                  processes, CPU share over the last interval (100 is one CPU), resident memory, memory \
                  limit, limit hits (memory, processes) and CPU throttling since it started, and below that \
                  the busiest processes of the whole host with their context, as vps shows it. On a \
                  terminal the screen refreshes every DELAY seconds until q or Ctrl-C; -b prints frames one \
                  after the other for scripts and logs.",
    after_help = "Examples:\n  vtop                        refresh every 3 seconds; q quits\n  \
                  vtop -d 1                   every second\n  \
                  vtop -b -n 1 -d 5           one frame: the CPU shares over five seconds\n  \
                  vtop -b -n 12 -d 5 >> /var/log/vtop.log\n\n\
                  Columns: CTX, NAME, PROC processes, %CPU over the interval, RSS, MEMLIMIT (rss limit), MEMHITS \
                  (times the memory limit was hit), PIDHITS (forks refused by nproc), THROTTLED (periods the CPU \
                  token bucket ran dry), UPTIME.\n\
                  Exit codes: 0 success, 1 failure, 2 bad usage."
)]
pub struct Cli {
    /// Batch mode: print frames one after the other, no screen control, no keys
    #[arg(short = 'b', long = "batch")]
    pub batch: bool,
    /// Stop after N frames (default: batch 1, terminal until q)
    #[arg(short = 'n', long = "iterations", value_name = "N")]
    pub iterations: Option<u64>,
    /// Seconds between frames (the interval the CPU shares are measured over)
    #[arg(short = 'd', long = "delay", value_name = "SECONDS", default_value_t = 3.0)]
    pub delay: f64,
    /// How many processes to list (default: what fits the terminal; batch 15)
    #[arg(short = 'p', long = "processes", value_name = "N")]
    pub processes: Option<usize>,
    #[command(flatten)]
    pub paths: PathArgs,
}
