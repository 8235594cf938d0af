//! The guest's `fstab`: `SOURCE TARGET TYPE OPTIONS [DUMP PASS]`, mounted
//! inside the guest root at start (see `rootfs::fstab`).

use std::path::{Component, Path, PathBuf};

use super::parse::{ConfigError, Line};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub source: String,
    /// Absolute inside the guest, normalised, never containing `..`.
    pub target: PathBuf,
    pub fstype: String,
    pub flags: libc::c_ulong,
    /// Options the kernel does not know as flags, passed as mount data.
    pub data: String,
}

impl FstabEntry {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

pub fn parse_fstab(file: &Path, lines: &[Line]) -> Result<Vec<FstabEntry>, ConfigError> {
    lines.iter().map(|l| parse_line(file, l)).collect()
}

fn parse_line(file: &Path, line: &Line) -> Result<FstabEntry, ConfigError> {
    let fields: Vec<&str> = line.text.split_whitespace().collect();
    let bad = |why: &str| ConfigError::bad_value(file, line.number, &line.text, why);
    if !(3..=6).contains(&fields.len()) {
        return Err(bad("is not an fstab line (SOURCE TARGET TYPE [OPTIONS [DUMP PASS]])"));
    }
    let target = normalise_target(fields[1]).map_err(|why| bad(&why))?;
    let (mut flags, data) = parse_options(fields.get(3).copied().unwrap_or("defaults")).map_err(|w| bad(&w))?;
    if fields[2] == "bind" || fields[2] == "none" && flags & libc::MS_BIND != 0 {
        flags |= libc::MS_BIND;
    }
    Ok(FstabEntry { source: fields[0].to_string(), target, fstype: fields[2].to_string(), flags, data })
}

/// The target is always inside the guest: absolute, no `..`.
fn normalise_target(raw: &str) -> Result<PathBuf, String> {
    let p = Path::new(raw);
    if !p.is_absolute() {
        return Err(format!("has a relative target {raw:?}; targets are absolute paths inside the guest"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("has \"..\" in its target {raw:?}"));
            }
        }
    }
    if out == Path::new("/") {
        return Err("mounts over the guest root itself".into());
    }
    Ok(out)
}

fn parse_options(opts: &str) -> Result<(libc::c_ulong, String), String> {
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "defaults" | "rw" | "auto" | "noauto" | "nouser" | "async" | "suid" | "dev" | "exec" => {}
            "ro" => flags |= libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "noatime" => flags |= libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "remount" | "move" | "shared" | "rshared" => {
                return Err(format!("uses the option {opt:?}, which fstab entries of a guest may not use"))
            }
            other => data.push(other),
        }
    }
    Ok((flags, data.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::meaningful_lines;

    #[test]
    fn parses_util_vserver_default_fstab() {
        let lines =
            meaningful_lines("none /proc proc defaults 0 0\nnone /tmp tmpfs size=16m,mode=1777,nosuid 0 0\n/srv/data /data bind ro 0 0\n");
        let e = parse_fstab(Path::new("fstab"), &lines).unwrap();
        assert_eq!(e[1].target, PathBuf::from("/tmp"));
        assert_eq!(e[1].data, "size=16m,mode=1777");
        assert_eq!(e[1].flags, libc::MS_NOSUID);
        assert!(e[2].is_bind() && e[2].flags & libc::MS_RDONLY != 0);
    }

    #[test]
    fn rejects_escaping_or_odd_lines() {
        for bad in ["none ../x tmpfs", "none /a/../../b tmpfs", "none / tmpfs", "onlyone", "x /y tmpfs remount"] {
            let lines = meaningful_lines(bad);
            let err = parse_fstab(Path::new("/etc/vservers/g/fstab"), &lines).unwrap_err();
            assert_eq!(err.line, 1, "{bad}");
        }
    }
}
