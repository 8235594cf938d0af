//! The programs vserver-rs runs: a static busybox and debootstrap for
//! `vserver NAME build`, ip(8) for guests' addresses.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Check, Status};

const BUSYBOX_NEEDED_FOR: &str =
    "vserver NAME build -m busybox (apt-get install busybox-static; VSERVER_BUSYBOX names another static busybox)";
const DEBOOTSTRAP_NEEDED_FOR: &str = "vserver NAME build -m debootstrap (apt-get install debootstrap)";

const IP_NEEDED_FOR: &str = "guests with interfaces/: adding their addresses on the host (apt-get install iproute2)";

pub fn checks() -> Vec<Check> {
    vec![busybox(), debootstrap(), iproute2()]
}

fn iproute2() -> Check {
    let make = |status, detail: String| Check::new("net.iproute2", status, detail, IP_NEEDED_FOR, false);
    match find_in_path("ip") {
        Some(p) => make(Status::Ok, format!("{}", p.display())),
        None => make(Status::Missing, "ip (iproute2) is not in PATH".into()),
    }
}

fn busybox() -> Check {
    let path = std::env::var_os("VSERVER_BUSYBOX").map(PathBuf::from).unwrap_or_else(|| "/bin/busybox".into());
    let make = |status, detail: String| Check::new("build.busybox", status, detail, BUSYBOX_NEEDED_FOR, false);
    match elf_is_static(&path) {
        Ok(true) => make(Status::Ok, format!("{} is statically linked", path.display())),
        Ok(false) => make(Status::Missing, format!("{} is dynamically linked and would not run inside a guest", path.display())),
        Err(e) => make(Status::Missing, format!("{}: {e}", path.display())),
    }
}

fn debootstrap() -> Check {
    let make = |status, detail: String| Check::new("build.debootstrap", status, detail, DEBOOTSTRAP_NEEDED_FOR, false);
    match find_in_path("debootstrap") {
        Some(p) => make(Status::Ok, format!("{}", p.display())),
        None => make(Status::Missing, "debootstrap is not in PATH".into()),
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// An ELF executable is static when it has no PT_INTERP program header.
pub fn elf_is_static(path: &Path) -> std::io::Result<bool> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(1 << 16).read_to_end(&mut bytes)?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(bad("not an ELF executable"));
    }
    let is64 = bytes[4] == 2;
    let le = bytes[5] == 1;
    let u16_at =
        |o: usize| bytes.get(o..o + 2).map(|b| if le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) });
    let u32_at = |o: usize| {
        bytes.get(o..o + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        })
    };
    let u64_at = |o: usize| {
        bytes.get(o..o + 8).map(|b| {
            let a: [u8; 8] = b.try_into().unwrap();
            if le {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            }
        })
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20).map(|v| v as usize), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c).map(|v| v as usize), u16_at(0x2a), u16_at(0x2c))
    };
    let (phoff, phentsize, phnum) = match (phoff, phentsize, phnum) {
        (Some(o), Some(s), Some(n)) => (o, s as usize, n as usize),
        _ => return Err(bad("truncated ELF header")),
    };
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(|| bad("program headers past the first 64 KiB"))?;
        if p_type == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}
