//! `interfaces/`: the guest's IP set, read as util-vserver reads it. One
//! directory per address (`interfaces/N/{ip,prefix,mask,dev,name,nodev,
//! disabled,bcast,scope,peer,down}`), with guest-wide defaults in
//! `interfaces/{dev,prefix,mask,scope,bcast}` for every address that lacks
//! its own, plus `interfaces/lback` and `interfaces/allow-loopback`. Parsed
//! and validated here; enforced by `net`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::parse::{parse_single, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The directory name under `interfaces/` (`0`, `1`, ...), kept for messages.
    pub id: String,
    pub ip: IpAddr,
    pub prefix: u8,
    /// Host device the address is added to at start; None or `nodev` means it
    /// is only part of the set.
    pub dev: Option<String>,
    /// The label suffix (`dev:name`).
    pub name: Option<String>,
    pub nodev: bool,
    /// `bcast` (IPv4 only): `ip addr add ... broadcast BCAST`; None means
    /// util-vserver's `broadcast +` (derived from the prefix).
    pub bcast: Option<Ipv4Addr>,
    /// `scope`: `ip addr add ... scope SCOPE` (`host`, `link`, `global` or a number).
    pub scope: Option<String>,
    /// `peer`: `ip addr add ... peer PEER[/PREFIX]` for a point-to-point address.
    pub peer: Option<String>,
    /// False with `down`: util-vserver sets the device up after adding the
    /// address unless this file exists.
    pub up: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    pub interfaces: Vec<Interface>,
    /// The guest's own loopback address (util-vserver `lback`).
    pub lback: Option<IpAddr>,
    /// `interfaces/allow-loopback`: loopback addresses of the host (or of
    /// others) the guest may connect and send to, one per line; every other
    /// loopback address but its own is out of its reach.
    pub allow_loopback: Vec<IpAddr>,
}

/// What the caller should tell the admin about, beyond errors: deprecated
/// names and settings start must refuse.
#[derive(Debug, Default)]
pub struct InterfaceNotes {
    pub warnings: Vec<ConfigError>,
    pub refused: Vec<ConfigError>,
}

pub fn parse_interfaces(dir: &Path) -> Result<NetConfig, ConfigError> {
    parse_interfaces_noting(dir, None, &mut InterfaceNotes::default())
}

/// As [`parse_interfaces`]; `defaults_vlandev` is `.defaults/interfaces/vlandev`.
pub fn parse_interfaces_noting(dir: &Path, defaults_vlandev: Option<&Path>, notes: &mut InterfaceNotes) -> Result<NetConfig, ConfigError> {
    let mut net = NetConfig {
        lback: parse_single(&dir.join("lback"), |s| s.parse::<IpAddr>().map_err(|_| "is not an IP address"))?,
        ..Default::default()
    };
    let allow_file = dir.join("allow-loopback");
    for line in super::parse::read_lines(&allow_file)?.unwrap_or_default() {
        match line.text.parse::<IpAddr>() {
            Ok(a) if a.is_loopback() || a.to_canonical().is_loopback() => net.allow_loopback.push(a),
            Ok(_) => {
                return Err(ConfigError::bad_value(&allow_file, line.number, &line.text, "is not a loopback address (127.0.0.0/8 or ::1)"))
            }
            Err(_) => return Err(ConfigError::bad_value(&allow_file, line.number, &line.text, "is not an IP address")),
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(net) };
    let mut ids: Vec<String> =
        entries.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).filter_map(|e| e.file_name().into_string().ok()).collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
    let vlan_default = defaults_vlandev.is_some_and(|p| p.exists());
    for id in ids {
        if let Some(iface) = parse_one(dir, &id, vlan_default, notes)? {
            net.interfaces.push(iface);
        }
    }
    Ok(net)
}

/// A value of the address's own directory, else the guest-wide one.
fn own_or_shared(dir: &Path, own: &Path, name: &str) -> PathBuf {
    let mine = own.join(name);
    if mine.exists() {
        mine
    } else {
        dir.join(name)
    }
}

