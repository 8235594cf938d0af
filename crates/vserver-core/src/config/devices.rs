//! Devices a guest's configuration adds to its `/dev`: util-vserver's
//! `apps/vdevmap/X/{device,open,create,remap,target,flags}`, and a plain
//! list `devices` in the spirit of OpenVZ's `--devnodes lp0:rw` and
//! `DEVICES="c:196:0:rw"`. Each becomes a [`DeviceRule`]: the node is made in
//! the guest's `/dev` and both device filters allow it (see `config::device_rule`).
//!
//! A device that would hand the guest the host itself is refused: ranges
//! over the host's disks (`b:8:*`), a block device holding a filesystem or
//! swap the host uses (or the disk under it), physical memory and I/O
//! ports, and ranges over consoles, input devices and the misc major.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::device_rule::{check_node_path, Access, DevKind, DeviceRule};
use super::parse::{read_lines, read_single, ConfigError};

/// Char majors whose every minor includes something of the host's:
/// memory (mem, kmem, port), virtual consoles and serial lines, console and
/// tty, console memory (vcs), misc (uinput, kvm, ...), input (keyboards).
const NO_WILDCARD_CHAR_MAJORS: &[(u32, &str)] = &[
    (1, "memory devices (mem, kmem, port)"),
    (4, "the host's virtual consoles"),
    (5, "the host's console"),
    (7, "the host's console memory (vcs)"),
    (10, "misc devices (uinput, kvm, ...)"),
    (13, "the host's input devices (keyboards)"),
];

/// Char devices never given to a guest: they are the host's memory.
const NEVER: &[(u32, u32, &str)] = &[(1, 1, "mem (the host's physical memory)"), (1, 2, "kmem"), (1, 4, "port (the host's I/O ports)")];

/// Reads both sources. Syntax errors are errors; devices that would give
/// the guest the host go to `refused`, naming the file.
pub fn parse_devices(
    vdevmap_dir: &Path,
    list: &Path,
    dev_root: &Path,
    refused: &mut Vec<ConfigError>,
) -> Result<Vec<DeviceRule>, ConfigError> {
    let wanted: Vec<(PathBuf, DeviceRule)> = parse_vdevmap(vdevmap_dir, dev_root)?.into_iter().chain(parse_list(list, dev_root)?).collect();
    // What the host's disks are is only read when a block device is asked for.
    let host = if wanted.iter().any(|(_, r)| r.kind == DevKind::Block) { HostDisks::read() } else { HostDisks { used: Vec::new() } };
    let mut out = Vec::new();
    for (file, rule) in wanted {
        match check_safe(&rule, &host) {
            Ok(()) => out.push(rule),
            Err(why) => refused.push(ConfigError::new(&file, 0, why)),
        }
    }
    let mut nodes = BTreeSet::new();
    for r in &out {
        if let Some(n) = &r.node {
            if !nodes.insert(n.clone()) {
                return Err(ConfigError::new(list, 0, format!("/dev/{} is named twice", n.display())));
            }
        }
    }
    Ok(out)
}

/// `apps/vdevmap/X/`: `device` is a node under /dev (the one the guest
/// sees), `open` lets it be opened for reading and writing, `create`
/// allows mknod, and `remap` with `target` makes the guest's node open the
/// target device instead.
fn parse_vdevmap(dir: &Path, dev_root: &Path) -> Result<Vec<(PathBuf, DeviceRule)>, ConfigError> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut maps: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    maps.sort();
    let mut out = Vec::new();
    for m in maps {
        if let Some(flags) = read_single(&m.join("flags"))? {
            if flags.text != "0" {
                return Err(ConfigError::bad_value(
                    &m.join("flags"),
                    flags.number,
                    &flags.text,
                    "raw device-mapping flags have no meaning on a stock kernel; use open, create and remap",
                ));
            }
        }
        let device_file = m.join("device");
        let Some(device) = read_single(&device_file)? else {
            return Err(ConfigError::new(&m, 0, "has no device file: a mapping for every device is not possible here; name the device"));
        };
        let open = m.join("open").exists();
        let create = m.join("create").exists();
        if !open && !create {
            return Err(ConfigError::new(&m, 0, "has neither open nor create, so it would allow nothing"));
        }
        let node = below_dev(&device.text).map_err(|e| ConfigError::bad_value(&device_file, device.number, &device.text, e))?;
        let (numbers_from, numbers_file) = if m.join("remap").exists() {
            let target_file = m.join("target");
            let Some(target) = read_single(&target_file)? else {
                return Err(ConfigError::new(&target_file, 0, "is missing; remap needs the target device"));
            };
            (host_dev_path(&target.text).map_err(|e| ConfigError::bad_value(&target_file, target.number, &target.text, e))?, target_file)
        } else {
            (node.clone(), device_file.clone())
        };
        let (kind, major, minor) = host_node(dev_root, &numbers_from).map_err(|e| ConfigError::new(&numbers_file, 0, e))?;
        let access = Access { read: open, write: open, mknod: create };
        out.push((m.clone(), DeviceRule { kind, major, minor: Some(minor), access, node: open.then_some(node) }));
    }
    Ok(out)
}

