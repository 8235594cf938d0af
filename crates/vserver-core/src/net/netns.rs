//! A guest with its own network namespace (`namespaces` containing `net`):
//! a veth pair, the host end in the host namespace, the guest end moved into
//! the namespace of the guest's init and given the `interfaces/` addresses.
//! Routing is plain: host routes to each guest address via the host end
//! (with proxy ARP there), a default route in the guest via that end.
//! Forwarding beyond the host (ip_forward, NAT) stays the admin's choice.

use std::fs::File;
use std::net::IpAddr;
use std::process::Command;

use anyhow::{bail, Context};

use super::addr::valid_dev_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethConfig {
    /// Host end, e.g. `vs-web1` (15 characters at most).
    pub host_if: String,
    /// Name inside the guest, e.g. `eth0`.
    pub guest_if: String,
    /// The guest's addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// The IPv6 link-local address the host end gets, the guest's IPv6 gateway.
const HOST_LL6: &str = "fe80::1";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run ip(8) from iproute2")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs `f` on a new thread that has entered the network namespace of
/// `pid` (setns affects the calling thread only; children it spawns, like
/// `ip`, inherit it).
fn in_netns_of<T: Send + 'static>(pid: i32, f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = File::open(&ns_path).with_context(|| format!("cannot open {ns_path}"))?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).with_context(|| format!("setns({ns_path})"))?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread configuring the network namespace of {pid} panicked"))?
}

/// Creates the pair, moves the guest end into the network namespace of
/// `guest_pid` and configures both ends. On an error the pair is deleted
/// again (deleting one end deletes both).
pub fn setup_veth(cfg: &VethConfig, guest_pid: i32) -> anyhow::Result<()> {
    if !valid_dev_name(&cfg.host_if) || !valid_dev_name(&cfg.guest_if) {
        bail!("{:?}/{:?}: not valid network device names (15 characters of A-Z a-z 0-9 - _ . @)", cfg.host_if, cfg.guest_if);
    }
    let pid = guest_pid.to_string();
    ip(&["link", "add", &cfg.host_if, "type", "veth", "peer", "name", &cfg.guest_if, "netns", &pid])
        .with_context(|| format!("cannot create veth pair {}", cfg.host_if))?;
    let configured = configure_host_end(cfg).and_then(|()| {
        let cfg = cfg.clone();
        in_netns_of(guest_pid, move || configure_guest_end(&cfg))
    });
    if let Err(e) = configured {
        let _ = remove_veth(&cfg.host_if);
        return Err(e);
    }
    Ok(())
}

fn configure_host_end(cfg: &VethConfig) -> anyhow::Result<()> {
    let dev = cfg.host_if.as_str();
    ip(&["link", "set", dev, "up"])?;
    ip(&["-6", "addr", "add", &format!("{HOST_LL6}/64"), "dev", dev, "nodad"])?;
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/proxy_arp"), "1").with_context(|| format!("cannot enable proxy ARP on {dev}"))?;
    for (addr, _) in &cfg.addresses {
        let host_route = format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 });
        ip(&["route", "add", &host_route, "dev", dev])?;
    }
    Ok(())
}

fn configure_guest_end(cfg: &VethConfig) -> anyhow::Result<()> {
    let dev = cfg.guest_if.as_str();
    ip(&["link", "set", "lo", "up"])?;
    for (addr, prefix) in &cfg.addresses {
        let a = format!("{addr}/{prefix}");
        let mut args = vec!["addr", "add", a.as_str(), "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        ip(&args)?;
    }
    ip(&["link", "set", dev, "up"])?;
    if cfg.addresses.iter().any(|(a, _)| a.is_ipv4()) {
        ip(&["route", "add", "default", "dev", dev])?;
    }
    if cfg.addresses.iter().any(|(a, _)| a.is_ipv6()) {
        ip(&["-6", "route", "add", "default", "via", HOST_LL6, "dev", dev])?;
    }
    Ok(())
}

/// Deletes the pair by its host end; one already gone (the guest's netns
/// ended and took it along) is fine.
pub fn remove_veth(host_if: &str) -> anyhow::Result<()> {
    if !std::path::Path::new("/sys/class/net").join(host_if).exists() {
        return Ok(());
    }
    ip(&["link", "del", host_if])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_carries_the_guest_addresses() {
        // Both "host" and "guest" are namespaces this test makes: the host
        // side on a thread of its own netns, the guest a child's netns.
        crate::net::addr::tests::in_own_netns(|| {
            let server = "import socket; s=socket.socket(); s.bind(('0.0.0.0', 7777)); s.listen(); s.settimeout(20); \
                          print('ready', flush=True); c, a = s.accept(); c.sendall(str(a[0]).encode())";
            let mut guest =
                Command::new("unshare").args(["-n", "python3", "-c", server]).stdout(std::process::Stdio::piped()).spawn().unwrap();
            let mut ready = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(guest.stdout.take().unwrap()), &mut ready).unwrap();
            assert_eq!(ready.trim(), "ready");
            let pid = guest.id() as i32;
            let cfg = VethConfig {
                host_if: "vs-test0".into(),
                guest_if: "eth0".into(),
                addresses: vec![("10.99.0.2".parse().unwrap(), 24), ("fd00:99::2".parse().unwrap(), 64)],
            };
            ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]).unwrap();
            let result = setup_veth(&cfg, pid).and_then(|()| {
                // From the host side, the guest address answers and the
                // guest's reply finds its way back.
                use std::io::Read;
                let to = "10.99.0.2:7777".parse().unwrap();
                let mut c = std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3))?;
                let mut seen = String::new();
                c.read_to_string(&mut seen)?;
                anyhow::ensure!(seen == "10.99.0.1", "the guest saw the host as {seen:?}");
                Ok(())
            });
            let _ = guest.kill();
            let _ = guest.wait();
            let _ = remove_veth("vs-test0");
            result.unwrap();
            // A bad name fails before anything is made.
            let bad = VethConfig { host_if: "x/y".into(), ..cfg };
            assert!(setup_veth(&bad, pid).is_err());
        });
    }
}
