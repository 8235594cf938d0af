//! `vserver NAME ip add|del|show`: live changes of a running guest's IP set.

use std::net::IpAddr;

use anyhow::{bail, Context, Result};
use vserver_core::config::Guest;
use vserver_core::net::{live, Member};
use vserver_core::Paths;

use crate::cli::IpAction;

/// `ADDR` or `ADDR/PREFIX` (the full length without one).
fn parse_member(arg: &str, dev: Option<String>) -> Result<Member> {
    let (addr, prefix) = match arg.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (arg, None),
    };
    let ip: IpAddr = addr.parse().with_context(|| format!("{arg:?}: {addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => bail!("{arg:?}: {p:?} is not a prefix length (0-{max})"),
        },
    };
    Ok(Member { ip, prefix, dev })
}

pub fn run(paths: &Paths, guest: &Guest, action: &IpAction) -> Result<u8> {
    let name = &guest.name;
    match action {
        IpAction::Add { address, dev, save } => {
            let member = match parse_member(address, dev.clone()) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("vserver {name} ip add: {e:#}");
                    return Ok(2);
                }
            };
            let added = live::add(paths, name, member.clone())?;
            if let Some(a) = &added.on_device {
                eprintln!("vserver {name}: {} is on {} now", a.ip, a.dev);
            }
            if *save {
                let dir = live::save_added(&guest.confdir, &member)?;
                eprintln!("vserver {name}: saved as {}", dir.display());
            }
        }
        IpAction::Del { address, save, force } => {
            let removed = live::del(paths, name, *address, *force)?;
            if removed.sockets_left > 0 {
                eprintln!("vserver {name}: {} sockets of the guest keep {address} until they close", removed.sockets_left);
            }
            if let Some(a) = &removed.off_device {
                eprintln!("vserver {name}: {} is off {} now", a.ip, a.dev);
            }
            if *save {
                for dir in live::save_removed(&guest.confdir, *address)? {
                    eprintln!("vserver {name}: removed {}", dir.display());
                }
            }
        }
        IpAction::Show => {
            vserver_core::context::require_running(paths, name)?;
            let Some(state) = live::load(paths, name)? else {
                println!("guest {name} has no IP set (interfaces/unrestricted, or a network namespace of its own)");
                return Ok(0);
            };
            for m in &state.members {
                let dev = m.dev.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
                println!("{}/{}{dev}", m.ip, m.prefix);
            }
            let set = state.set()?;
            if let Some(l) = set.lback() {
                println!("127.0.0.1 -> {l}");
            }
            if let Some(l6) = set.lback6() {
                println!("::1 -> {l6}");
            }
            for a in set.allow_loopback() {
                println!("may reach {a}");
            }
        }
    }
    Ok(0)
}
