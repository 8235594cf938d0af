//! The command line of `vps`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use std::ffi::OsString;

use clap::{ArgAction, Parser};
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vps",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    about = "ps(1) with each process's context: the xid and the guest's name",
    long_about = "Runs ps(1) with the options given and inserts a CONTEXT column after the PID column: the \
                  context id and the guest's name for every process, `0 root server` for the host's own \
                  processes. A guest's monitor (a host process charged to the guest) shows as NAME:monitor; \
                  a process of a guest cgroup whose guest has no run state any more shows ERR. The context \
                  comes from the kernel's record of each process's cgroup, never from anything a guest can \
                  write (process names, files inside the guest).",
    after_help = "Examples:\n  vps ax                             every process, with its context\n  \
                  vps axf | grep ' web1 '            the processes of guest web1 as a tree\n  \
                  vps -eo pid,user,rss,args          ps's own columns; include pid\n  \
                  vps ax | awk '$2 == 101'           the processes of context 101\n\n\
                  Exit codes: ps's own; 1 when vps itself fails (ps missing, no PID column)."
)]
pub struct Cli {
    /// Print help (vps's own; ps's help is `ps --help all`)
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print version
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Options for ps(1), passed on unchanged (ax, -ef, -o pid,comm, ...)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "PS-OPTIONS")]
    pub ps_args: Vec<OsString>,
}
