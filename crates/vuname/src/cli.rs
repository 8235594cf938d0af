//! The command line of `vuname`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vuname",
    version,
    about = "Show or change the uts names (hostname, domain name) of a running guest",
    long_about = "Shows or changes a running guest's uts names, util-vserver's seven tags: context (the guest's \
                  configuration directory), sysname, nodename, release, version, machine and domainname. \
                  Without tags all seven are printed on one line. Only nodename and domainname belong to the \
                  guest's uts namespace on a stock kernel and can be changed (-s -t TAG=VALUE, or --dir DIR \
                  with one file per tag, as in uts/); asking to change another is an error naming it. The \
                  change is made by joining the guest's uts namespace through a pidfd of its init: it is \
                  at once what `hostname` says inside, but it is not saved in the configuration.",
    after_help = "Examples:\n  vuname --xid web1                       all seven values\n  \
                  vuname --xid web1 nodename              the guest's hostname\n  \
                  vuname -s --xid web1 -t nodename=www.example.org -t domainname=example.org\n  \
                  vuname --xid 101 --dir /etc/vservers/web1/uts --missingok\n\n\
                  Exit codes (util-vserver's): 0 success, 255 failure, 2 bad usage."
)]
pub struct Cli {
    /// The guest, by context id or name
    #[arg(short = 'x', long = "xid", value_name = "XID|NAME", required = true)]
    pub xid: String,
    /// Print the values (the default)
    #[arg(short = 'g', long = "get", conflicts_with = "set")]
    pub get: bool,
    /// Change the values given with -t
    #[arg(short = 's', long = "set")]
    pub set: bool,
    /// TAG=VALUE to set (repeatable; with -s)
    #[arg(short = 't', value_name = "TAG=VALUE", requires = "set")]
    pub tags: Vec<String>,
    /// Set the values from the files in DIR named after the tags (nodename, domainname)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["get", "set"])]
    pub dir: Option<PathBuf>,
    /// With --dir: a missing DIR is not an error
    #[arg(long, requires = "dir")]
    pub missingok: bool,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Getting: the tags to print. Setting: a command to run afterwards
    #[arg(trailing_var_arg = true, value_name = "TAG|COMMAND")]
    pub rest: Vec<String>,
}
