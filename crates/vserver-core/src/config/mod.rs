//! A guest's configuration, read from `/etc/vservers/NAME/` in util-vserver's
//! file names, each file falling back to `/etc/vservers/.defaults/`. Name
//! lists (`bcapabilities`, `ccapabilities`, `cflags`) are edits applied in
//! order: built-in default, then `.defaults`, then the guest's own file.

pub mod dlimits;
pub mod flags;
pub mod fstab;
pub mod interfaces;
pub mod parse;
pub mod sched;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::caps::{self, CapSet};
use crate::limits::rlimit::{LimitValue, Resource, RlimitSetting};
use crate::paths::{validate_guest_name, Paths};
pub use flags::{ContextCap, ContextFlag, ExtraNamespace, FlagMeaning, Personality};
pub use fstab::FstabEntry;
pub use interfaces::{Interface, NetConfig};
use parse::{name_edits, parse_single, read_lines, read_path_entry, read_single, ConfigError};
pub use sched::SchedConfig;

/// The lowest and highest xid util-vserver allows for a guest (0 is the host,
/// 1 the spectator context).
pub const XID_MIN: u32 = 2;
pub const XID_MAX: u32 = 49151;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The directory name under the config root; names the cgroup and run dir.
    pub name: String,
    pub confdir: PathBuf,
    pub xid: u32,
    /// The `name` file (a display name); defaults to the directory name.
    pub display_name: String,
    pub vdir: PathBuf,
    pub uts: Uts,
    pub bcaps: CapSet,
    pub ccaps: BTreeSet<ContextCap>,
    pub cflags: BTreeSet<ContextFlag>,
    pub rlimits: Vec<RlimitSetting>,
    pub fstab: Vec<FstabEntry>,
    pub init: InitConfig,
    pub personality: Personality,
    pub namespaces: BTreeSet<ExtraNamespace>,
    pub net: NetConfig,
    pub sched: SchedConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uts {
    pub nodename: Option<String>,
    pub domainname: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitStyle {
    /// `/sbin/init` (or `cmd.start`) runs as the guest's pid 1.
    Plain,
    /// A small built-in pid 1 reaps children and runs `/etc/init.d/rc RUNLEVEL`.
    Sysv,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    pub mark: Option<String>,
    pub style: InitStyle,
    pub cmd_start: Option<Vec<String>>,
    pub cmd_stop: Option<Vec<String>>,
    pub runlevel: String,
}

impl Guest {
    /// The guest's extra namespaces, with the time namespace implied by
    /// VIRT_UPTIME and the network namespace by HIDE_NETIF.
    pub fn wants_namespace(&self, ns: ExtraNamespace) -> bool {
        self.namespaces.contains(&ns)
            || (ns == ExtraNamespace::Time && self.cflags.contains(&ContextFlag::VirtUptime))
            || (ns == ExtraNamespace::Net && self.cflags.contains(&ContextFlag::HideNetif))
    }

    pub fn hostname(&self) -> &str {
        self.uts.nodename.as_deref().unwrap_or(&self.name)
    }
}

/// Looks a file up in the guest's directory, then in `.defaults`.
struct Lookup<'a> {
    guest: &'a Path,
    defaults: PathBuf,
}

impl Lookup<'_> {
    fn file(&self, rel: &str) -> PathBuf {
        let own = self.guest.join(rel);
        if own.symlink_metadata().is_ok() {
            return own;
        }
        let def = self.defaults.join(rel);
        if def.symlink_metadata().is_ok() {
            def
        } else {
            own
        }
    }

    /// Both layers of an edit list, defaults first.
    fn layers(&self, rel: &str) -> [PathBuf; 2] {
        [self.defaults.join(rel), self.guest.join(rel)]
    }
}

