//! The kernel release, and whether it is recent enough for the features
//! vserver-rs builds on (openat2 and time namespaces came with 5.6).

use super::{Check, Host, Status};

const MINIMUM: (u32, u32) = (5, 6);

pub fn version(host: &Host) -> (String, Check) {
    let path = host.proc("sys/kernel/osrelease");
    let release = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_string(),
        Err(e) => {
            let detail = format!("{}: {e}", path.display());
            return ("unknown".into(), Check::new("kernel", Status::Missing, detail, NEEDED_FOR, true));
        }
    };
    let check = match parse_release(&release) {
        Some(v) if v >= MINIMUM => Check::new("kernel", Status::Ok, format!("Linux {release}"), NEEDED_FOR, true),
        Some(_) => Check::new(
            "kernel",
            Status::Limited,
            format!("Linux {release} is older than {}.{}; the lines below say what is missing", MINIMUM.0, MINIMUM.1),
            NEEDED_FOR,
            true,
        ),
        None => Check::new("kernel", Status::Limited, format!("cannot read a version from {release:?}"), NEEDED_FOR, true),
    };
    (release, check)
}

const NEEDED_FOR: &str = "Linux 5.6 or later: openat2 confined lookups and time namespaces";

/// "6.18.0-1-amd64" -> (6, 18)
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