/// The `devices` list: `NAME[:PERM]` for a host node under /dev (made at
/// the same place in the guest's /dev), `c|b:MAJOR:MINOR[:PERM]` to allow
/// a device (MINOR may be `*`) without making a node.
fn parse_list(file: &Path, dev_root: &Path) -> Result<Vec<(PathBuf, DeviceRule)>, ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for line in lines {
        let bad = |why: String| ConfigError::bad_value(file, line.number, &line.text, why);
        let fields: Vec<&str> = line.text.split(':').collect();
        let rule = match fields.as_slice() {
            [k @ ("c" | "b"), major, minor, rest @ ..] if rest.len() <= 1 => {
                let kind = if *k == "c" { DevKind::Char } else { DevKind::Block };
                let major = major.parse::<u32>().map_err(|_| bad(format!("{major:?} is not a major number")))?;
                let minor = match *minor {
                    "*" => None,
                    m => Some(m.parse::<u32>().map_err(|_| bad(format!("{m:?} is not a minor number (or *)")))?),
                };
                let access = Access::parse(rest.first().copied().unwrap_or("rw")).map_err(bad)?;
                DeviceRule { kind, major, minor, access, node: None }
            }
            [name, rest @ ..] if rest.len() <= 1 => {
                let node = below_dev(name).map_err(bad)?;
                let access = Access::parse(rest.first().copied().unwrap_or("rw")).map_err(bad)?;
                let (kind, major, minor) = host_node(dev_root, &node).map_err(bad)?;
                DeviceRule { kind, major, minor: Some(minor), access, node: Some(node) }
            }
            _ => return Err(bad("is not NAME[:PERM] or c|b:MAJOR:MINOR[:PERM]".into())),
        };
        out.push((file.to_path_buf(), rule));
    }
    Ok(out)
}

/// `/dev/lp0`, `lp0` or `dri/card0` → `lp0`, `dri/card0` (below /dev).
fn below_dev(text: &str) -> Result<PathBuf, String> {
    let rel = text.strip_prefix("/dev/").unwrap_or(text);
    if text.starts_with('/') && !text.starts_with("/dev/") {
        return Err("is not a device under /dev".into());
    }
    let p = PathBuf::from(rel);
    check_node_path(&p)?;
    Ok(p)
}

/// A host node under /dev (a remap target may be any of them).
fn host_dev_path(text: &str) -> Result<PathBuf, String> {
    let rel = PathBuf::from(text.strip_prefix("/dev/").unwrap_or(text));
    if (text.starts_with('/') && !text.starts_with("/dev/")) || !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return Err("is not a device under /dev".into());
    }
    Ok(rel)
}

/// Type and numbers of the host's node `/dev/REL` (read from the host's
/// /dev, never from the guest).
fn host_node(dev_root: &Path, rel: &Path) -> Result<(DevKind, u32, u32), String> {
    let path = dev_root.join(rel);
    let meta = fs::metadata(&path).map_err(|e| format!("the host has no device {}: {e}", path.display()))?;
    let kind = if meta.file_type().is_char_device() {
        DevKind::Char
    } else if meta.file_type().is_block_device() {
        DevKind::Block
    } else {
        return Err(format!("{} is not a device node", path.display()));
    };
    let rdev = meta.rdev();
    Ok((kind, libc::major(rdev), libc::minor(rdev)))
}

fn check_safe(rule: &DeviceRule, host: &HostDisks) -> Result<(), String> {
    match (rule.kind, rule.minor) {
        (DevKind::Char, Some(minor)) => {
            if let Some((_, _, what)) = NEVER.iter().find(|(ma, mi, _)| *ma == rule.major && *mi == minor) {
                return Err(format!("c {}:{minor} is {what}; no guest may have it", rule.major));
            }
        }
        (DevKind::Char, None) => {
            if let Some((_, what)) = NO_WILDCARD_CHAR_MAJORS.iter().find(|(ma, _)| *ma == rule.major) {
                return Err(format!("c {}:* covers {what}; name the one device the guest needs", rule.major));
            }
        }
        (DevKind::Block, None) => {
            return Err(format!(
                "b {}:* covers every block device of major {}, the host's disks among them; name the one device the guest needs",
                rule.major, rule.major
            ))
        }
        (DevKind::Block, Some(minor)) => {
            if let Some(why) = host.in_use((rule.major, minor)) {
                return Err(format!("b {}:{minor} {why}; a guest with raw access to it could rewrite the host's files", rule.major));
            }
        }
    }
    Ok(())
}

/// Block devices the host uses: mounted filesystems and swap, and the
/// disks and device-mapper slaves under them.
struct HostDisks {
    used: Vec<((u32, u32), String)>,
}

