//! Guest addresses on host devices: added at start as
//! `ip addr add IP/PREFIX dev DEV label DEV:NAME` would (over rtnetlink from
//! our own process), removed at stop.
//! An address the device had before is left alone, then and later: only
//! what was added is recorded, in a string form the run state keeps.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::rtnl::{self, NewAddress, Rtnl};
use super::{IoContext, NetError};

/// One address this host did not have before a context added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedAddress {
    pub ip: IpAddr,
    pub prefix: u8,
    pub dev: String,
    /// `DEV:NAME` (IPv4 only; IPv6 addresses have no labels).
    pub label: Option<String>,
}

/// `127.0.0.5/8 dev lo label lo:web`, the way `ip addr add` spells it.
impl fmt::Display for AddedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} dev {}", self.ip, self.prefix, self.dev)?;
        if let Some(l) = &self.label {
            write!(f, " label {l}")?;
        }
        Ok(())
    }
}

impl FromStr for AddedAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an added address (IP/PREFIX dev DEV [label LABEL])");
        let words: Vec<&str> = s.split_whitespace().collect();
        let (addr, dev, label) = match words.as_slice() {
            [a, "dev", d] => (*a, *d, None),
            [a, "dev", d, "label", l] => (*a, *d, Some(l.to_string())),
            _ => return Err(bad()),
        };
        let (ip, prefix) = addr.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > if ip.is_ipv4() { 32 } else { 128 } || !valid_dev_name(dev) {
            return Err(bad());
        }
        Ok(AddedAddress { ip, prefix, dev: dev.to_string(), label })
    }
}

pub fn valid_dev_name(d: &str) -> bool {
    !d.is_empty() && d.len() <= 15 && d.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// Does the host have this network device?
pub fn device_exists(dev: &str) -> bool {
    valid_dev_name(dev) && std::path::Path::new("/sys/class/net").join(dev).exists()
}

/// What one interface of the config asks for; `label` already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedAddress {
    pub ip: IpAddr,
    pub prefix: u8,
    pub dev: String,
    pub label: Option<String>,
    /// `scope host`: the guest's IPv6 loopback address on `lo`, which the
    /// host must never pick as a source of its own.
    pub scope_host: bool,
}

/// The addresses a device has now.
#[cfg(test)]
pub fn device_addresses(dev: &str) -> Result<Vec<IpAddr>, NetError> {
    let index = rtnl::ifindex(dev).map_err(NetError::Sys)?;
    let list = Rtnl::open().and_then(|mut nl| nl.addresses(Some(index)));
    Ok(list.or_doing(|| format!("cannot list the addresses of device {dev}"))?.into_iter().map(|a| a.ip).collect())
}

/// Adds each wanted address its device does not have yet. On an error the
/// ones added so far are removed again, so nothing is left half-done.
pub fn add_addresses(wanted: &[WantedAddress]) -> Result<Vec<AddedAddress>, NetError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut nl = open_rtnl()?;
    let mut added = Vec::new();
    for w in wanted {
        match add_one(&mut nl, w) {
            Ok(Some(a)) => added.push(a),
            Ok(None) => {}
            Err(e) => {
                let _ = remove_addresses(&added);
                return Err(e);
            }
        }
    }
    Ok(added)
}

fn open_rtnl() -> Result<Rtnl, NetError> {
    Rtnl::open().or_doing(|| "cannot open an rtnetlink socket".into())
}

fn add_one(nl: &mut Rtnl, w: &WantedAddress) -> Result<Option<AddedAddress>, NetError> {
    let index = rtnl::ifindex(&w.dev).map_err(NetError::Sys)?;
    let addr = format!("{}/{}", w.ip, w.prefix);
    if nl.addresses(Some(index)).or_doing(|| format!("cannot list the addresses of {}", w.dev))?.iter().any(|a| a.ip == w.ip) {
        return Ok(None); // the host's own (whatever its prefix): never ours to remove
    }
    let new = NewAddress { ifindex: index, ip: w.ip, prefix: w.prefix, label: w.label.as_deref(), scope_host: w.scope_host };
    match nl.add_address(&new) {
        Ok(()) => {}
        // The host's own (or another guest's): never ours to remove.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(None),
        Err(e) => return Err(e).or_doing(|| format!("cannot add {addr} to device {}", w.dev)),
    }
    Ok(Some(AddedAddress { ip: w.ip, prefix: w.prefix, dev: w.dev.clone(), label: w.label.clone() }))
}

