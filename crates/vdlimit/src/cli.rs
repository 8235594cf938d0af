//! The command line of `vdlimit`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use std::path::PathBuf;

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "vdlimit",
    version,
    about = "Show or change a guest's disk limit (project quota) on a filesystem",
    long_about = "Shows or changes the disk limit of a context on the filesystem a path is on: the project \
                  quota whose id is the context id. Space is in blocks of 1024 bytes and -1 means no limit, \
                  as in util-vserver's vdlimit and dlimits/ files. `reserved` (a percentage) sets the soft \
                  limit below the hard one: project quotas know no users, so the reserve is not kept for the \
                  guest's root. Without a path, every disk limit in the guest's dlimits/ is shown. Limits \
                  set here take effect at once but are not saved: `vserver NAME start` sets the configured \
                  ones again.",
    after_help = "Examples:\n  vdlimit --xid web1                                  the limits in web1's dlimits/\n  \
                  vdlimit --xid 101 /vservers                         usage and limits of context 101 there\n  \
                  vdlimit --xid web1 --set space_total=10485760 --set inodes_total=200000 /vservers\n  \
                  vdlimit --xid web1 --remove /vservers\n\n\
                  Output: XID PATH, then space_used=, space_total=, inodes_used=, inodes_total=, reserved= \
                  (util-vserver's format).\n\
                  Exit codes: 0 success, 1 failure (no project quota there, not permitted), 2 bad usage."
)]
pub struct Cli {
    /// The guest, by context id or name
    #[arg(short = 'x', long = "xid", value_name = "XID|NAME", required = true)]
    pub xid: String,
    /// LIMIT=VALUE: space_total (KiB), inodes_total or reserved (percent); repeatable
    #[arg(short = 's', long = "set", value_name = "LIMIT=VALUE", conflicts_with = "remove")]
    pub set: Vec<String>,
    /// Remove the limits (usage is still counted)
    #[arg(short = 'd', long = "remove")]
    pub remove: bool,
    /// util-vserver's dlimit flags; only 0 exists here
    #[arg(short = 'f', long = "flags", value_name = "FLAGS", default_value = "0")]
    pub flags: String,
    #[command(flatten)]
    pub paths: PathArgs,
    /// Paths on the filesystems (util-vserver: the mount points)
    #[arg(value_name = "PATH")]
    pub mount_points: Vec<PathBuf>,
}
