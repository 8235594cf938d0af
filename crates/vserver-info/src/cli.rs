//! The command line of `vserver-info`, kept apart from main.rs so that man
//! pages and shell completions are generated from the very same definitions.

use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser)]
#[command(
    name = "vserver-info",
    version,
    about = "Report what this host offers vserver-rs and what each feature needs",
    long_about = "Report what this host offers vserver-rs and what each feature needs: kernel, namespaces, \
                  cgroup layout and controllers, cgroup-BPF socket hooks, seccomp, pidfd, openat2, and what the \
                  filesystems of the guest base and the hash store can do. Every line says ok, limited or \
                  missing, and what stops working without it.",
    after_help = "Examples:\n  vserver-info\n  vserver-info --json | jq '.checks[] | select(.status != \"ok\")'\n  \
                  vserver-info --proc-root fixture/proc --sys-root fixture/sys\n\n\
                  Exit codes: 0 the default configuration can run here, 1 something it needs is missing, 2 bad usage."
)]
pub struct Cli {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Read kernel facts from DIR instead of /proc; system-call probes then use DIR/kallsyms
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Find the cgroup mounts under DIR/fs/cgroup instead of /sys/fs/cgroup (VSERVER_CGROUP_ROOT wins)
    #[arg(long, value_name = "DIR")]
    pub sys_root: Option<PathBuf>,
}