impl HostDisks {
    fn read() -> HostDisks {
        let mut direct: Vec<((u32, u32), String)> = Vec::new();
        for line in fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if let (Some(dev), Some(target)) = (f.get(2).and_then(|d| parse_devno(d)), f.get(4)) {
                if dev.0 != 0 {
                    direct.push((dev, format!("holds the host's filesystem mounted at {target}")));
                }
            }
        }
        for line in fs::read_to_string("/proc/swaps").unwrap_or_default().lines().skip(1) {
            if let Some(path) = line.split_whitespace().next() {
                if let Ok(m) = fs::metadata(path) {
                    if m.file_type().is_block_device() {
                        direct.push(((libc::major(m.rdev()), libc::minor(m.rdev())), format!("is the host's swap {path}")));
                    }
                }
            }
        }
        let mut used = direct.clone();
        for (dev, why) in &direct {
            let mut todo = vec![*dev];
            let mut seen = BTreeSet::new();
            while let Some(d) = todo.pop() {
                if !seen.insert(d) {
                    continue;
                }
                for under in block_parents(d) {
                    used.push((under, format!("is under a device that {why}")));
                    todo.push(under);
                }
            }
        }
        HostDisks { used }
    }

    fn in_use(&self, dev: (u32, u32)) -> Option<&str> {
        self.used.iter().find(|(d, _)| *d == dev).map(|(_, why)| why.as_str())
    }
}

fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The devices a block device sits on: the whole disk of a partition, the
/// slaves of a device-mapper, md or loop device.
fn block_parents(dev: (u32, u32)) -> Vec<(u32, u32)> {
    let sys = PathBuf::from(format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let mut out = Vec::new();
    if sys.join("partition").exists() {
        if let Ok(real) = fs::canonicalize(&sys) {
            if let Some(d) = real.parent().and_then(|p| fs::read_to_string(p.join("dev")).ok()).and_then(|t| parse_devno(t.trim())) {
                out.push(d);
            }
        }
    }
    if let Ok(slaves) = fs::read_dir(sys.join("slaves")) {
        for s in slaves.flatten() {
            if let Some(d) = fs::read_to_string(s.path().join("dev")).ok().and_then(|t| parse_devno(t.trim())) {
                out.push(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    #[test]
    fn the_list_and_vdevmap_become_rules() {
        let d = tempdir();
        fs::write(d.join("devices"), "# printer\nnull:r\nc:188:*:rw\nb:7:3:r\n").unwrap();
        fs::create_dir_all(d.join("vdevmap/zero")).unwrap();
        fs::write(d.join("vdevmap/zero/device"), "/dev/myzero\n").unwrap();
        fs::write(d.join("vdevmap/zero/target"), "/dev/zero\n").unwrap();
        fs::write(d.join("vdevmap/zero/remap"), "").unwrap();
        fs::write(d.join("vdevmap/zero/open"), "").unwrap();
        let mut refused = Vec::new();
        let err = parse_devices(&d.join("vdevmap"), &d.join("devices"), Path::new("/dev"), &mut refused).unwrap_err();
        assert!(err.to_string().contains("null") && err.to_string().contains("guest's own entries"), "{err}");
        fs::write(d.join("devices"), "c:188:*:rw\nb:7:3:r\nc:1:*\nb:8:*\n").unwrap();
        let rules = parse_devices(&d.join("vdevmap"), &d.join("devices"), Path::new("/dev"), &mut refused).unwrap();
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert_eq!(
            rules[0],
            DeviceRule { kind: DevKind::Char, major: 1, minor: Some(5), access: Access::parse("rw").unwrap(), node: Some("myzero".into()) }
        );
        assert_eq!(rules[1].v1_rule(), "c 188:* rw");
        assert_eq!(rules[2].v1_rule(), "b 7:3 r");
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].to_string().contains("memory devices"));
        assert!(refused[1].to_string().contains("the host's disks"));
    }

    #[test]
    fn host_memory_and_mounted_disks_are_refused() {
        let host = HostDisks::read();
        let mem = DeviceRule { kind: DevKind::Char, major: 1, minor: Some(1), access: Access::ALL, node: None };
        assert!(check_safe(&mem, &host).unwrap_err().contains("physical memory"));
        // The filesystem this test runs from is mounted on the host; when it
        // is on a block device, that device is refused.
        let here = fs::metadata(std::env::current_exe().unwrap()).unwrap().dev();
        let dev = (libc::major(here), libc::minor(here));
        let fs_dev = DeviceRule { kind: DevKind::Block, major: dev.0, minor: Some(dev.1), access: Access::ALL, node: None };
        if Path::new(&format!("/sys/dev/block/{}:{}", dev.0, dev.1)).exists() {
            assert!(check_safe(&fs_dev, &host).unwrap_err().contains("mounted at"), "{dev:?}");
        }
    }
}
