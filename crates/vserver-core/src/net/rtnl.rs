//! rtnetlink from our own process (netlink-packet-route, used
//! synchronously): the host addresses a guest adds and removes, and the
//! routes its source addresses are chosen from. No `ip(8)` child on the
//! start path.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// An address as the kernel lists it on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAddress {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A unicast route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix: u8,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
}

/// What to add: `ip addr add IP/PREFIX dev DEV [label L] [scope host] [nodad]`.
#[derive(Debug, Clone)]
pub struct NewAddress<'a> {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    pub label: Option<&'a str>,
    pub scope_host: bool,
}

/// The interface index of a device, or an error naming it.
pub fn ifindex(dev: &str) -> io::Result<u32> {
    if dev.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "NUL in device name"));
    }
    nix::net::if_::if_nametoindex(dev).map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("there is no network device {dev:?}")))
}

/// One rtnetlink socket for a handful of requests.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { socket, seq: 0 })
    }

    /// Sends one request and collects the answers up to the ACK (or the end
    /// of a dump). A netlink error becomes the io::Error of its errno.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        let mut rx = vec![0u8; 1 << 16];
        loop {
            let n = self.socket.recv(&mut &mut rx[..], 0)?;
            let mut off = 0;
            while off < n {
                let m = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&rx[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad rtnetlink answer: {e}")))?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::Error(e) => match e.code {
                            None => return Ok(answers),
                            Some(_) => return Err(e.to_io()),
                        },
                        NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// Every address of the host (or of one device).
    pub fn addresses(&mut self, ifindex: Option<u32>) -> io::Result<Vec<DeviceAddress>> {
        let msgs = self.request(RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewAddress(a) = m else { continue };
            if ifindex.is_some_and(|i| i != a.header.index) {
                continue;
            }
            // IFA_LOCAL is the address itself (IFA_ADDRESS is the peer on
            // point-to-point links); IPv6 has only IFA_ADDRESS.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                out.push(DeviceAddress { ifindex: a.header.index, ip, prefix: a.header.prefix_len });
            }
        }
        Ok(out)
    }

    pub fn add_address(&mut self, a: &NewAddress) -> io::Result<()> {
        let mut m = address_message(a.ifindex, a.ip, a.prefix);
        // As ip(8) does: loopback addresses have host scope (the kernel
        // refuses 127.0.0.0/8 with any other).
        if a.scope_host || a.ip.is_loopback() {
            m.header.scope = AddressScope::Host;
        }
        if let IpAddr::V4(v4) = a.ip {
            m.attributes.push(AddressAttribute::Local(a.ip));
            if a.prefix < 31 {
                let host_bits = u32::MAX.checked_shr(a.prefix as u32).unwrap_or(0);
                m.attributes.push(AddressAttribute::Broadcast((u32::from(v4) | host_bits).into()));
            }
            if let Some(l) = a.label {
                m.attributes.push(AddressAttribute::Label(l.to_string()));
            }
        } else {
            // Usable at once: a guest binding it right after start must not
            // find it tentative.
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(RouteNetlinkMessage::NewAddress(m), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).map(drop)
    }

    pub fn del_address(&mut self, ifindex: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let mut m = address_message(ifindex, ip, prefix);
        if ip.is_ipv4() {
            m.attributes.push(AddressAttribute::Local(ip));
        }
        self.request(RouteNetlinkMessage::DelAddress(m), NLM_F_ACK).map(drop)
    }

    /// The unicast routes of the main table, both families.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut q = RouteMessage::default();
            q.header.address_family = family;
            for m in self.request(RouteNetlinkMessage::GetRoute(q), NLM_F_DUMP)? {
                let RouteNetlinkMessage::NewRoute(r) = m else { continue };
                if let Some(route) = unicast_main_route(&r) {
                    out.push(route);
                }
            }
        }
        Ok(out)
    }
}

fn address_message(ifindex: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.prefix_len = prefix;
    m.header.index = ifindex;
    m.attributes.push(AddressAttribute::Address(ip));
    m
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn unicast_main_route(r: &RouteMessage) -> Option<Route> {
    if r.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = r.header.table as u32;
    let mut route = Route {
        dst: match r.header.address_family {
            AddressFamily::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
        prefix: r.header.destination_prefix_length,
        oif: None,
        gateway: None,
        prefsrc: None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => route.dst = route_ip(d)?,
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
            RouteAttribute::PrefSource(s) => route.prefsrc = route_ip(s),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    (table == RouteHeader::RT_TABLE_MAIN as u32).then_some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_lists_and_removes_addresses_and_reads_routes() {
        crate::net::addr::tests::in_own_netns(|| {
            let mut nl = Rtnl::open().unwrap();
            let lo = ifindex("lo").unwrap();
            let ip: IpAddr = "10.77.0.5".parse().unwrap();
            nl.add_address(&NewAddress { ifindex: lo, ip, prefix: 24, label: Some("lo:t"), scope_host: false }).unwrap();
            let e = nl.add_address(&NewAddress { ifindex: lo, ip, prefix: 24, label: None, scope_host: false }).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
            let v6: IpAddr = "fd7f:7673::7f00:2a01".parse().unwrap();
            nl.add_address(&NewAddress { ifindex: lo, ip: v6, prefix: 128, label: None, scope_host: true }).unwrap();
            let all = nl.addresses(Some(lo)).unwrap();
            assert!(all.contains(&DeviceAddress { ifindex: lo, ip, prefix: 24 }), "{all:?}");
            assert!(all.iter().any(|a| a.ip == v6), "{all:?}");
            // The connected route of an address on a (veth) device is in the
            // main table; lo gets local routes only.
            let ok = std::process::Command::new("ip")
                .args(["link", "add", "vs-rt0", "type", "veth", "peer", "name", "vs-rt1"])
                .status()
                .unwrap()
                .success()
                && std::process::Command::new("ip").args(["link", "set", "vs-rt0", "up"]).status().unwrap().success();
            assert!(ok, "veth pair in the test's network namespace");
            let dev = ifindex("vs-rt0").unwrap();
            nl.add_address(&NewAddress { ifindex: dev, ip: "10.78.0.5".parse().unwrap(), prefix: 24, label: None, scope_host: false })
                .unwrap();
            let routes = nl.routes().unwrap();
            let connected = Route {
                dst: "10.78.0.0".parse().unwrap(),
                prefix: 24,
                oif: Some(dev),
                gateway: None,
                prefsrc: Some("10.78.0.5".parse().unwrap()),
            };
            assert!(routes.contains(&connected), "{routes:?}");
            assert!(!routes.iter().any(|r| r.dst.is_loopback()), "local-table routes are not listed: {routes:?}");
            nl.del_address(lo, ip, 24).unwrap();
            nl.del_address(lo, v6, 128).unwrap();
            let after = nl.addresses(Some(lo)).unwrap();
            assert!(!after.iter().any(|a| a.ip == ip || a.ip == v6), "{after:?}");
            assert!(ifindex("nosuchdev0").is_err());
        });
    }
}
