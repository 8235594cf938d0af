//! The small trait each cgroup controller module implements twice, once for
//! the v1 file names and once for the v2 ones, plus finding the directory a
//! controller's files are in for a guest.
//!
//! Settings are partial: a `None` field means "leave this file alone". What
//! `read` returns is complete, so `write(read())` restores a cgroup exactly;
//! that is how a failed change is rolled back.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::cgroup::{self, GuestCgroup};

/// A limit in a cgroup file: `None` is unlimited (`max` in v2, `-1` in v1).
pub type Max = Option<u64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        })
    }
}

pub trait Controller {
    /// The limits this controller holds (partial for writing, complete when read).
    type Settings;
    /// Counters: usage, observed maximum, limit hits.
    type Usage;

    fn read(&self, dir: &Path) -> io::Result<Self::Settings>;
    fn write(&self, dir: &Path, wanted: &Self::Settings) -> io::Result<()>;
    fn usage(&self, dir: &Path) -> io::Result<Self::Usage>;
}

/// Where one controller of a guest cgroup lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    pub version: Version,
}

/// Finds a controller's directory, or says exactly why it is not there.
pub fn locate(cg: &GuestCgroup, controller: &str) -> Result<Located, LocateError> {
    let layout = cg.layout();
    let controller_name = || controller.to_string();
    if let Some(mount) = layout.v1_mount(controller) {
        let Some(dir) = cg.controller_dir(controller) else {
            return Err(LocateError::NoGuestDir { controller: controller_name(), mount: mount.to_path_buf() });
        };
        return Ok(Located { dir, version: Version::V1 });
    }
    if let Some(dir) = cg.controller_dir(controller) {
        return Ok(Located { dir, version: Version::V2 });
    }
    let v1_dir = || layout_root(cg).join(controller);
    Err(match (cg.v2_dir(), &layout.v2) {
        (Some(v2), Some(root)) if layout.v2_controllers().iter().any(|c| c == controller) => LocateError::NotEnabled {
            controller: controller_name(),
            subtree_control: v2.parent().unwrap_or(root).join("cgroup.subtree_control"),
        },
        (_, Some(root)) => {
            LocateError::NotOffered { controller: controller_name(), v1_dir: v1_dir(), controllers: root.join("cgroup.controllers") }
        }
        (_, None) => LocateError::NotMounted { controller: controller_name(), v1_dir: v1_dir() },
    })
}

/// Why a controller has no directory for a guest.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("the {controller} controller (v1 hierarchy {}) has no directory of this guest", mount.display())]
    NoGuestDir { controller: String, mount: PathBuf },
    #[error("the {controller} controller is not enabled for guest cgroups: {} does not list it", subtree_control.display())]
    NotEnabled { controller: String, subtree_control: PathBuf },
    #[error(
        "the {controller} controller is not available: no v1 hierarchy {} and {} does not offer it",
        v1_dir.display(),
        controllers.display()
    )]
    NotOffered { controller: String, v1_dir: PathBuf, controllers: PathBuf },
    #[error("the {controller} controller is not available: no v1 hierarchy {} is mounted", v1_dir.display())]
    NotMounted { controller: String, v1_dir: PathBuf },
}

/// The cgroup mount root (`/sys/fs/cgroup`), for messages.
fn layout_root(cg: &GuestCgroup) -> PathBuf {
    let layout = cg.layout();
    let any = layout.v1.first().map(|h| h.mount.clone()).or_else(|| layout.v2.clone()).unwrap_or_default();
    if layout.kind() == cgroup::LayoutKind::V2Only {
        return any;
    }
    any.parent().map(Path::to_path_buf).unwrap_or(any)
}

/// v1 reports "unlimited" as the largest page-aligned i64.
const V1_UNLIMITED_FLOOR: u64 = 0x7FFF_FFFF_FFFF_F000;

/// Reads a limit file in either syntax: `max`, `-1`, or a number.
pub fn read_max(path: &Path) -> io::Result<Max> {
    parse_max(cgroup::read_file(path)?.trim()).map_err(|e| invalid(path, e))
}

pub fn parse_max(text: &str) -> Result<Max, String> {
    match text {
        "max" | "-1" => Ok(None),
        _ => match text.parse::<u64>() {
            Ok(n) if n >= V1_UNLIMITED_FLOOR => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!("{text:?} is not a limit")),
        },
    }
}

pub fn max_text(version: Version, value: Max) -> String {
    match (value, version) {
        (Some(n), _) => n.to_string(),
        (None, Version::V1) => "-1".into(),
        (None, Version::V2) => "max".into(),
    }
}

pub fn read_u64(path: &Path) -> io::Result<u64> {
    let text = cgroup::read_file(path)?;
    text.trim().parse().map_err(|_| invalid(path, format!("{:?} is not a number", text.trim())))
}

/// One value of a flat-keyed file (`memory.events`, `cpu.stat`, `memory.stat`).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// A keyed file's value that must be there.
pub fn read_keyed(path: &Path, key: &str) -> io::Result<u64> {
    let text = cgroup::read_file(path)?;
    keyed_value(&text, key).ok_or_else(|| invalid(path, format!("has no {key:?} line")))
}

/// Reads a file that newer kernels have and older ones lack.
pub fn optional<T>(path: &Path, read: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    read(path).map(Some)
}

pub fn invalid(path: &Path, why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_in_both_syntaxes() {
        assert_eq!(parse_max("max"), Ok(None));
        assert_eq!(parse_max("-1"), Ok(None));
        assert_eq!(parse_max("9223372036854771712"), Ok(None));
        assert_eq!(parse_max("67108864"), Ok(Some(64 << 20)));
        assert!(parse_max("lots").is_err());
        assert_eq!(max_text(Version::V1, None), "-1");
        assert_eq!(max_text(Version::V2, None), "max");
        assert_eq!(max_text(Version::V2, Some(5)), "5");
    }

    #[test]
    fn keyed_files() {
        let text = "low 0\nhigh 2\nmax 7\noom 1\noom_kill 1\n";
        assert_eq!(keyed_value(text, "max"), Some(7));
        assert_eq!(keyed_value(text, "oom_kill"), Some(1));
        assert_eq!(keyed_value(text, "oom_group_kill"), None);
    }
}
