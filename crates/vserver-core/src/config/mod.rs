//! A guest's configuration, read from `/etc/vservers/NAME/` in util-vserver's
//! file names, each file falling back to `/etc/vservers/.defaults/`. Name
//! lists (`bcapabilities`, `ccapabilities`, `cflags`) are edits applied in
//! order: built-in default, then `.defaults`, then the guest's own file.

pub mod cgroup_files;
mod compat;
pub mod device_rule;
pub mod devices;
pub mod dlimits;
pub mod flags;
pub mod fstab;
pub mod idmap;
pub mod init;
pub mod interfaces;
pub mod known;
pub use crate::conffile as parse;
pub mod process;
pub mod rlimit;
pub mod sched;
pub mod shell;
pub mod sysctl;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use self::device_rule::{DeviceRule, GuestDevices};
use self::rlimit::{LimitValue, Resource, RlimitSetting};
use crate::caps::{self, CapSet};
use crate::paths::{validate_guest_name, Paths};
pub use cgroup_files::CgroupSetting;
pub use compat::enter_shell_argv;
use compat::{check_compat, load_net_spaces, load_personality, load_sched, load_shell, load_uts};
pub use flags::{ContextCap, ContextFlag, ExtraNamespace, FlagMeaning, NetFlag, Personality};
pub use fstab::FstabEntry;
pub use init::KillStep;
pub use interfaces::{Interface, NetConfig};
use parse::{name_edits, parse_single, read_lines, read_path_entry, read_single, ConfigError};
pub use process::{IoPriority, ProcessSettings};
pub use sched::SchedConfig;
pub use sysctl::Sysctl;

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
    /// `disabled`: `start` refuses the guest, `--all-marked` skips it.
    pub disabled: bool,
    /// Personality flags (the lines of `personality` after the first).
    pub personality_flags: libc::c_ulong,
    /// `nice`, `ionice/`, `badness`: inherited by every guest process.
    pub process: ProcessSettings,
    /// `sysctl/`: settings of the guest's own namespaces.
    pub sysctls: Vec<Sysctl>,
    /// `shell` (or `.defaults/shell`): the shell of `enter`, as argv.
    pub shell: Option<Vec<String>>,
    /// Devices added to the base list (`apps/vdevmap/`, `devices`).
    pub devices: Vec<DeviceRule>,
    /// `cgroup/` (or `.defaults/cgroup/`): control files for `vserver/NAME`.
    pub cgroup_settings: Vec<CgroupSetting>,
    /// What `start` refuses and what it warns about.
    pub findings: Findings,
}

/// Why `start` refuses a guest before anything is set up.
#[derive(Debug, thiserror::Error)]
pub enum NotStartable {
    #[error("guest {guest:?} is disabled ({} exists); remove that file to start it", file.display())]
    Disabled { guest: String, file: PathBuf },
    /// Each refused setting names its file.
    #[error("guest {guest:?} cannot start on this kernel:{}", refused_list(refused))]
    Refused { guest: String, refused: Vec<ConfigError> },
}

/// One refused setting on the same line, more of them one per line.
fn refused_list(refused: &[ConfigError]) -> String {
    match refused {
        [one] => format!(" {one}"),
        many => many.iter().map(|e| format!("\n  {e}")).collect(),
    }
}

/// Who a guest is and how its init runs: all that `vserver stop` and the
/// scriptlets need. `stop` reads only these ([`load_basics`]), so a setting
/// broken since the start (a typo in `rlimits/`) cannot keep a running guest
/// from being stopped, and the stop does not pay for reading the whole tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestBasics {
    pub name: String,
    pub confdir: PathBuf,
    pub xid: u32,
    pub vdir: PathBuf,
    pub init: InitConfig,
}

impl Guest {
    pub fn basics(&self) -> GuestBasics {
        GuestBasics {
            name: self.name.clone(),
            confdir: self.confdir.clone(),
            xid: self.xid,
            vdir: self.vdir.clone(),
            init: self.init.clone(),
        }
    }
}