/// Loads and validates one guest's configuration.
pub fn load_guest(paths: &Paths, name: &str) -> Result<Guest, ConfigError> {
    let confdir = paths.guest_confdir(name);
    validate_guest_name(name).map_err(|m| ConfigError::new(&confdir, 0, m))?;
    if !confdir.is_dir() {
        return Err(ConfigError::new(
            &confdir,
            0,
            format!("no such guest {name:?} (its configuration directory does not exist)"),
        ));
    }
    let at = Lookup { guest: &confdir, defaults: paths.defaults_dir() };

    let context_file = at.file("context");
    let xid = parse_single(&context_file, parse_xid)?.ok_or_else(|| {
        ConfigError::new(&context_file, 0, "is missing; every guest needs an xid (vserver NAME build --context XID)")
    })?;
    let display_name = read_single(&confdir.join("name"))?.map(|l| l.text).unwrap_or_else(|| name.to_string());
    let vdir = read_path_entry(&confdir.join("vdir"))?.unwrap_or_else(|| paths.default_vdir(name));
    let personality = parse_single(&at.file("personality"), Personality::parse)?.unwrap_or(Personality::Linux);

    Ok(Guest {
        name: name.to_string(),
        xid,
        display_name,
        vdir,
        uts: load_uts(&at, personality)?,
        bcaps: load_edits(&at, "bcapabilities", caps::default_bounding_set(), caps::parse_capability)?,
        ccaps: load_edits(&at, "ccapabilities", BTreeSet::new(), flags::parse_ccap)?,
        cflags: load_cflags(&at)?,
        rlimits: load_rlimits(&at)?,
        fstab: load_fstab(&at)?,
        init: load_init(&at)?,
        personality,
        namespaces: load_list(&at.file("namespaces"), ExtraNamespace::parse)?,
        net: interfaces::parse_interfaces(&confdir.join("interfaces"))?,
        sched: sched::parse_sched(&at.file("sched"), &at.file("cpuset"))?,
        confdir,
    })
}

pub fn parse_xid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(x) if (XID_MIN..=XID_MAX).contains(&x) => Ok(x),
        _ => Err(format!("is not a context id ({XID_MIN}-{XID_MAX})")),
    }
}

fn load_uts(at: &Lookup, personality: Personality) -> Result<Uts, ConfigError> {
    let hostname = |s: &str| -> Result<String, &'static str> {
        if s.len() <= 64 && !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
            Ok(s.to_string())
        } else {
            Err("is not a host or domain name (1-64 characters of A-Z a-z 0-9 - . _)")
        }
    };
    let machine_file = at.guest.join("uts/machine");
    if let Some(line) = read_single(&machine_file)? {
        let wanted32 = matches!(line.text.as_str(), "i386" | "i486" | "i586" | "i686");
        let host = nix::sys::utsname::uname().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default();
        let consistent = (wanted32 && personality == Personality::Linux32) || line.text == host;
        if !consistent {
            return Err(ConfigError::bad_value(
                &machine_file,
                line.number,
                &line.text,
                "cannot be set on a stock kernel; uname -m follows `personality` (linux32 gives i686)",
            ));
        }
    }
    Ok(Uts {
        nodename: parse_single(&at.guest.join("uts/nodename"), hostname)?,
        domainname: parse_single(&at.guest.join("uts/domainname"), hostname)?,
    })
}

/// Applies `NAME` / `~NAME` / `!NAME` edits from `.defaults` and the guest.
fn load_edits<T, S: EditSet<T>>(
    at: &Lookup,
    rel: &str,
    mut set: S,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<S, ConfigError> {
    for file in at.layers(rel) {
        let Some(lines) = read_lines(&file)? else { continue };
        for (line, name, add) in name_edits(&lines) {
            let item = parse(name).map_err(|e| ConfigError::bad_value(&file, line.number, name, e))?;
            if add {
                set.add(item);
            } else {
                set.del(&item);
            }
        }
    }
    Ok(set)
}

/// The sets name lists edit: ordered sets, and the capability set (the caps
/// crate's `Capability` is hashable but not ordered).
trait EditSet<T> {
    fn add(&mut self, item: T);
    fn del(&mut self, item: &T);
}

impl<T: Ord> EditSet<T> for BTreeSet<T> {
    fn add(&mut self, item: T) {
        self.insert(item);
    }
    fn del(&mut self, item: &T) {
        self.remove(item);
    }
}

impl<T: Eq + std::hash::Hash> EditSet<T> for std::collections::HashSet<T> {
    fn add(&mut self, item: T) {
        self.insert(item);
    }
    fn del(&mut self, item: &T) {
        self.remove(item);
    }
}

fn load_cflags(at: &Lookup) -> Result<BTreeSet<ContextFlag>, ConfigError> {
    // Always-on util-vserver flags parse to None and are dropped afterwards.
    let parse = |n: &str| {
        flags::parse_flag(n).map(|m| match m {
            FlagMeaning::Flag(f) => Some(f),
            FlagMeaning::AlwaysOn => None,
        })
    };
    let mut out = BTreeSet::new();
    // `flags` is util-vserver's older name; both are read when present.
    for rel in ["flags", "cflags"] {
        out.extend(load_edits(at, rel, BTreeSet::new(), parse)?.into_iter().flatten());
    }
    Ok(out)
}

fn load_list<T: Ord>(file: &Path, parse: impl Fn(&str) -> Result<T, String>) -> Result<BTreeSet<T>, ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok(BTreeSet::new()) };
    lines
        .iter()
        .map(|l| parse(&l.text).map_err(|e| ConfigError::bad_value(file, l.number, &l.text, e)))
        .collect()
}

