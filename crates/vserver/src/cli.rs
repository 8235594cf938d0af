//! The command line of `vserver`, kept apart from main.rs so that man pages
//! and shell completions are generated from the very same definitions.

use clap::{Parser, Subcommand};
use vserver_core::cli::PathArgs;

/// Exit code of `status` for a stopped guest (as LSB init scripts use it).
pub const EXIT_STOPPED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "vserver",
    version,
    about = "Build, start, stop and enter Linux-VServer style guests on a stock kernel",
    after_help = "Examples:\n  vserver web1 build -m busybox --context 101 --interface lo:127.0.0.101/8\n  vserver web1 start\n  vserver web1 exec ps ax\n  vserver web1 exec --user www-data id\n  vserver web1 suexec www-data id\n  vserver web1 enter\n  vserver 101 status\n  vserver --all-marked default -j 4 start\n\nExit codes: 0 success, 1 failure, 2 bad usage; `status` exits 3 when the guest is stopped; `start` of a running and `stop` of a stopped guest warn and exit 0; `delete` exits 2 when not confirmed; exec, suexec and enter exit with the command's code (128+N when signal N killed it, 255 when it could not be started)."
)]
pub struct Cli {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Act on every guest whose apps/init/mark is MARK (start or stop only;
    /// a comma list, !MARK for the guests without it); disabled guests are
    /// skipped, apps/init/depends is honoured
    #[arg(long, value_name = "MARK")]
    pub all_marked: Option<String>,
    /// With --all-marked: how many guests to start or stop at once (default 6)
    #[arg(short = 'j', long = "jobs", value_name = "N", requires = "all_marked")]
    pub jobs: Option<usize>,
    /// The guest: its name, the context id of a running guest, or its
    /// configuration directory (/etc/vservers/NAME)
    pub name: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the guest's configuration and root
    #[command(after_help = BUILD_HELP)]
    Build(Box<BuildArgs>),
    /// Start the guest
    Start,
    /// Stop the guest: its stop command, SIGTERM, then SIGKILL after the timeout
    Stop {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Stop, then start
    Restart {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// An interactive login shell on a new pty in the running guest
    Enter,
    /// Run a command in the running guest; its exit code is ours (255: it could not be started)
    Exec {
        /// Run as this guest user (name or number, from the guest's /etc/passwd)
        #[arg(short = 'u', long = "user", value_name = "USER")]
        user: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
    },
    /// Run a command as a guest user (util-vserver's form of exec --user)
    Suexec {
        /// Name or number, resolved in the guest's /etc/passwd
        #[arg(value_name = "USER")]
        user: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
        argv: Vec<String>,
    },
    /// Restart the guest if it is running; do nothing (exit 0) if not
    Condrestart {
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        timeout: u64,
    },
    /// apt-get in the guest (vserver NAME exec apt-get ARGS...)
    #[command(name = "apt-get")]
    AptGet {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// apt-cache in the guest
    #[command(name = "apt-cache")]
    AptCache {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// apt-config in the guest
    #[command(name = "apt-config")]
    AptConfig {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Is the guest running? (exit 0 running, 3 stopped)
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if the guest runs, 1 if not (quiet)
    Running,
    /// Remove a guest's root and configuration, and store entries only it used (asks on a terminal; a running guest is stopped first)
    Delete {
        /// Do not ask
        #[arg(long)]
        force: bool,
    },
    /// Change the running guest's IP set without a restart (util-vserver's naddress)
    #[command(
        after_help = "Examples:\n  vserver web1 ip add 192.0.2.11/24 --dev eth0 --save\n  vserver web1 ip del 192.0.2.11 --save\n  vserver web1 ip show\n\n\
                      A change is one step for the guest: binds, connects and packets see the old set or the\n\
                      new one. --save writes interfaces/ as well (otherwise a restart forgets the change)."
    )]
    Ip {
        #[command(subcommand)]
        action: IpAction,
    },
    /// Unify this guest's files with the hash store (vhashify NAME)
    Hashify {
        /// Count what would be done; change nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Make the mtime part of the key
        #[arg(long)]
        respect_mtime: bool,
        /// Also unify setuid and setgid files
        #[arg(long)]
        insecure: bool,
    },
}

const BUILD_HELP: &str = "Methods and their arguments (after --):
  skeleton                          the configuration and an empty root
  busybox                           a small guest from the host's static busybox
  debootstrap -d SUITE [-m MIRROR] [-s SCRIPT] [-- DEBOOTSTRAP-OPTIONS]
                                    a Debian guest (init: --initstyle, default systemd)
  clone [--source] SOURCE [--exclude-from FILE]
                                    a copy of a guest (name or root directory) as a new machine
  template -t ARCHIVE [-t ARCHIVE]  a guest from root-filesystem tarballs (tar, .gz, .xz, .zst)

Default options: one per line in .defaults/apps/build/options (the command line wins).
Environment: VSERVER_DEBOOTSTRAP_CACHE=DIR keeps debootstrap's packages in DIR.

Examples:
  vserver web1 build -m debootstrap --context 101 --interface eth0:192.0.2.11/24 -- -d bookworm
  vserver web2 build -m debootstrap --initstyle sysv -- -d bookworm -- --include=openssh-server
  vserver web3 build -m clone --interface eth0:192.0.2.13/255.255.255.0 -- web1
  vserver ct1 build -m template -- -t /srv/templates/debian-12-amd64.tar.xz

Exit codes: 0 built, 1 failed (nothing is left behind), 2 bad usage.";

/// `vserver NAME build`: util-vserver's build options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildArgs {
    /// How to make the root: skeleton, busybox, debootstrap, clone or template
    #[arg(short = 'm', long = "method", value_name = "METHOD",
          value_parser = ["skeleton", "busybox", "debootstrap", "clone", "template"])]
    pub method: Option<String>,
    /// Context id (2-49151); default: .defaults/context.next, else the lowest free id from 100
    #[arg(long = "context", value_name = "XID")]
    pub context: Option<u32>,
    /// Host name (uts/nodename, /etc/hostname, /etc/hosts); default: the guest's name
    #[arg(long)]
    pub hostname: Option<String>,
    /// [name=][dev:]ip[/prefix|/netmask], repeatable; dev "nodev" for set-only addresses
    #[arg(long = "interface", value_name = "SPEC")]
    pub interfaces: Vec<String>,
    /// Host device for interfaces that name none
    #[arg(long, value_name = "DEV")]
    pub netdev: Option<String>,
    /// Prefix length for interfaces that give none
    #[arg(long, value_name = "LEN", conflicts_with = "netmask")]
    pub netprefix: Option<u8>,
    /// Netmask (a.b.c.d) for IPv4 interfaces that give none
    #[arg(long, value_name = "MASK")]
    pub netmask: Option<String>,
    /// The directory the guest root goes into (default: the vdirbase)
    #[arg(long, value_name = "DIR")]
    pub rootdir: Option<std::path::PathBuf>,
    /// Context flags (cflags), comma-separated, repeatable
    #[arg(long = "flags", value_name = "FLAG,...", value_delimiter = ',')]
    pub flags: Vec<String>,
    /// Init style: systemd, sysv or plain (debootstrap default: systemd)
    #[arg(long, value_name = "STYLE", value_parser = ["systemd", "sysv", "plain"])]
    pub initstyle: Option<String>,
    /// Replace an existing, stopped guest (the old one is kept as PATH.~UNIXTIME~)
    #[arg(long)]
    pub force: bool,
    /// Method arguments after "--" (see below)
    #[arg(last = true, value_name = "METHOD-ARGS")]
    pub method_args: Vec<String>,
}

#[derive(Subcommand)]
pub enum IpAction {
    /// Add an address to the set (and to DEV on the host, if it is not there)
    Add {
        /// The address; the prefix names its subnet (sources for it), it does not widen the set
        #[arg(value_name = "ADDR[/PREFIX]")]
        address: String,
        /// Host device to put the address on (without: it is only in the set, like nodev)
        #[arg(long, value_name = "DEV")]
        dev: Option<String>,
        /// Also write it to the guest's interfaces/
        #[arg(long)]
        save: bool,
    },
    /// Remove an address from the set (and from its device, if the guest put it there)
    Del {
        #[arg(value_name = "ADDR")]
        address: std::net::IpAddr,
        /// Also remove it from the guest's interfaces/
        #[arg(long)]
        save: bool,
        /// Remove it although sockets of the guest are bound to it (they keep it until they close)
        #[arg(long)]
        force: bool,
    },
    /// The set as it is now
    Show,
}