/// Settings that loaded but that `start` must refuse, and warnings to
/// print; each names its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub refused: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
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
    /// The guest's own systemd is pid 1, set up as systemd's container
    /// interface asks (context/setup.rs); `start` waits for its READY=1.
    Systemd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitConfig {
    /// The first line of `apps/init/mark`.
    pub mark: Option<String>,
    /// Every line of `apps/init/mark` (util-vserver matches any of them).
    pub marks: Vec<String>,
    pub style: InitStyle,
    pub cmd_start: Option<Vec<String>>,
    pub cmd_stop: Option<Vec<String>>,
    /// `runlevel.start`, else `runlevel`, else 3.
    pub runlevel: String,
    /// `runlevel.stop`: the runlevel style sysv stops with (default 0).
    pub runlevel_stop: Option<String>,
    /// `environment`: the init's environment, added to the clean one.
    pub environment: Option<Vec<(String, String)>>,
    /// `killseq`: what stop sends after the stop command.
    pub killseq: Option<Vec<KillStep>>,
    /// `depends`: guests to start before this one.
    pub depends: Vec<String>,
    /// `tty`: where `--all-marked` sends this guest's start/stop output.
    pub tty: Option<PathBuf>,
    /// `cmd.prepare`: a host command run in the guest root before pre-start.
    pub cmd_prepare: Option<Vec<String>>,
    /// `cmd.start-sync` (only with `sync`): a host command after start.
    pub cmd_start_sync: Option<Vec<String>>,
    /// `cmd.stop-sync`: a host command after the stop command.
    pub cmd_stop_sync: Option<Vec<String>>,
    /// `apps/init/mtab` or `.defaults/init/mtab`: the initial /etc/mtab.
    pub mtab: Option<PathBuf>,
    /// `apps/init/ready-timeout`: seconds `start` waits for a systemd
    /// guest's READY=1 (default context::DEFAULT_READY_TIMEOUT).
    pub ready_timeout: Option<u64>,
}

impl InitConfig {
    /// The environment util-vserver gives the start command on top of a
    /// clean one: `apps/init/environment`, and for style sysv
    /// `PREVLEVEL=N RUNLEVEL=<start runlevel>` (Debian's rc scripts read them).
    pub fn start_environment(&self) -> Vec<(String, String)> {
        let mut env = self.environment.clone().unwrap_or_default();
        if self.style == InitStyle::Sysv {
            env.push(("PREVLEVEL".into(), "N".into()));
            env.push(("RUNLEVEL".into(), self.runlevel.clone()));
        }
        env
    }

    /// The same for the stop command: `PREVLEVEL=<start> RUNLEVEL=<stop>`.
    pub fn stop_environment(&self) -> Vec<(String, String)> {
        let mut env = self.environment.clone().unwrap_or_default();
        if self.style == InitStyle::Sysv {
            env.push(("PREVLEVEL".into(), self.runlevel.clone()));
            env.push(("RUNLEVEL".into(), self.runlevel_stop.clone().unwrap_or_else(|| "0".into())));
        }
        env
    }
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

    /// The value for personality(2): the domain and its flags.
    pub fn personality_raw(&self) -> libc::c_ulong {
        self.personality.raw() | self.personality_flags
    }

    /// The guest's devices: the base list and what its configuration adds.
    pub fn device_list(&self) -> GuestDevices {
        GuestDevices::with_extra(&self.devices)
    }

    /// Does `apps/init/mark` say MARK? `MARK` may be a comma-separated list;
    /// `!MARK` or `~MARK` selects guests without that mark (util-vserver's
    /// `--mark`).
    pub fn has_mark(&self, spec: &str) -> bool {
        let mut any = false;
        let mut inverted = false;
        for m in spec.split(',').filter(|m| !m.is_empty()) {
            let plain = m.trim_start_matches(['!', '~']);
            inverted |= plain.len() != m.len();
            any |= self.init.marks.iter().any(|own| own == plain);
        }
        any != inverted
    }

    /// Everything `start` refuses, as one error naming each file and why.
    pub fn check_startable(&self) -> Result<(), NotStartable> {
        if self.disabled {
            return Err(NotStartable::Disabled { guest: self.name.clone(), file: self.confdir.join("disabled") });
        }
        if self.findings.refused.is_empty() {
            return Ok(());
        }
        Err(NotStartable::Refused { guest: self.name.clone(), refused: self.findings.refused.clone() })
    }
}

/// Looks a file up in the guest's directory, then in `.defaults`.
pub(crate) struct Lookup<'a> {
    pub(crate) guest: &'a Path,
    pub(crate) defaults: PathBuf,
}