/// `rlimits/<res>` sets hard and soft, `<res>.hard`, `.soft`, `.min` one each.
/// Files come from `.defaults/rlimits` first, then the guest's own.
fn load_rlimits(at: &Lookup) -> Result<Vec<RlimitSetting>, ConfigError> {
    let mut by_res: BTreeMap<Resource, RlimitSetting> = BTreeMap::new();
    for dir in at.layers("rlimits") {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let fname = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if fname.starts_with('.') || fname.ends_with('~') {
                continue;
            }
            let (res_name, kind) = match fname.rsplit_once('.') {
                Some((r, k @ ("hard" | "soft" | "min"))) => (r.to_string(), k),
                _ => (fname.clone(), "both"),
            };
            let res = Resource::parse(&res_name).map_err(|e| ConfigError::new(&file, 0, e))?;
            let value = parse_single(&file, LimitValue::parse)?
                .ok_or_else(|| ConfigError::new(&file, 0, "is missing"))?;
            let s = by_res.entry(res).or_insert(RlimitSetting { resource: res, soft: None, hard: None, min: None });
            match kind {
                "hard" => s.hard = Some(value),
                "soft" => s.soft = Some(value),
                "min" => s.min = Some(value),
                _ => {
                    s.hard = Some(value);
                    s.soft = s.soft.or(Some(value));
                }
            }
        }
    }
    // rss mixes units (pages, or bytes with a suffix): `limits` compares it in bytes.
    for s in by_res.values().filter(|s| s.resource != Resource::Rss) {
        if let (Some(soft), Some(hard)) = (s.soft.and_then(|v| v.amount()), s.hard) {
            if hard.amount().is_some_and(|h| soft > h) {
                let file = at.guest.join("rlimits").join(format!("{}.soft", s.resource));
                return Err(ConfigError::new(&file, 0, format!("soft limit {soft} is above the hard limit {hard}")));
            }
        }
    }
    Ok(by_res.into_values().collect())
}

fn load_fstab(at: &Lookup) -> Result<Vec<FstabEntry>, ConfigError> {
    let file = at.file("fstab");
    match read_lines(&file)? {
        Some(lines) => fstab::parse_fstab(&file, &lines),
        None => Ok(Vec::new()),
    }
}

fn load_init(at: &Lookup) -> Result<InitConfig, ConfigError> {
    let style = parse_single(&at.file("apps/init/style"), |s| match s {
        "plain" => Ok(InitStyle::Plain),
        "sysv" => Ok(InitStyle::Sysv),
        _ => Err("is not an init style (plain or sysv)"),
    })?
    .unwrap_or(InitStyle::Sysv);
    let argv = |rel: &str| -> Result<Option<Vec<String>>, ConfigError> {
        let file = at.file(rel);
        Ok(read_lines(&file)?.map(|lines| lines.into_iter().map(|l| l.text).collect::<Vec<_>>()))
    };
    let runlevel = parse_single(&at.file("apps/init/runlevel"), |s| {
        if s.len() == 1 && s.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(s.to_string())
        } else {
            Err("is not a runlevel (a single character such as 3)")
        }
    })?
    .unwrap_or_else(|| "3".to_string());
    Ok(InitConfig {
        mark: read_single(&at.guest.join("apps/init/mark"))?.map(|l| l.text),
        style,
        cmd_start: argv("apps/init/cmd.start")?,
        cmd_stop: argv("apps/init/cmd.stop")?,
        runlevel,
    })
}

/// Every guest under the config root (directories not starting with a dot).
pub fn list_guests(paths: &Paths) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(&paths.confdir)
        .map_err(|e| ConfigError::new(&paths.confdir, 0, format!("cannot list guests: {e}")))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && validate_guest_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests;