/// Removes addresses that were added; one already gone (or its device) is
/// fine. Goes on past errors and returns the first.
pub fn remove_addresses(added: &[AddedAddress]) -> Result<(), NetError> {
    if added.is_empty() {
        return Ok(());
    }
    let mut nl = open_rtnl()?;
    let mut first = None;
    for a in added {
        let Ok(index) = rtnl::ifindex(&a.dev) else { continue };
        match nl.del_address(index, a.ip, a.prefix) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) || e.raw_os_error() == Some(libc::ENODEV) => {}
            Err(err) => {
                let what = format!("cannot remove {}/{} from device {}", a.ip, a.prefix, a.dev);
                first.get_or_insert(NetError::Io { what, err });
            }
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn string_form_round_trips() {
        for s in ["127.0.0.5/8 dev lo label lo:web", "::1/128 dev lo", "127.0.0.9/32 dev eth0.5"] {
            let a: AddedAddress = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        for bad in ["", "127.0.0.5 dev lo", "127.0.0.5/33 dev lo", "x/8 dev lo", "1.2.3.4/8 dev", "1.2.3.4/8 dev a/b"] {
            assert!(bad.parse::<AddedAddress>().is_err(), "{bad}");
        }
    }

    /// Runs `f` on a thread of its own network namespace (unshare affects
    /// the calling thread only), so addresses come and go there, not on the host.
    pub(crate) fn in_own_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let is_root = nix::unistd::geteuid().is_root();
        if !is_root {
            assert!(std::env::var_os("CI").is_none(), "CI: this test needs root");
            return None;
        }
        Some(
            std::thread::spawn(move || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
                let out = std::process::Command::new("ip").args(["link", "set", "lo", "up"]).output().unwrap();
                assert!(out.status.success(), "ip link set lo up: {out:?}");
                f()
            })
            .join()
            .unwrap(),
        )
    }

    #[test]
    fn adds_and_removes_only_what_was_missing() {
        in_own_netns(|| {
            let w = |ip: &str, label: Option<&str>| WantedAddress {
                ip: ip.parse().unwrap(),
                prefix: if ip.contains(':') { 128 } else { 8 },
                dev: "lo".into(),
                label: label.map(String::from),
                scope_host: false,
            };
            // 127.0.0.1 and ::1 are lo's own: neither added nor removed.
            let wanted = [w("127.0.0.1", None), w("127.0.0.55", Some("lo:test")), w("::1", None)];
            let added = add_addresses(&wanted).unwrap();
            assert_eq!(added.len(), 1);
            assert_eq!(added[0].to_string(), "127.0.0.55/8 dev lo label lo:test");
            let now = device_addresses("lo").unwrap();
            assert!(now.contains(&"127.0.0.55".parse().unwrap()));
            remove_addresses(&added).unwrap();
            let after = device_addresses("lo").unwrap();
            assert!(!after.contains(&"127.0.0.55".parse().unwrap()));
            assert!(after.contains(&"127.0.0.1".parse().unwrap()));
            remove_addresses(&added).unwrap(); // already gone: fine

            // A failing address undoes the ones before it.
            let bad = [w("127.0.0.56", None), WantedAddress { dev: "nosuchdev0".into(), ..w("127.0.0.57", None) }];
            assert!(add_addresses(&bad).is_err());
            assert!(!device_addresses("lo").unwrap().contains(&"127.0.0.56".parse().unwrap()));
        });
    }
}
