//! A guest's devices, from one list: the nodes of its fresh `/dev` (the
//! paper's "secure device nodes") plus the devices its configuration adds
//! (`apps/vdevmap/`, `devices`), and what the device filters allow — the v1
//! devices controller's rules and the v2 BPF program
//! (`cgroup::device_filter`) are both derived from [`GuestDevices`], so a
//! node can never be in `/dev` without being allowed, or allowed without
//! being listed.

use std::fmt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DevKind {
    Char,
    Block,
}

impl DevKind {
    /// `c` or `b`, as the devices controller and `mknod` spell it.
    pub fn letter(self) -> char {
        match self {
            DevKind::Char => 'c',
            DevKind::Block => 'b',
        }
    }
}

/// What may be done with a device: open for reading, for writing, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const ALL: Access = Access { read: true, write: true, mknod: true };

    /// `rwm` letters, as in `devices.allow` and OpenVZ's `DEVICES`.
    pub fn parse(s: &str) -> Result<Access, String> {
        let mut a = Access::default();
        for c in s.chars() {
            match c {
                'r' => a.read = true,
                'w' => a.write = true,
                'm' => a.mknod = true,
                _ => return Err(format!("{s:?} is not an access mode (letters r, w and m)")),
            }
        }
        if a == Access::default() {
            return Err("grants no access (use r, w and/or m)".into());
        }
        Ok(a)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One allowed device (or range of minors), and the node made for it in
/// the guest's `/dev`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DevKind,
    pub major: u32,
    /// None: every minor of the major.
    pub minor: Option<u32>,
    pub access: Access,
    /// Path of the node below `/dev`.
    pub node: Option<PathBuf>,
}

impl DeviceRule {
    /// The rule as the v1 devices controller takes it: `c 1:3 rwm`.
    pub fn v1_rule(&self) -> String {
        let minor = self.minor.map_or("*".to_string(), |m| m.to_string());
        format!("{} {}:{} {}", self.kind.letter(), self.major, minor, self.access)
    }

    /// The node's mode: readable and writable as the access allows.
    pub fn node_mode(&self) -> u32 {
        (if self.access.read { 0o444 } else { 0 }) | (if self.access.write { 0o222 } else { 0 })
    }
}

/// (name, major, minor): the character nodes in every guest's `/dev`.
pub const BASE_NODES: &[(&str, u32, u32)] =
    &[("full", 1, 7), ("null", 1, 3), ("random", 1, 8), ("tty", 5, 0), ("urandom", 1, 9), ("zero", 1, 5)];

/// Symlinks in every guest's `/dev` (util-vserver's default `devs`).
pub const BASE_LINKS: &[(&str, &str)] =
    &[("fd", "/proc/self/fd"), ("ptmx", "pts/ptmx"), ("stderr", "fd/2"), ("stdin", "fd/0"), ("stdout", "fd/1")];

/// Everything in the `/dev` of a guest with no added devices: the nodes,
/// the symlinks, `pts/` (its private devpts) and `shm/`.
pub const DEV_ENTRIES: &[&str] =
    &["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"];

/// The devices of one guest: the base list plus what its configuration adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDevices {
    rules: Vec<DeviceRule>,
}

impl Default for GuestDevices {
    fn default() -> Self {
        GuestDevices::with_extra(&[])
    }
}

impl GuestDevices {
    /// The base devices: the nodes above, ptmx (5:2, reached through the
    /// `ptmx` symlink into the private devpts) and the pty slaves (136:*).
    pub fn with_extra(extra: &[DeviceRule]) -> GuestDevices {
        let mut rules: Vec<DeviceRule> = BASE_NODES
            .iter()
            .map(|(name, major, minor)| DeviceRule {
                kind: DevKind::Char,
                major: *major,
                minor: Some(*minor),
                access: Access::ALL,
                node: Some(PathBuf::from(name)),
            })
            .collect();
        for (major, minor) in [(5, Some(2)), (136, None)] {
            rules.push(DeviceRule { kind: DevKind::Char, major, minor, access: Access::ALL, node: None });
        }
        rules.extend(extra.iter().cloned());
        GuestDevices { rules }
    }

    pub fn rules(&self) -> &[DeviceRule] {
        &self.rules
    }

    /// The v1 devices controller's `devices.allow` lines.
    pub fn v1_rules(&self) -> Vec<String> {
        self.rules.iter().map(DeviceRule::v1_rule).collect()
    }

    /// Names a base entry of `/dev` uses (extra nodes may not take them).
    pub fn is_base_entry(path: &Path) -> bool {
        path.components().next().is_some_and(|c| DEV_ENTRIES.iter().any(|e| c.as_os_str() == *e))
    }
}

/// Checks a node path below `/dev`: relative, plain components, not one of
/// the base entries.
pub fn check_node_path(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{} is not a path below /dev (no .., not absolute)", path.display()));
    }
    if GuestDevices::is_base_entry(path) {
        return Err(format!("/dev/{} is one of the guest's own entries", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base_node_is_allowed_and_listed_in_dev_entries() {
        let d = GuestDevices::default();
        for (name, major, minor) in BASE_NODES {
            assert!(d.v1_rules().contains(&format!("c {major}:{minor} rwm")), "{name}");
            assert!(DEV_ENTRIES.contains(name), "{name}");
        }
        for (name, _) in BASE_LINKS {
            assert!(DEV_ENTRIES.contains(name), "{name}");
        }
        assert!(d.v1_rules().contains(&"c 5:2 rwm".to_string()) && d.v1_rules().contains(&"c 136:* rwm".to_string()));
        assert_eq!(d.rules().len(), BASE_NODES.len() + 2);
        let mut names: Vec<&str> = BASE_NODES.iter().map(|n| n.0).chain(BASE_LINKS.iter().map(|l| l.0)).chain(["pts", "shm"]).collect();
        names.sort();
        assert_eq!(names, DEV_ENTRIES);
    }

    #[test]
    fn node_paths_stay_below_dev_and_off_base_entries() {
        assert!(check_node_path(Path::new("lp0")).is_ok());
        assert!(check_node_path(Path::new("dri/card0")).is_ok());
        for bad in ["../etc/x", "/lp0", "null", "pts/3", "shm/x", ""] {
            assert!(check_node_path(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_letters() {
        assert_eq!(Access::parse("rw").unwrap().to_string(), "rw");
        assert_eq!(Access::parse("mr").unwrap().to_string(), "rm");
        assert!(Access::parse("").is_err() && Access::parse("x").is_err());
    }
}
