//! chbind: run a command bound to a set of IP addresses (util-vserver's
//! command line), enforced by cgroup-BPF programs on a transient cgroup.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Context};
use clap::Parser;
use vserver_core::cli::{report_error, PathArgs, EXIT_USAGE};
use vserver_core::net::{self, run::run_in_transient_context, IpSet, NetContext};

#[derive(Parser, Debug)]
#[command(
    name = "chbind",
    version,
    about = "Run a command that may bind and send only from the given addresses",
    after_help = "Examples:\n  chbind --ip 192.0.2.10 -- nginx -g 'daemon off;'\n  \
                  chbind --ip 127.0.0.2 --ip ::1 --lback 127.0.7.1 -- python3 -m http.server\n\n\
                  0.0.0.0 and :: become the first address of the family; 127.0.0.1 becomes the\n\
                  --lback address (default: derived from --nid, else the first IPv4 address).\n\
                  Exit status: the command's (128+N if killed by signal N); 1 if chbind fails,\n\
                  2 for bad usage."
)]
struct Cli {
    /// An address of the set; the prefix or netmask is accepted and ignored
    /// (the set holds exact addresses). Repeatable.
    #[arg(long = "ip", value_name = "ADDR[/PREFIX]")]
    ips: Vec<String>,
    /// Where 127.0.0.1 goes inside the context (127.0.0.1 itself: no remapping)
    #[arg(long, value_name = "ADDR")]
    lback: Option<Ipv4Addr>,
    /// Network context id; only used to derive the loopback address 127.<hi>.<lo>.1
    #[arg(long, value_name = "N")]
    nid: Option<u32>,
    /// util-vserver's broadcast address: not supported (a set holds exact addresses)
    #[arg(long, value_name = "ADDR", hide = true)]
    bcast: Option<String>,
    /// Say nothing about the context
    #[arg(long)]
    silent: bool,
    #[command(flatten)]
    paths: PathArgs,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// `ADDR`, `ADDR/PREFIX` or util-vserver's `ADDR/NETMASK`.
fn parse_ip(arg: &str) -> anyhow::Result<IpAddr> {
    let (addr, mask) = match arg.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (arg, None),
    };
    let ip: IpAddr = addr.parse().with_context(|| format!("--ip {arg:?}: {addr:?} is not an IPv4 or IPv6 address"))?;
    if let Some(m) = mask {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let ok = match m.parse::<u8>() {
            Ok(p) => p <= max,
            Err(_) => ip.is_ipv4() && m.parse::<Ipv4Addr>().is_ok_and(|n| u32::from(n).leading_ones() == u32::from(n).count_ones()),
        };
        if !ok {
            bail!("--ip {arg:?}: {m:?} is not a prefix length (0-{max}) or netmask");
        }
    }
    Ok(ip)
}

fn context(cli: &Cli) -> anyhow::Result<NetContext> {
    if cli.bcast.is_some() {
        bail!("--bcast is not supported: the set holds exact addresses; broadcasts reach a socket bound to one of them");
    }
    let ips = cli.ips.iter().map(|s| parse_ip(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let lback = match (cli.lback, cli.nid) {
        (Some(l), _) => Some(l),
        (None, Some(n)) => Some(net::lback_for_xid(n).map_err(|e| anyhow::anyhow!("--nid {n}: {e}"))?),
        (None, None) => net::default_chbind_lback(&ips),
    };
    let set = IpSet::new(&ips, lback).map_err(|e| anyhow::anyhow!("--ip/--lback: {e}"))?;
    Ok(NetContext::from_set(set))
}

fn main() {
    let cli = Cli::parse();
    let ctx = match context(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chbind: {e:#}");
            std::process::exit(EXIT_USAGE);
        }
    };
    if !cli.silent && std::io::stderr().is_terminal() {
        let addrs: Vec<String> = ctx.set().addrs().iter().map(|a| a.to_string()).collect();
        let lback = ctx.set().lback().map_or("none".into(), |l| l.to_string());
        eprintln!("chbind: addresses {} (127.0.0.1 -> {lback})", if addrs.is_empty() { "none".into() } else { addrs.join(" ") });
    }
    let code = cli
        .paths
        .resolve()
        .and_then(|paths| run_in_transient_context(&paths, &ctx, &cli.command))
        .unwrap_or_else(|e| report_error("chbind", &e));
    std::process::exit(code);
}
