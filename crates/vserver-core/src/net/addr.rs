//! Guest addresses on host devices: added at start as
//! `ip addr add IP/PREFIX dev DEV label DEV:NAME` would, removed at stop.
//! An address the device had before is left alone, then and later: only
//! what was added is recorded, in a string form the run state keeps.

use std::fmt;
use std::net::IpAddr;
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context};

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
}

fn ip_cmd(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(args).output().context("cannot run ip(8) from iproute2")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The addresses a device has now.
pub fn device_addresses(dev: &str) -> anyhow::Result<Vec<IpAddr>> {
    let json = ip_cmd(&["-j", "addr", "show", "dev", dev])?;
    let v: serde_json::Value =
        serde_json::from_str(&json).with_context(|| format!("cannot parse `ip -j addr show dev {dev}`"))?;
    let locals = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    Ok(locals)
}

/// Adds each wanted address its device does not have yet. On an error the
/// ones added so far are removed again, so nothing is left half-done.
pub fn add_addresses(wanted: &[WantedAddress]) -> anyhow::Result<Vec<AddedAddress>> {
    let mut added = Vec::new();
    for w in wanted {
        match add_one(w) {
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

fn add_one(w: &WantedAddress) -> anyhow::Result<Option<AddedAddress>> {
    if device_addresses(&w.dev)?.contains(&w.ip) {
        return Ok(None); // the host's own: never ours to remove
    }
    let addr = format!("{}/{}", w.ip, w.prefix);
    let mut args = vec!["addr", "add", addr.as_str(), "dev", w.dev.as_str()];
    if w.ip.is_ipv4() && w.prefix < 31 {
        args.extend(["broadcast", "+"]);
    }
    if w.ip.is_ipv6() {
        // Usable at once: a guest binding it right after start must not
        // find it tentative.
        args.push("nodad");
    }
    if let Some(l) = &w.label {
        args.extend(["label", l.as_str()]);
    }
    ip_cmd(&args).with_context(|| format!("cannot add {addr} to device {}", w.dev))?;
    Ok(Some(AddedAddress { ip: w.ip, prefix: w.prefix, dev: w.dev.clone(), label: w.label.clone() }))
}

/// Removes addresses that were added; one already gone is fine. Goes on past
/// errors and returns the first.
pub fn remove_addresses(added: &[AddedAddress]) -> anyhow::Result<()> {
    let mut first = None;
    for a in added {
        let still_there = device_addresses(&a.dev).map(|l| l.contains(&a.ip)).unwrap_or(false);
        if !still_there {
            continue;
        }
        let addr = format!("{}/{}", a.ip, a.prefix);
        if let Err(e) = ip_cmd(&["addr", "del", &addr, "dev", &a.dev]) {
            first.get_or_insert(e.context(format!("cannot remove {addr} from device {}", a.dev)));
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
                ip_cmd(&["link", "set", "lo", "up"]).unwrap();
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
