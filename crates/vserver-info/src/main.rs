#![forbid(unsafe_code)]
//! `vserver-info`: can this host run guests, and what is missing? Also
//! util-vserver's `vserver-info NAME TAG` questions for scripts.

use std::process::ExitCode;

use clap::Parser;
use vserver_core::cli::{exit_quietly_on_closed_pipe, report_error, write_stdout};
use vserver_core::hostinfo::query::{self, Reply, TAGS};
use vserver_core::hostinfo::{self, Host};

mod cli;

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vserver-info");
    let cli = cli::Cli::parse();
    let paths = match cli.paths.resolve() {
        Ok(p) => p,
        Err(e) => return ExitCode::from(report_error("vserver-info", &e) as u8),
    };
    let host = Host::new(&paths, cli.proc_root.clone(), cli.sys_root.clone());
    if cli.list_tags {
        let list: Vec<&str> = TAGS.iter().map(|(t, _)| *t).collect();
        let _ = write_stdout(format!("Valid tags are: {}\n", list.join(", ")).as_bytes());
        return ExitCode::SUCCESS;
    }
    if let (Some(target), Some(tag)) = (&cli.target, &cli.tag) {
        if !query::is_tag(tag) {
            eprintln!("vserver-info: unknown tag {tag:?}; use '-l' to get the list of valid tags");
            return ExitCode::FAILURE;
        }
        return match query::query(&paths, target, tag, &cli.args, || hostinfo::probe(&host)) {
            Reply::Value(v) => {
                if !cli.quiet {
                    let _ = write_stdout(format!("{v}\n").as_bytes());
                }
                ExitCode::SUCCESS
            }
            Reply::Yes => ExitCode::SUCCESS,
            Reply::No => {
                if tag == "APIVER" && !cli.quiet {
                    eprintln!("vserver-info: no Linux-VServer kernel API: vserver-rs runs on a stock kernel");
                }
                ExitCode::FAILURE
            }
        };
    }
    let report = hostinfo::probe(&host);
    let text = if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => s + "\n",
            Err(e) => return ExitCode::from(report_error("vserver-info", &e.into()) as u8),
        }
    } else {
        hostinfo::render_text(&report)
    };
    let _ = write_stdout(text.as_bytes());
    ExitCode::from(u8::from(!report.missing_required.is_empty()))
}