impl Lookup<'_> {
    pub(crate) fn file(&self, rel: &str) -> PathBuf {
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

/// Loads and validates one guest's configuration. A bad value is an error;
/// a setting `start` cannot give goes to `findings.refused`, so that stop,
/// status and exec still work on a guest whose configuration changed.
pub fn load_guest(paths: &Paths, name: &str) -> Result<Guest, ConfigError> {
    let confdir = existing_confdir(paths, name)?;
    let at = Lookup { guest: &confdir, defaults: paths.defaults_dir() };
    let mut findings = Findings::default();

    let xid = load_xid(&at)?;
    let display_name = read_single(&confdir.join("name"))?.map(|l| l.text).unwrap_or_else(|| name.to_string());
    let vdir = load_vdir(paths, name, &confdir)?;
    // In the order the fields were read before util-vserver's files were
    // added, so the first error reported for a broken tree stays the same.
    let (personality, personality_flags) = load_personality(&at.file("personality"))?;
    let uts = load_uts(&at, personality, &mut findings)?;
    let bcaps = load_edits(&at, "bcapabilities", caps::default_bounding_set(), caps::parse_capability)?;
    let mut ccaps = load_edits(&at, "ccapabilities", BTreeSet::new(), flags::parse_ccap)?;
    ccaps = load_edits(&at, "ncapabilities", ccaps, flags::parse_ncap)?;
    let cflags = load_cflags(&at)?;
    let mut rlimits = load_rlimits(&at)?;
    process::merge_under(&mut rlimits, process::parse_ulimits(&at.file("ulimits"))?);
    let fstab = load_fstab(&at)?;
    let init = load_init(&at)?;
    let mut namespaces = load_list(&at.file("namespaces"), ExtraNamespace::parse)?;
    if load_net_spaces(&at, &cflags, &mut findings)? {
        namespaces.insert(ExtraNamespace::Net);
    }
    let own_netns = namespaces.contains(&ExtraNamespace::Net) || cflags.contains(&ContextFlag::HideNetif);
    let mut net_notes = interfaces::InterfaceNotes::default();
    let net =
        interfaces::parse_interfaces_noting(&confdir.join("interfaces"), Some(&at.defaults.join("interfaces/vlandev")), &mut net_notes)?;
    findings.refused.append(&mut net_notes.refused);
    findings.warnings.append(&mut net_notes.warnings);
    let sched = load_sched(&at)?;

    check_compat(&at, xid, own_netns, &mut findings)?;
    let sysctls = sysctl::parse_sysctls(&at.file("sysctl"), own_netns, &mut findings.refused)?;
    let devices = devices::parse_devices(&at.file("apps/vdevmap"), &at.file("devices"), Path::new("/dev"), &mut findings.refused)?;
    let cgroup_settings = cgroup_files::parse_cgroup_dir(&confdir, &at.defaults, name, &mut findings.refused)?;
    for (file, why) in known::refused_files(&confdir, &at.defaults) {
        findings.refused.push(ConfigError::new(&file, 0, why));
    }
    for (file, why) in known::warned_files(&confdir, &at.defaults) {
        findings.warnings.push(ConfigError::new(&file, 0, format!("has no effect here: {why}")));
    }

    Ok(Guest {
        name: name.to_string(),
        xid,
        display_name,
        vdir,
        uts,
        bcaps,
        ccaps,
        cflags,
        rlimits,
        fstab,
        init,
        personality,
        namespaces,
        net,
        sched,
        disabled: confdir.join("disabled").exists(),
        personality_flags,
        process: process::parse_process_settings(&at.file("nice"), &at.file("ionice"), &at.file("badness"))?,
        sysctls,
        shell: load_shell(&at)?,
        devices,
        cgroup_settings,
        findings,
        confdir,
    })
}

/// [`GuestBasics`] alone, checked as [`load_guest`] checks them.
pub fn load_basics(paths: &Paths, name: &str) -> Result<GuestBasics, ConfigError> {
    let confdir = existing_confdir(paths, name)?;
    let at = Lookup { guest: &confdir, defaults: paths.defaults_dir() };
    let xid = load_xid(&at)?;
    let vdir = load_vdir(paths, name, &confdir)?;
    let init = load_init(&at)?;
    Ok(GuestBasics { name: name.to_string(), xid, vdir, init, confdir })
}

fn existing_confdir(paths: &Paths, name: &str) -> Result<PathBuf, ConfigError> {
    let confdir = paths.guest_confdir(name);
    validate_guest_name(name).map_err(|m| ConfigError::new(&confdir, 0, m))?;
    if !confdir.is_dir() {
        return Err(ConfigError::new(&confdir, 0, format!("no such guest {name:?} (its configuration directory does not exist)")));
    }
    Ok(confdir)
}

fn load_xid(at: &Lookup) -> Result<u32, ConfigError> {
    let context_file = at.file("context");
    parse_single(&context_file, parse_xid)?
        .ok_or_else(|| ConfigError::new(&context_file, 0, "is missing; every guest needs an xid (vserver NAME build --context XID)"))
}

fn load_vdir(paths: &Paths, name: &str, confdir: &Path) -> Result<PathBuf, ConfigError> {
    Ok(read_path_entry(&confdir.join("vdir"))?.unwrap_or_else(|| paths.default_vdir(name)))
}

pub fn parse_xid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(x) if (XID_MIN..=XID_MAX).contains(&x) => Ok(x),
        _ => Err(format!("is not a context id ({XID_MIN}-{XID_MAX})")),
    }
}