fn parse_one(dir: &Path, id: &str, vlan_default: bool, notes: &mut InterfaceNotes) -> Result<Option<Interface>, ConfigError> {
    let own = dir.join(id);
    if own.join("disabled").exists() {
        return Ok(None);
    }
    let ip_file = own.join("ip");
    let Some(ip) = parse_single(&ip_file, |s| s.parse::<IpAddr>().map_err(|_| "is not an IPv4 or IPv6 address"))? else {
        return Err(ConfigError::new(&ip_file, 0, "is missing; every interface needs an ip"));
    };
    let prefix = prefix_for(dir, &own, ip)?;
    let word = |f: &str| {
        parse_single(&own_or_shared(dir, &own, f), |s| {
            if valid_device_name(s) {
                Ok(s.to_string())
            } else {
                Err("is not a network device name")
            }
        })
    };
    let dev = word("dev")?;
    let name = parse_single(&own.join("name"), |s| {
        if s.len() <= 15 && !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
            Ok(s.to_string())
        } else {
            Err("is not a label name")
        }
    })?;
    let mut nodev = own.join("nodev").exists();
    if own.join("only_ip").exists() {
        nodev = true;
        notes.warnings.push(ConfigError::new(&own.join("only_ip"), 0, "is util-vserver's old name of nodev; rename it"));
    }
    if let Some(d) = dev.as_deref().filter(|_| !nodev) {
        if wants_vlan_device(&own, dir, vlan_default) && is_vlan_name(d) {
            notes.refused.push(ConfigError::new(
                &own,
                0,
                format!(
                    "asks for the VLAN device {d:?} to be made at start (vlandev); create it on the host \
                     (ip link add link PARENT name {d} type vlan id ID) and remove the vlandev file"
                ),
            ));
        }
    }
    Ok(Some(Interface {
        id: id.to_string(),
        ip,
        prefix,
        dev,
        name,
        nodev,
        bcast: bcast_for(dir, &own, ip)?,
        scope: parse_single(&own_or_shared(dir, &own, "scope"), |s| {
            if !s.is_empty() && s.len() <= 16 && s.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(s.to_string())
            } else {
                Err("is not an address scope (host, link, global or a number)")
            }
        })?,
        peer: parse_single(&own.join("peer"), |s| {
            let addr = s.split_once('/').map_or(s, |(a, _)| a);
            match (addr.parse::<IpAddr>(), s.split_once('/').map(|(_, p)| p.parse::<u8>())) {
                (Ok(_), None | Some(Ok(_))) => Ok(s.to_string()),
                _ => Err("is not a peer address (IP or IP/PREFIX)"),
            }
        })?,
        up: !own.join("down").exists(),
    }))
}

/// `prefix` or `mask` of the address itself, else the guest-wide ones;
/// without any, a single address (/32, /128).
fn prefix_for(dir: &Path, own: &Path, ip: IpAddr) -> Result<u8, ConfigError> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    for base in [own, dir] {
        let prefix_file = base.join("prefix");
        let prefix = parse_single(&prefix_file, |s| match s.parse::<u8>() {
            Ok(p) if p <= max => Ok(p),
            _ => Err(format!("is not a prefix length for {ip} (0-{max})")),
        })?;
        let mask_file = base.join("mask");
        let mask = parse_single(&mask_file, |s| match (s.parse::<Ipv4Addr>(), ip) {
            (Ok(m), IpAddr::V4(_)) => mask_to_prefix(m).ok_or("is not a netmask (contiguous ones, like 255.255.255.0)"),
            (Ok(_), IpAddr::V6(_)) => Err("is an IPv4 netmask, but the address is IPv6 (use prefix)"),
            (Err(_), _) => Err("is not a netmask like 255.255.255.0"),
        })?;
        match (prefix, mask) {
            (Some(p), Some(m)) if p != m => {
                return Err(ConfigError::new(
                    &mask_file,
                    0,
                    format!("says /{m}, but {} says /{p}; keep one of them", prefix_file.display()),
                ))
            }
            (Some(p), _) | (None, Some(p)) => return Ok(p),
            (None, None) => {}
        }
    }
    Ok(max)
}

