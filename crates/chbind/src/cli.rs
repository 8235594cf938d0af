//! The command line of `chbind`, apart from main.rs so that man pages and
//! completions are generated from the same definitions (crates/vserver-docs).

use std::ffi::OsString;
use std::net::Ipv4Addr;

use clap::Parser;
use vserver_core::cli::PathArgs;

#[derive(Parser, Debug)]
#[command(
    name = "chbind",
    version,
    about = "Run a command that may bind and send only from the given addresses",
    after_help = "Examples:\n  chbind --ip 192.0.2.10 -- nginx -g 'daemon off;'\n  \
                  chbind --ip 127.0.0.2 --ip ::1 --lback 127.0.7.1 -- python3 -m http.server\n\n\
                  0.0.0.0 and :: become the first address of the family; 127.0.0.1 becomes the\n\
                  --lback address (default: derived from --nid, else the first IPv4 address).\n\
                  Loopback addresses outside the set are out of reach unless --allow-loopback\n\
                  names them.\n\
                  Exit status: the command's (128+N if killed by signal N); 1 if chbind fails,\n\
                  2 for bad usage."
)]
pub struct Cli {
    /// An address of the set; a prefix or netmask does not widen the set
    /// (it holds exact addresses) but names the subnet reached from it.
    /// Repeatable.
    #[arg(long = "ip", value_name = "ADDR[/PREFIX]")]
    pub ips: Vec<String>,
    /// A loopback address outside the set the command may connect and send
    /// to (other loopback addresses are out of its reach). Repeatable.
    #[arg(long = "allow-loopback", value_name = "ADDR")]
    pub allow_loopback: Vec<std::net::IpAddr>,
    /// Where 127.0.0.1 goes inside the context (127.0.0.1 itself: no remapping)
    #[arg(long, value_name = "ADDR")]
    pub lback: Option<Ipv4Addr>,
    /// Network context id; only used to derive the loopback address 127.<hi>.<lo>.1
    #[arg(long, value_name = "N")]
    pub nid: Option<u32>,
    /// util-vserver's broadcast address: not supported (a set holds exact addresses)
    #[arg(long, value_name = "ADDR", hide = true)]
    pub bcast: Option<String>,
    /// Say nothing about the context
    #[arg(long)]
    pub silent: bool,
    #[command(flatten)]
    pub paths: PathArgs,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}
