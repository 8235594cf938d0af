#![forbid(unsafe_code)]
//! vserver-stat: one line per running context, util-vserver's table.

mod cli;

use clap::Parser;
use cli::Cli;
use vserver_core::cli::report_error;
use vserver_core::stat::{collect, export, format, Detail};

fn main() {
    vserver_core::cli::exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vserver-stat");
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
