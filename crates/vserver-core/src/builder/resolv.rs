//! The guest's /etc/resolv.conf: the host's upstream name servers. A guest
//! cannot reach a name server on the host's loopback (127.0.0.1 inside a
//! guest is the guest's own loopback, and other loopback addresses of the
//! host are not its own), so systemd-resolved's stub (127.0.0.53) and other
//! local forwarders are replaced by the servers they forward to where the
//! host says which (resolved's and NetworkManager's upstream lists).

use std::net::IpAddr;
use std::path::Path;

use super::error::{BuildError, Doing};

/// Host files with name servers, in the order they are tried.
const SOURCES: &[&str] = &["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf", "/run/NetworkManager/no-stub-resolv.conf"];

/// `.defaults/files/resolv.conf` as it is (util-vserver's override), else
/// the host's configuration with only name servers a guest can reach.
pub fn guest_resolv_conf(defaults: &Path, notes: &mut Vec<String>) -> Result<String, BuildError> {
    let own = defaults.join("files/resolv.conf");
    match std::fs::read_to_string(&own) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).doing(|| format!("reading {}", own.display())),
        Err(_) => {}
    }
    let mut local = Vec::new();
    for src in SOURCES {
        let Ok(text) = std::fs::read_to_string(src) else { continue };
        let (reachable, loopback) = split_servers(&text);
        local.extend(loopback);
        if !reachable.is_empty() {
            return Ok(render(src, &text, &reachable));
        }
    }
    local.sort();
    local.dedup();
    if !local.is_empty() {
        notes.push(format!(
            "the host's only name servers ({}) are on its loopback, which a guest cannot reach; the guest's \
             /etc/resolv.conf names none: edit it, or put one in .defaults/files/resolv.conf",
            local.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok("# No name server of the host is reachable from a guest: add one (nameserver ADDRESS).\n".to_string())
}

/// The name servers of a resolv.conf: (reachable from a guest, loopback).
fn split_servers(text: &str) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let servers = text.lines().filter_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver")).then(|| w.next().and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())).flatten()
    });
    servers.partition(|a| !a.is_loopback())
}

fn render(src: &str, text: &str, servers: &[IpAddr]) -> String {
    let mut out = format!("# The host's name servers (from {src}), written by vserver build.\n");
    for l in text.lines().map(str::trim) {
        if l.starts_with("search ") || l.starts_with("domain ") || l.starts_with("options ") {
            out.push_str(l);
            out.push('\n');
        }
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_left_out() {
        let (ok, local) = split_servers("# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\noptions edns0\n");
        assert_eq!(ok, vec!["192.0.2.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
        assert_eq!(local, vec!["127.0.0.53".parse::<IpAddr>().unwrap()]);
        let text = render("/etc/resolv.conf", "search example.org\nnameserver 127.0.0.53\noptions edns0\n", &ok);
        assert!(text.contains("search example.org\noptions edns0\nnameserver 192.0.2.1\n"), "{text}");
        assert!(!text.contains("127.0.0.53"));
    }
}
