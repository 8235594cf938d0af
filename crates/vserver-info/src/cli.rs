//! The command line of `vserver-info`, kept apart from main.rs so that man
//! pages and shell completions are generated from the very same definitions.

use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser)]
#[command(
    name = "vserver-info",
    version,
    about = "Report what this host offers vserver-rs, or answer util-vserver's questions about a guest",
    long_about = "Without arguments: what this host offers vserver-rs and what each feature needs: kernel, \
                  namespaces, cgroup layout and controllers, cgroup-BPF socket hooks, seccomp, pidfd, openat2, \
                  Landlock scoping, clone3 into a cgroup, what the filesystems of the guest base and the hash \
                  store can do, and disk limits (project quotas). Every line says ok, limited or missing, and \
                  what stops working without it.\n\n\
                  With NAME TAG: util-vserver's scripting forms, answered as its vserver-info answers them: \
                  the value on stdout and exit 0, or nothing and exit 1. `vserver-info -l` lists the tags; \
                  `vserver-info - FEATURE NAME` exits 0 when util-vserver's feature NAME (VWAIT, VNET, MEMCG, \
                  ...; here also DLIMIT, LANDLOCK_SCOPE, CLONE_INTO_CGROUP) is available.",
    after_help = "Examples:\n  vserver-info\n  vserver-info --json | jq '.checks[] | select(.status != \"ok\")'\n  \
                  vserver-info web1 CONTEXT              the xid (running, else configured)\n  \
                  vserver-info -q web1 RUNNING && echo up\n  \
                  vserver-info web1 VDIR 1               the guest root, symlinks resolved\n  \
                  vserver-info 101 INITPID               host pid of context 101's init\n  \
                  vserver-info $$ XID                    the context of a host pid\n  \
                  vserver-info - FEATURE vwait && echo yes\n  \
                  vserver-info --proc-root fixture/proc --sys-root fixture/sys\n\n\
                  Exit codes: report: 0 the default configuration can run here, 1 something it needs is missing; \
                  NAME TAG: 0 answered, 1 no answer (or unknown tag); 2 bad usage."
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
    /// NAME TAG: print nothing, only the exit code tells
    #[arg(short = 'q')]
    pub quiet: bool,
    /// List the tags of the NAME TAG form
    #[arg(short = 'l')]
    pub list_tags: bool,
    /// A guest (name or configuration directory), a context id or a host pid, or - ; then a TAG
    #[arg(value_name = "NAME|XID|PID", requires = "tag", allow_hyphen_values = true)]
    pub target: Option<String>,
    /// CONTEXT, RUNNING, VDIR, INITPID, XIDTYPE, FEATURE, ... (see -l)
    #[arg(value_name = "TAG")]
    pub tag: Option<String>,
    /// The tag's argument (VDIR 1, FEATURE vwait, UTS nodename, XIDTYPE static, ...)
    #[arg(value_name = "ARG")]
    pub args: Vec<String>,
}
