#![forbid(unsafe_code)]
//! chbind: run a command bound to a set of IP addresses (util-vserver's
//! command line), enforced by cgroup-BPF programs on a transient cgroup.
// The doc comments of cli.rs are clap's help text (what `--help` prints),
// not rustdoc: `<confdir>` and `[dev:]` there are meant literally.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod cli;

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Context};
use clap::Parser;
use cli::Cli;
use vserver_core::cli::{report_error, EXIT_USAGE};
use vserver_core::net::{self, run::run_in_transient_context, IpSet, Member, NetContext};

/// `ADDR`, `ADDR/PREFIX` or util-vserver's `ADDR/NETMASK`: the address and
/// its prefix length (full without one).
fn parse_ip(arg: &str) -> anyhow::Result<Member> {
    let (addr, mask) = match arg.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (arg, None),
    };
    let ip: IpAddr = addr.parse().with_context(|| format!("--ip {arg:?}: {addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => max,
        Some(m) => match m.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => match m.parse::<Ipv4Addr>() {
                Ok(n) if ip.is_ipv4() && u32::from(n).leading_ones() == u32::from(n).count_ones() => u32::from(n).count_ones() as u8,
                _ => bail!("--ip {arg:?}: {m:?} is not a prefix length (0-{max}) or netmask"),
            },
        },
    };
    Ok(Member { ip, prefix, dev: None })
}

fn context(cli: &Cli) -> anyhow::Result<NetContext> {
    if cli.bcast.is_some() {
        bail!("--bcast is not supported: the set holds exact addresses; broadcasts reach a socket bound to one of them");
    }
    let members = cli.ips.iter().map(|s| parse_ip(s)).collect::<anyhow::Result<Vec<_>>>()?;
    let ips: Vec<IpAddr> = members.iter().map(|m| m.ip).collect();
    let lback = match (cli.lback, cli.nid) {
        (Some(l), _) => Some(l),
        (None, Some(n)) => Some(net::lback_for_xid(n).map_err(|e| anyhow::anyhow!("--nid {n}: {e}"))?),
        (None, None) => net::default_chbind_lback(&ips),
    };
    let set =
        IpSet::with_members(&members, lback, &cli.allow_loopback).map_err(|e| anyhow::anyhow!("--ip/--lback/--allow-loopback: {e}"))?;
    Ok(NetContext::from_set(set))
}

fn main() {
    vserver_core::cli::exit_quietly_on_closed_pipe();
    vserver_core::logging::init("chbind");
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
        .and_then(|paths| Ok(run_in_transient_context(&paths, &ctx, &cli.command)?))
        .unwrap_or_else(|e| report_error("chbind", &e));
    std::process::exit(code);
}
