//! The command line of `vhashify`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::PathArgs;

const AFTER_HELP: &str = "\
Examples:
  vhashify --all                      unify every guest with apps/vunify/ (cron: util/vhashify.cron)
  vhashify -n -v web1 web2            show what would be shared
  vhashify --revert web1 /usr/lib/x   private writable copies again
  vhashify --revert web1 --package nginx-light
                                      the regular files of a package, as the guest's dpkg lists them
  vhashify --gc                       drop store entries no guest uses any more

Running unified guests need no --revert for package upgrades: a guest process that changes a
unified file gets a private copy of it first (copy-on-write); vhashify shares it again later.
--revert PATH: a file is reverted; a directory only with --recursive (without, it is skipped and
named), and never / itself (give no PATH to revert the whole guest).

Configuration: <confdir>/NAME/apps/vunify/ makes a guest take part; apps/vunify/hash (guest or
.defaults) names the store (default <vdirbase>/.hash); apps/vunify/exclude lists paths to leave
alone, +PATH includes again.

Exit status: 0 success, 1 failure (some file could not be handled, or the run failed), 2 bad usage.";

#[derive(Parser, Debug)]
#[command(name = "vhashify", version, about = "Unify identical files of guests as immutable hard links", after_help = AFTER_HELP)]
pub struct Cli {
    /// Guests to unify (with --manually: directories; with --revert: NAME [PATH...])
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Every guest that has <confdir>/NAME/apps/vunify/
    #[arg(long, conflicts_with_all = ["manually", "revert", "gc"])]
    pub all: bool,
    /// NAMEs are directories; read no guest configuration (needs --destination)
    #[arg(long, requires = "destination")]
    pub manually: bool,
    /// Show what would be done, change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the summary even when all went well and stdout is not a terminal
    #[arg(short, long)]
    pub verbose: bool,
    /// Hash store to use instead of the configured one
    #[arg(long, value_name = "DIR")]
    pub destination: Option<PathBuf>,
    /// More exclude rules (one path per line, +PATH re-includes)
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Option<PathBuf>,
    /// Also unify setuid/setgid files
    #[arg(long)]
    pub insecure: bool,
    /// Make the mtime part of what must be equal (less sharing; each file keeps its mtime)
    #[arg(long)]
    pub respect_mtime: bool,
    /// Leave files smaller than this alone
    #[arg(long, value_name = "BYTES", default_value_t = 1)]
    pub min_size: u64,
    /// Share extents copy-on-write (XFS, btrfs) instead of inodes; no immutability needed
    #[arg(long)]
    pub reflink: bool,
    /// Give NAME (or the PATHs in it) private writable copies of unified files again
    #[arg(long, conflicts_with_all = ["gc", "dry_run"])]
    pub revert: bool,
    /// With --revert: revert below directory PATHs too (otherwise they are skipped)
    #[arg(long, requires = "revert")]
    pub recursive: bool,
    /// With --revert: the regular files of this Debian package in the guest (repeatable)
    #[arg(long, value_name = "PKG", requires = "revert")]
    pub package: Vec<String>,
    /// Remove store entries no guest links to any more
    #[arg(long)]
    pub gc: bool,
    /// Wait for a running vhashify to finish instead of failing
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Fail at once when another run holds the lock (the default)
    #[arg(long)]
    pub no_wait: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
    /// Hashing threads (default: four per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub paths: PathArgs,
}
