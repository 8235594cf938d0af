//! A guest with its own network namespace (`namespaces` containing `net`):
//! a veth pair, the host end in the host namespace, the guest end moved into
//! the namespace of the guest's init and given the `interfaces/` addresses.
//! Routing is plain: host routes to each guest address via the host end
//! (with proxy ARP there), a default route in the guest via that end.
//! Forwarding beyond the host (ip_forward, NAT) stays the admin's choice.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use super::addr::valid_dev_name;
use super::{IoContext, NetError};

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

/// An `ip(8)` command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum IpCommandError {
    #[error("cannot run ip(8) from iproute2: {0}")]
    Run(io::Error),
    /// Its arguments and what it wrote to stderr.
    #[error("ip {args}: {stderr}")]
    Failed { args: String, stderr: String },
}

fn ip(args: &[&str]) -> Result<(), IpCommandError> {
    let out = Command::new("ip").args(args).output().map_err(IpCommandError::Run)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(IpCommandError::Failed { args: args.join(" "), stderr });
    }
    Ok(())
}

/// Runs `f` on a new thread that has entered the network namespace of
/// `pid` (setns affects the calling thread only; children it spawns, like
/// `ip`, inherit it).
fn in_netns_of<T: Send + 'static>(pid: i32, f: impl FnOnce() -> Result<T, NetError> + Send + 'static) -> Result<T, NetError> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = File::open(&ns_path).on_file("cannot open", Path::new(&ns_path))?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).or_doing(|| format!("setns({ns_path})"))?;
        f()
    })
    .join()
    .map_err(|_| NetError::NetnsThreadPanicked { pid })?
}

/// Creates the pair, moves the guest end into the network namespace of
/// `guest_pid` and configures both ends. On an error the pair is deleted
/// again (deleting one end deletes both).
pub fn setup_veth(cfg: &VethConfig, guest_pid: i32) -> Result<(), NetError> {
    if !valid_dev_name(&cfg.host_if) || !valid_dev_name(&cfg.guest_if) {
        return Err(NetError::BadVethNames { host_if: cfg.host_if.clone(), guest_if: cfg.guest_if.clone() });
    }
    let pid = guest_pid.to_string();
    ip(&["link", "add", &cfg.host_if, "type", "veth", "peer", "name", &cfg.guest_if, "netns", &pid])
        .map_err(|err| NetError::CreateVeth { host_if: cfg.host_if.clone(), err })?;
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

fn configure_host_end(cfg: &VethConfig) -> Result<(), NetError> {
    let dev = cfg.host_if.as_str();
    ip(&["link", "set", dev, "up"])?;
    ip(&["-6", "addr", "add", &format!("{HOST_LL6}/64"), "dev", dev, "nodad"])?;
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/proxy_arp"), "1").or_doing(|| format!("cannot enable proxy ARP on {dev}"))?;
    for (addr, _) in &cfg.addresses {
        let host_route = format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 });
        ip(&["route", "add", &host_route, "dev", dev])?;
    }
    Ok(())
}

fn configure_guest_end(cfg: &VethConfig) -> Result<(), NetError> {
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
pub fn remove_veth(host_if: &str) -> Result<(), NetError> {
    if !Path::new("/sys/class/net").join(host_if).exists() {
        return Ok(());
    }
    Ok(ip(&["link", "del", host_if])?)
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
            let seen = setup_veth(&cfg, pid).map_err(|e| e.to_string()).and_then(|()| {
                // From the host side, the guest address answers and the
                // guest's reply finds its way back.
                use std::io::Read;
                let to = "10.99.0.2:7777".parse().unwrap();
                let mut seen = String::new();
                std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3))
                    .and_then(|mut c| c.read_to_string(&mut seen))
                    .map_err(|e| e.to_string())?;
                Ok(seen)
            });
            let _ = guest.kill();
            let _ = guest.wait();
            let _ = remove_veth("vs-test0");
            assert_eq!(seen.unwrap(), "10.99.0.1", "how the guest saw the host");
            // A bad name fails before anything is made.
            let bad = VethConfig { host_if: "x/y".into(), ..cfg };
            assert!(setup_veth(&bad, pid).is_err());
        });
    }
}
