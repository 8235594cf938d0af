#![forbid(unsafe_code)]
//! vhashify: share identical files between guests through a hash store.
//! A thin caller of `vserver_core::unify`.
// The doc comments of cli.rs are clap's help text (what `--help` prints),
// not rustdoc: `<confdir>` and `[dev:]` there are meant literally.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use cli::Cli;
use vserver_core::cli::{report_error, EXIT_FAILURE, EXIT_USAGE};
use vserver_core::unify::{self, RevertSelection, Summary, UnifyOptions};

fn main() {
    vserver_core::cli::exit_quietly_on_closed_pipe();
    vserver_core::logging::init("vhashify");
    let cli = Cli::parse();
    std::process::exit(match run(&cli) {
        Ok(sum) => report(&cli, &sum),
        Err(e) if e.is::<UsageError>() => {
            eprintln!("vhashify: {e}");
            EXIT_USAGE
        }
        Err(e) => report_error("vhashify", &e),
    });
}

#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn run(cli: &Cli) -> anyhow::Result<Summary> {
    let paths = cli.paths.resolve()?;
    let opts = UnifyOptions {
        dry_run: cli.dry_run,
        destination: cli.destination.clone(),
        exclude_from: cli.exclude_from.clone(),
        manually: cli.manually,
        insecure: cli.insecure,
        respect_mtime: cli.respect_mtime,
        min_size: cli.min_size,
        reflink: cli.reflink,
        wait: cli.wait,
        progress: std::io::stderr().is_terminal() && std::io::stdout().is_terminal() && !cli.json,
        threads: cli.threads,
        existing_only: false,
    };
    if cli.gc {
        if !cli.names.is_empty() {
            return Err(UsageError("--gc takes no NAME (use --destination DIR for one store)".into()).into());
        }
        return Ok(unify::gc(&paths, &opts)?);
    }
    if cli.revert {
        let Some((name, rel)) = cli.names.split_first() else {
            return Err(UsageError("--revert needs NAME [PATH...]".into()).into());
        };
        let sel =
            RevertSelection { paths: rel.iter().map(PathBuf::from).collect(), recursive: cli.recursive, packages: cli.package.clone() };
        sel.check().map_err(UsageError)?;
        return Ok(unify::revert(&paths, name, &sel, &opts)?);
    }
    let names = if cli.all {
        if !cli.names.is_empty() {
            return Err(UsageError("--all takes no NAME".into()).into());
        }
        unify::participating_guests(&paths)?
    } else {
        if cli.names.is_empty() {
            return Err(UsageError("name at least one guest, or use --all".into()).into());
        }
        cli.names.clone()
    };
    if names.is_empty() {
        // --all with no guest taking part: nothing to do is not a failure.
        return Ok(Summary::default());
    }
    Ok(unify::hashify(&paths, &names, &opts)?)
}

/// Quiet on success when stdout is not a terminal (cron mails every line).
fn report(cli: &Cli, sum: &Summary) -> i32 {
    for m in &sum.error_messages {
        eprintln!("vhashify: {m}");
    }
    if sum.errors as usize > sum.error_messages.len() {
        eprintln!("vhashify: … and {} more errors", sum.errors as usize - sum.error_messages.len());
    }
    if !sum.skipped_dirs.is_empty() {
        let shown: Vec<&str> = sum.skipped_dirs.iter().take(5).map(String::as_str).collect();
        let more = if sum.skipped_dirs.len() > 5 { ", …" } else { "" };
        eprintln!(
            "vhashify: {} directories not reverted ({}{more}): --recursive reverts below them",
            sum.skipped_dirs.len(),
            shown.join(", ")
        );
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(sum).expect("summary serialises"));
    } else if cli.verbose || cli.dry_run || std::io::stdout().is_terminal() {
        println!("{sum}");
    }
    if sum.errors > 0 {
        EXIT_FAILURE
    } else {
        0
    }
}
