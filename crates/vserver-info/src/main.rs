//! `vserver-info`: can this host run guests, and what is missing?

use std::process::ExitCode;

use clap::Parser;
use vserver_core::cli::report_error;
use vserver_core::hostinfo::{self, Host};

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let paths = match cli.paths.resolve() {
        Ok(p) => p,
        Err(e) => return ExitCode::from(report_error("vserver-info", &e) as u8),
    };
    let host = Host::new(&paths, cli.proc_root, cli.sys_root);
    let report = hostinfo::probe(&host);
    if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return ExitCode::from(report_error("vserver-info", &e.into()) as u8),
        }
    } else {
        print!("{}", hostinfo::render_text(&report));
    }
    ExitCode::from(u8::from(!report.missing_required.is_empty()))
}
