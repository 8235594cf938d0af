//! util-vserver's `--interface [name=][dev:]ip[/prefix|/mask]` and the
//! guest-wide `--netdev`, `--netprefix` and `--netmask` it falls back to.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::interfaces;

/// Where an address goes at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// Added to this host device.
    Named(String),
    /// `nodev:`: only in the IP set.
    NoDev,
    /// No device given: `--netdev`'s, else only in the IP set.
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    pub name: Option<String>,
    pub dev: Device,
    pub ip: IpAddr,
    /// None: `--netprefix`/`--netmask`'s, else a host address (/32, /128).
    pub prefix: Option<u8>,
}

/// The guest-wide network options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDefaults {
    pub dev: Option<String>,
    /// `--netprefix` (or `--netmask` as a prefix length).
    pub prefix: Option<u8>,
}

impl InterfaceSpec {
    pub fn parse(s: &str) -> Result<InterfaceSpec, String> {
        let (name, rest) = match s.split_once('=') {
            Some((n, r)) => (Some(n.to_string()), r),
            None => (None, s),
        };
        let is_address = |a: &str| a.split('/').next().is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
        // An IPv6 address has colons of its own: only split off a device
        // when the whole text is not already an address.
        let (dev, addr) = match rest.split_once(':') {
            Some((d, a)) if !is_address(rest) => (Some(d), a),
            _ => (None, rest),
        };
        let dev = match dev {
            Some("nodev") => Device::NoDev,
            Some(d) if interfaces::valid_device_name(d) => Device::Named(d.to_string()),
            Some(d) => return Err(format!("{d:?} is not a network device name")),
            None => Device::Default,
        };
        let (ip, prefix) = match addr.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (addr, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| format!("{ip:?} is not an IPv4 or IPv6 address"))?;
        let prefix = prefix.map(|p| prefix_or_mask(p, &ip)).transpose()?;
        Ok(InterfaceSpec { name, dev, ip, prefix })
    }

    /// The device and prefix this interface gets with the guest-wide defaults.
    pub fn resolve(&self, net: &NetDefaults) -> Result<(Option<String>, u8), String> {
        let max = if self.ip.is_ipv4() { 32 } else { 128 };
        let prefix = match (self.prefix, net.prefix) {
            (Some(p), _) => p,
            (None, Some(p)) if p <= max => p,
            (None, Some(p)) => return Err(format!("--netprefix {p} does not fit {} (0-{max})", self.ip)),
            (None, None) => max,
        };
        let dev = match &self.dev {
            Device::Named(d) => Some(d.clone()),
            Device::NoDev => None,
            Device::Default => net.dev.clone(),
        };
        Ok((dev, prefix))
    }
}

/// `24` or, for IPv4, `255.255.255.0`.
fn prefix_or_mask(p: &str, ip: &IpAddr) -> Result<u8, String> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if p.contains('.') {
        if !ip.is_ipv4() {
            return Err(format!("{p:?} is an IPv4 netmask, {ip} an IPv6 address"));
        }
        return mask_to_prefix(p);
    }
    p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| format!("{p:?} is not a prefix length (0-{max}) or netmask"))
}

/// A dotted IPv4 netmask as a prefix length; the ones must be contiguous.
pub fn mask_to_prefix(mask: &str) -> Result<u8, String> {
    let m: Ipv4Addr = mask.parse().map_err(|_| format!("{mask:?} is not a netmask (e.g. 255.255.255.0)"))?;
    interfaces::mask_to_prefix(m).ok_or_else(|| format!("{mask:?} is not a netmask: its ones are not contiguous"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_specs() {
        let s = InterfaceSpec::parse("eth0:192.0.2.5/24").unwrap();
        assert_eq!((s.dev, s.prefix), (Device::Named("eth0".into()), Some(24)));
        let s = InterfaceSpec::parse("web=lo:127.0.0.5").unwrap();
        assert_eq!((s.name.as_deref(), s.dev, s.prefix), (Some("web"), Device::Named("lo".into()), None));
        assert_eq!(InterfaceSpec::parse("nodev:127.0.0.9/8").unwrap().dev, Device::NoDev);
        let s = InterfaceSpec::parse("::1").unwrap();
        assert_eq!((s.dev, s.prefix), (Device::Default, None));
        assert_eq!(InterfaceSpec::parse("eth0:10.1.2.3/255.0.0.0").unwrap().prefix, Some(8));
        assert!(InterfaceSpec::parse("eth0:10.0.0.300").is_err());
        assert!(InterfaceSpec::parse("eth0:10.0.0.1/40").is_err());
        assert!(InterfaceSpec::parse("eth0:10.0.0.1/255.0.255.0").is_err());
        assert!(InterfaceSpec::parse("eth0:2001:db8::1/255.0.0.0").is_err());
    }

    #[test]
    fn guest_wide_defaults_fill_the_gaps() {
        let net = NetDefaults { dev: Some("eth1".into()), prefix: Some(24) };
        let s = InterfaceSpec::parse("192.0.2.5").unwrap();
        assert_eq!(s.resolve(&net).unwrap(), (Some("eth1".into()), 24));
        let s = InterfaceSpec::parse("nodev:192.0.2.5/32").unwrap();
        assert_eq!(s.resolve(&net).unwrap(), (None, 32));
        assert_eq!(InterfaceSpec::parse("2001:db8::1").unwrap().resolve(&NetDefaults::default()).unwrap(), (None, 128));
        assert_eq!(mask_to_prefix("255.255.248.0"), Ok(21));
        assert_eq!(mask_to_prefix("0.0.0.0"), Ok(0));
    }
}
