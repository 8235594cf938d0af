//! Which sockets of a set of processes are bound to an address: their
//! descriptors (`/proc/PID/fd` -> `socket:[INODE]`) against the host's
//! socket tables (`/proc/net/{tcp,udp,raw}{,6}`, local address and inode).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How many distinct sockets held by `pids` have `ip` as local address.
pub fn bound_to(pids: &[i32], ip: IpAddr) -> usize {
    let inodes = socket_inodes(pids);
    if inodes.is_empty() {
        return 0;
    }
    let mut found = HashSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else { continue };
        for (local, inode) in text.lines().skip(1).filter_map(parse_line) {
            if local == ip && inodes.contains(&inode) {
                found.insert(inode);
            }
        }
    }
    found.len()
}

fn socket_inodes(pids: &[i32]) -> HashSet<u64> {
    let mut out = HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(n) = n.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode`:
/// the local address (v4-mapped IPv6 taken as IPv4) and the inode.
fn parse_line(line: &str) -> Option<(IpAddr, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (hex, _port) = f.get(1)?.split_once(':')?;
    let inode = f.get(9)?.parse().ok()?;
    let ip = match hex.len() {
        // The kernel prints each 32-bit word in host byte order.
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())),
        32 => {
            let mut o = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
                o[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
            }
            super::ipset::canonical(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => return None,
    };
    Some((ip, inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_tables() {
        let v4 = "   0: 3D00007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000 100 0 0 10 0";
        assert_eq!(parse_line(v4), Some(("127.0.0.61".parse().unwrap(), 12345)));
        let v6 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1";
        assert_eq!(parse_line(v6), Some(("::1".parse().unwrap(), 777)));
        let mapped = "   0: 0000000000000000FFFF00003D00007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1";
        assert_eq!(parse_line(mapped), Some(("127.0.0.61".parse().unwrap(), 778)));
    }

    #[test]
    fn finds_a_socket_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.93:0").unwrap();
        let me = [std::process::id() as i32];
        assert_eq!(bound_to(&me, "127.0.0.93".parse().unwrap()), 1);
        assert_eq!(bound_to(&me, "127.0.0.94".parse().unwrap()), 0);
        drop(l);
    }
}
