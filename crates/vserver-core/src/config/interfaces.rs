//! `interfaces/N/{ip,prefix,dev,name,nodev,disabled}`, `interfaces/lback` and
//! `interfaces/allow-loopback`: the guest's IP set. Parsed and validated
//! here; enforced by `net`.

use std::net::IpAddr;
use std::path::Path;

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

pub fn parse_interfaces(dir: &Path) -> Result<NetConfig, ConfigError> {
    let mut net = NetConfig {
        lback: parse_single(&dir.join("lback"), |s| s.parse::<IpAddr>().map_err(|_| "is not an IP address"))?,
        ..Default::default()
    };
    let allow_file = dir.join("allow-loopback");
    for line in super::parse::read_lines(&allow_file)?.unwrap_or_default() {
        match line.text.parse::<IpAddr>() {
            Ok(a) if a.is_loopback() || a.to_canonical().is_loopback() => net.allow_loopback.push(a),
            Ok(_) => return Err(ConfigError::bad_value(&allow_file, line.number, &line.text, "is not a loopback address (127.0.0.0/8 or ::1)")),
            Err(_) => return Err(ConfigError::bad_value(&allow_file, line.number, &line.text, "is not an IP address")),
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(net) };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
    for id in ids {
        if let Some(iface) = parse_one(&dir.join(&id), &id)? {
            net.interfaces.push(iface);
        }
    }
    Ok(net)
}

fn parse_one(dir: &Path, id: &str) -> Result<Option<Interface>, ConfigError> {
    if dir.join("disabled").exists() {
        return Ok(None);
    }
    let ip_file = dir.join("ip");
    let Some(ip) = parse_single(&ip_file, |s| s.parse::<IpAddr>().map_err(|_| "is not an IPv4 or IPv6 address"))?
    else {
        return Err(ConfigError::new(&ip_file, 0, "is missing; every interface needs an ip"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix_file = dir.join("prefix");
    let prefix = parse_single(&prefix_file, |s| match s.parse::<u8>() {
        Ok(p) if p <= max => Ok(p),
        _ => Err(format!("is not a prefix length for {ip} (0-{max})")),
    })?
    .unwrap_or(max);
    let word = |f: &str| {
        parse_single(&dir.join(f), |s| {
            if s.len() <= 15 && !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                Ok(s.to_string())
            } else {
                Err("is not a network device name")
            }
        })
    };
    Ok(Some(Interface {
        id: id.to_string(),
        ip,
        prefix,
        dev: word("dev")?,
        name: word("name")?,
        nodev: dir.join("nodev").exists(),
    }))
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
}