/// Applies `NAME` / `~NAME` / `!NAME` edits from `.defaults` and the guest.
pub(crate) fn load_edits<T, S: EditSet<T>>(
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
pub(crate) trait EditSet<T> {
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
    lines.iter().map(|l| parse(&l.text).map_err(|e| ConfigError::bad_value(file, l.number, &l.text, e))).collect()
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
            let value = parse_single(&file, LimitValue::parse)?.ok_or_else(|| ConfigError::new(&file, 0, "is missing"))?;
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

/// `fstab` (else `.defaults/fstab`), then util-vserver's obsolete
/// `fstab.local`, then `fstab.remote`: the guest's network is up before
/// any of them is mounted, and the mounts are made inside its network
/// context.
fn load_fstab(at: &Lookup) -> Result<Vec<FstabEntry>, ConfigError> {
    let mut out = Vec::new();
    for file in [at.file("fstab"), at.guest.join("fstab.local"), at.file("fstab.remote")] {
        if let Some(lines) = read_lines(&file)? {
            out.extend(fstab::parse_fstab(&file, &lines)?);
        }
    }
    Ok(out)
}

fn load_init(at: &Lookup) -> Result<InitConfig, ConfigError> {
    let style = parse_single(&at.file("apps/init/style"), |s| match s {
        "plain" => Ok(InitStyle::Plain),
        "sysv" => Ok(InitStyle::Sysv),
        "systemd" => Ok(InitStyle::Systemd),
        _ => Err("is not an init style (plain, sysv or systemd)"),
    })?
    .unwrap_or(InitStyle::Sysv);
    let argv = |rel: &str| -> Result<Option<Vec<String>>, ConfigError> {
        let file = at.file(rel);
        Ok(read_lines(&file)?.map(|lines| lines.into_iter().map(|l| l.text).collect::<Vec<_>>()))
    };
    let runlevel_of = |rel: &str| {
        parse_single(&at.file(rel), |s| {
            if s.len() == 1 && s.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(s.to_string())
            } else {
                Err("is not a runlevel (a single character such as 3)")
            }
        })
    };
    let runlevel = runlevel_of("apps/init/runlevel.start")?.or(runlevel_of("apps/init/runlevel")?).unwrap_or_else(|| "3".to_string());
    let marks = init::parse_marks(&at.file("apps/init/mark"))?;
    let sync = at.file("apps/init/sync").exists();
    Ok(InitConfig {
        mark: marks.first().cloned(),
        marks,
        style,
        cmd_start: argv("apps/init/cmd.start")?,
        cmd_stop: argv("apps/init/cmd.stop")?,
        runlevel,
        runlevel_stop: runlevel_of("apps/init/runlevel.stop")?,
        environment: init::parse_environment(&at.file("apps/init/environment"))?,
        killseq: init::parse_killseq(&at.file("apps/init/killseq"))?,
        depends: init::parse_depends(&at.file("apps/init/depends"))?,
        tty: init::existing(at.file("apps/init/tty")),
        cmd_prepare: init::parse_argv(&at.file("apps/init/cmd.prepare"))?,
        cmd_start_sync: if sync { init::parse_argv(&at.file("apps/init/cmd.start-sync"))? } else { None },
        cmd_stop_sync: init::parse_argv(&at.file("apps/init/cmd.stop-sync"))?,
        mtab: init::existing(at.file("apps/init/mtab")).or_else(|| init::existing(at.defaults.join("init/mtab"))),
        ready_timeout: parse_single(&at.file("apps/init/ready-timeout"), |s| match s.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("is not a number of seconds (1 or more)"),
        })?,
    })
}

/// Every guest under the config root (directories not starting with a dot).
pub fn list_guests(paths: &Paths) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(&paths.confdir).map_err(|e| ConfigError::new(&paths.confdir, 0, format!("cannot list guests: {e}")))?;
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

/// Guests for other modules' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::fs;

    use super::{load_guest, Guest};
    use crate::paths::Paths;

    /// Guest "g1" with xid 42 and the given files in its configuration
    /// directory, in a fresh temporary tree.
    pub(crate) fn guest_with_files(files: &[(&str, &str)]) -> Guest {
        let root = crate::conffile::tests::tempdir();
        let paths = Paths { confdir: root.join("etc"), vdirbase: root.join("v"), rundir: root.join("run"), cgroup_root: root.join("cg") };
        let dir = paths.guest_confdir("g1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("context"), "42\n").unwrap();
        for (name, content) in files {
            let file = dir.join(name);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, content).unwrap();
        }
        load_guest(&paths, "g1").unwrap()
    }
}