/// A network device name as the kernel takes it (IFNAMSIZ - 1 characters at
/// most), in the characters util-vserver's and our configurations use.
pub fn valid_device_name(d: &str) -> bool {
    d.len() <= 15 && !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

/// The prefix length of a netmask, if its ones are contiguous.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// `bcast` applies to IPv4 addresses only: a guest-wide one is skipped for
/// IPv6 addresses (as util-vserver does), the address's own is an error there.
fn bcast_for(dir: &Path, own: &Path, ip: IpAddr) -> Result<Option<Ipv4Addr>, ConfigError> {
    let own_file = own.join("bcast");
    if ip.is_ipv6() {
        if own_file.exists() {
            return Err(ConfigError::new(&own_file, 0, format!("{ip} is an IPv6 address, which has no broadcast address")));
        }
        return Ok(None);
    }
    parse_single(&own_or_shared(dir, own, "bcast"), |s| s.parse::<Ipv4Addr>().map_err(|_| "is not an IPv4 broadcast address"))
}

/// util-vserver makes a VLAN device when `vlandev` is set for the address,
/// for the guest (unless the address says `novlandev`), or in `.defaults`
/// (unless the address or the guest says `novlandev`).
fn wants_vlan_device(own: &Path, dir: &Path, vlan_default: bool) -> bool {
    own.join("vlandev").exists()
        || (dir.join("vlandev").exists() && !own.join("novlandev").exists())
        || (vlan_default && !own.join("novlandev").exists() && !dir.join("novlandev").exists())
}

/// Device names util-vserver turns into VLAN devices: `eth0.5`, `vlan5`.
fn is_vlan_name(dev: &str) -> bool {
    dev.starts_with("vlan")
        || dev.split_once('.').is_some_and(|(parent, vid)| !parent.is_empty() && !vid.is_empty() && vid.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn parses_and_validates() {
        let d = crate::config::parse::tests::tempdir();
        fs::create_dir_all(d.join("0")).unwrap();
        fs::write(d.join("0/ip"), "127.0.0.5\n").unwrap();
        fs::write(d.join("0/prefix"), "8\n").unwrap();
        fs::write(d.join("0/dev"), "lo\n").unwrap();
        fs::create_dir_all(d.join("1")).unwrap();
        fs::write(d.join("1/ip"), "::1\n").unwrap();
        fs::write(d.join("lback"), "127.0.0.77\n").unwrap();
        fs::write(d.join("allow-loopback"), "# resolver\n127.0.0.53\n").unwrap();
        let n = parse_interfaces(&d).unwrap();
        assert_eq!(n.allow_loopback, vec!["127.0.0.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(n.interfaces.len(), 2);
        assert_eq!(n.interfaces[1].prefix, 128);
        assert_eq!(n.lback, Some("127.0.0.77".parse().unwrap()));
        assert!(n.interfaces[0].up && n.interfaces[0].bcast.is_none());

        fs::write(d.join("allow-loopback"), "10.0.0.1\n").unwrap();
        assert!(parse_interfaces(&d).unwrap_err().to_string().contains("is not a loopback address"));
        fs::remove_file(d.join("allow-loopback")).unwrap();
        fs::write(d.join("1/ip"), "10.0.0.300\n").unwrap();
        let e = parse_interfaces(&d).unwrap_err();
        assert!(e.to_string().contains("\"10.0.0.300\" is not an IPv4 or IPv6 address"), "{e}");
        fs::write(d.join("1/ip"), "127.0.0.6\n").unwrap();
        fs::write(d.join("1/prefix"), "33\n").unwrap();
        assert!(parse_interfaces(&d).is_err());
    }

    #[test]
    fn mask_and_guest_wide_defaults_as_util_vserver_reads_them() {
        let d = crate::config::parse::tests::tempdir();
        for (f, v) in [
            ("dev", "lo"),
            ("mask", "255.255.0.0"),
            ("bcast", "127.0.255.255"),
            ("scope", "host"),
            ("0/ip", "127.0.0.5"),
            ("1/ip", "127.0.0.6"),
            ("1/mask", "255.255.255.0"),
            ("1/dev", "eth7"),
            ("1/peer", "127.0.0.9/32"),
            ("1/down", ""),
            ("2/ip", "::2"),
            ("2/prefix", "64"),
        ] {
            fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            fs::write(d.join(f), format!("{v}\n")).unwrap();
        }
        let n = parse_interfaces(&d).unwrap();
        let [a, b, c] = n.interfaces.as_slice() else { panic!("{n:?}") };
        assert_eq!((a.prefix, a.dev.as_deref(), a.scope.as_deref()), (16, Some("lo"), Some("host")));
        assert_eq!(a.bcast, Some(Ipv4Addr::new(127, 0, 255, 255)));
        assert_eq!((b.prefix, b.dev.as_deref(), b.up, b.peer.as_deref()), (24, Some("eth7"), false, Some("127.0.0.9/32")));
        assert_eq!((c.prefix, c.bcast), (64, None), "a guest-wide bcast skips IPv6 addresses");

        fs::write(d.join("1/mask"), "255.0.255.0\n").unwrap();
        assert!(parse_interfaces(&d).unwrap_err().to_string().contains("contiguous"));
        fs::write(d.join("1/mask"), "255.255.255.0\n").unwrap();
        fs::write(d.join("1/prefix"), "16\n").unwrap();
        assert!(parse_interfaces(&d).unwrap_err().to_string().contains("keep one of them"));
        fs::remove_file(d.join("1/prefix")).unwrap();
        fs::write(d.join("2/bcast"), "1.2.3.4\n").unwrap();
        assert!(parse_interfaces(&d).unwrap_err().to_string().contains("IPv6"));
    }

    #[test]
    fn vlan_devices_to_make_are_refused_and_only_ip_warned() {
        let d = crate::config::parse::tests::tempdir();
        for (f, v) in [("0/ip", "10.0.0.5"), ("0/dev", "eth0.5"), ("vlandev", ""), ("1/ip", "10.0.0.6"), ("1/only_ip", "")] {
            fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            fs::write(d.join(f), v).unwrap();
        }
        let mut notes = InterfaceNotes::default();
        let n = parse_interfaces_noting(&d, None, &mut notes).unwrap();
        assert!(n.interfaces[1].nodev);
        assert_eq!(notes.refused.len(), 1);
        assert!(notes.refused[0].to_string().contains("eth0.5"), "{:?}", notes.refused);
        assert_eq!(notes.warnings[0].file, d.join("1/only_ip"));
        fs::write(d.join("0/novlandev"), "").unwrap();
        let mut notes = InterfaceNotes::default();
        parse_interfaces_noting(&d, None, &mut notes).unwrap();
        assert!(notes.refused.is_empty());
    }

    #[test]
    fn netmasks() {
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
