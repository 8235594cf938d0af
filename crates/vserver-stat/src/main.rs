//! vserver-stat: one line per running context, util-vserver's table.

use clap::Parser;
use vserver_core::cli::{report_error, PathArgs};
use vserver_core::stat::{collect, export, format, Detail};

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
struct Cli {
    /// JSON: every figure as a number, plus limits, peaks and limit hits
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Prometheus text format (node exporter textfile collector)
    #[arg(long)]
    prometheus: bool,
    #[command(flatten)]
    paths: PathArgs,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        std::process::exit(report_error("vserver-stat", &e));
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let paths = cli.paths.resolve()?;
    let detail = if cli.json || cli.prometheus { Detail::WithLimits } else { Detail::Table };
    let rows = collect(&paths, detail)?;
    let text = if cli.json {
        export::json(&rows)
    } else if cli.prometheus {
        export::prometheus(&rows)
    } else {
        format::table(&rows)
    };
    print!("{text}");
    Ok(())
}
