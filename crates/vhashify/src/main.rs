//! vhashify: share identical files between guests through a hash store.
//! A thin caller of `vserver_core::unify`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::{report_error, PathArgs, EXIT_FAILURE, EXIT_USAGE};
use vserver_core::unify::{self, Summary, UnifyOptions};

const AFTER_HELP: &str = "\
Examples:
  vhashify --all                      unify every guest with apps/vunify/ (cron: util/vhashify.cron)
  vhashify -n -v web1 web2            show what would be shared
  vhashify --revert web1 /usr/lib/x   private writable copies again (before a package upgrade)
  vhashify --gc                       drop store entries no guest uses any more

Configuration: <confdir>/NAME/apps/vunify/ makes a guest take part; apps/vunify/hash (guest or
.defaults) names the store (default <vdirbase>/.hash); apps/vunify/exclude lists paths to leave
alone, +PATH includes again.

Exit status: 0 success, 1 failure (some file could not be handled, or the run failed), 2 bad usage.";

#[derive(Parser, Debug)]
#[command(name = "vhashify", version, about = "Unify identical files of guests as immutable hard links", after_help = AFTER_HELP)]
struct Cli {
    /// Guests to unify (with --manually: directories; with --revert: NAME [PATH...])
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// Every guest that has <confdir>/NAME/apps/vunify/
    #[arg(long, conflicts_with_all = ["manually", "revert", "gc"])]
    all: bool,
    /// NAMEs are directories; read no guest configuration (needs --destination)
    #[arg(long, requires = "destination")]
    manually: bool,
    /// Show what would be done, change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print the summary even when all went well and stdout is not a terminal
    #[arg(short, long)]
    verbose: bool,
    /// Hash store to use instead of the configured one
    #[arg(long, value_name = "DIR")]
    destination: Option<PathBuf>,
    /// More exclude rules (one path per line, +PATH re-includes)
    #[arg(long, value_name = "FILE")]
    exclude_from: Option<PathBuf>,
    /// Also unify setuid/setgid files
    #[arg(long)]
    insecure: bool,
    /// Make the mtime part of what must be equal (less sharing; each file keeps its mtime)
    #[arg(long)]
    respect_mtime: bool,
    /// Leave files smaller than this alone
    #[arg(long, value_name = "BYTES", default_value_t = 1)]
    min_size: u64,
    /// Share extents copy-on-write (XFS, btrfs) instead of inodes; no immutability needed
    #[arg(long)]
    reflink: bool,
    /// Give NAME (or the PATHs in it) private writable copies of unified files again
    #[arg(long, conflicts_with_all = ["gc", "dry_run"])]
    revert: bool,
    /// Remove store entries no guest links to any more
    #[arg(long)]
    gc: bool,
    /// Wait for a running vhashify to finish instead of failing
    #[arg(long, overrides_with = "no_wait")]
    wait: bool,
    /// Fail at once when another run holds the lock (the default)
    #[arg(long)]
    no_wait: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// Hashing threads (default: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    paths: PathArgs,
}

fn main() {
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
struct UsageError(&'static str);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.0)
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
    };
    if cli.gc {
        if !cli.names.is_empty() {
            return Err(UsageError("--gc takes no NAME (use --destination DIR for one store)").into());
        }
        return unify::gc(&paths, &opts);
    }
    if cli.revert {
        let Some((name, rel)) = cli.names.split_first() else {
            return Err(UsageError("--revert needs NAME [PATH...]").into());
        };
        let rel: Vec<PathBuf> = rel.iter().map(PathBuf::from).collect();
        return unify::revert(&paths, name, &rel, &opts);
    }
    let names = if cli.all {
        if !cli.names.is_empty() {
            return Err(UsageError("--all takes no NAME").into());
        }
        unify::participating_guests(&paths)?
    } else {
        if cli.names.is_empty() {
            return Err(UsageError("name at least one guest, or use --all").into());
        }
        cli.names.clone()
    };
    if names.is_empty() {
        // --all with no guest taking part: nothing to do is not a failure.
        return Ok(Summary::default());
    }
    unify::hashify(&paths, &names, &opts)
}

/// Quiet on success when stdout is not a terminal (cron mails every line).
fn report(cli: &Cli, sum: &Summary) -> i32 {
    for m in &sum.error_messages {
        eprintln!("vhashify: {m}");
    }
    if sum.errors as usize > sum.error_messages.len() {
        eprintln!("vhashify: … and {} more errors", sum.errors as usize - sum.error_messages.len());
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
