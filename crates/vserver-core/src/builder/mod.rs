//! `vserver NAME build -m METHOD`: a guest's configuration directory and root.
//!
//! The steps, in order: check the options and the name; with `--force` move
//! an existing guest aside (util-vserver's `PATH.~UNIXTIME~`); pick the xid;
//! write the configuration; make the root with the method; make it this
//! guest's own (personalise.rs); shift its owners for a user namespace; set
//! the init style; raise the barrier on the guest base. A build that fails
//! half-way removes what it created and puts a moved guest back.

mod busybox;
mod clone;
mod copy;
mod debootstrap;
mod delete;
mod error;
mod freeze;
pub mod guestfs;
pub mod interface;
pub mod personalise;
mod resolv;
mod shift;
mod sshkeys;
mod template;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use copy::CopyError;
pub use debootstrap::{host_mirror, CACHE_ENV as DEBOOTSTRAP_CACHE_ENV};
pub use delete::{delete_guest, remove_contents, remove_tree, DeleteReport};
pub use error::BuildError;
pub use interface::{Device, InterfaceSpec, NetDefaults};
pub use template::{ArchiveError, MemberError};

use crate::conffile::ConfigError;
use crate::config::{self, parse_xid, XID_MAX};
use crate::paths::{validate_guest_name, Paths};
use crate::runstate;
use error::Doing;
use guestfs::GuestTree;
use personalise::{Identity, Plan};

/// Bad usage of `build` (exit code 2), as opposed to a failed build; a
/// [`BuildError::Usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// util-vserver's `--initstyle`, as far as it is built here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitChoice {
    /// The guest's own systemd as pid 1.
    Systemd,
    /// The built-in init running the guest's rc scripts.
    Sysv,
    /// The guest's own /sbin/init (busybox init, sysvinit) as pid 1.
    Plain,
}

impl InitChoice {
    pub fn name(self) -> &'static str {
        match self {
            InitChoice::Systemd => "systemd",
            InitChoice::Sysv => "sysv",
            InitChoice::Plain => "plain",
        }
    }
}

/// The build methods, by name.
pub const METHODS: &[&str] = &["skeleton", "busybox", "debootstrap", "clone", "template"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The configuration and an empty root.
    Skeleton,
    /// A minimal working guest made from a static busybox.
    Busybox,
    /// A Debian guest: util-vserver's `-d SUITE [-m MIRROR] [-s SCRIPT] [-- OPTIONS]`.
    Debootstrap(debootstrap::Args),
    /// A copy of another guest (name or root directory).
    Clone(clone::Args),
    /// A guest from root-filesystem tarballs.
    Template(template::Args),
}

impl Method {
    /// The method named `name` with its arguments (those after `--`).
    pub fn parse(name: &str, args: &[String]) -> Result<Method, UsageError> {
        Ok(match name {
            "skeleton" | "busybox" if !args.is_empty() => {
                return Err(UsageError(format!("build -m {name} takes no method arguments (got {})", args.join(" "))))
            }
            "skeleton" => Method::Skeleton,
            "busybox" => Method::Busybox,
            "debootstrap" => Method::Debootstrap(debootstrap::Args::parse(args)?),
            "clone" => Method::Clone(clone::Args::parse(args)?),
            "template" => Method::Template(template::Args::parse(args)?),
            other => return Err(UsageError(format!("unknown build method {other:?} (one of: {})", METHODS.join(", ")))),
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub method: Method,
    pub context: Option<u32>,
    pub hostname: Option<String>,
    pub interfaces: Vec<InterfaceSpec>,
    pub net: NetDefaults,
    /// `--netmask` as given (written to `interfaces/mask` as util-vserver does).
    pub netmask: Option<String>,
    /// The base the guest root goes into instead of the vdirbase.
    pub rootdir: Option<PathBuf>,
    /// Context flags for `cflags`.
    pub flags: Vec<String>,
    pub init: Option<InitChoice>,
    pub force: bool,
}

/// What the admin should know about a finished build.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub xid: u32,
    pub notes: Vec<String>,
    /// (old path, where it was moved) by `--force`.
    pub moved: Vec<(PathBuf, PathBuf)>,
}

pub fn build_guest(paths: &Paths, name: &str, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    validate_guest_name(name).map_err(UsageError)?;
    for f in &opts.flags {
        config::flags::parse_flag(f).map_err(|e| UsageError(format!("--flags {f}: {e}")))?;
    }
    for iface in &opts.interfaces {
        iface.resolve(&opts.net).map_err(|e| UsageError(format!("--interface {}: {e}", iface.ip)))?;
    }
    let confdir = paths.guest_confdir(name);
    let base = opts.rootdir.clone().unwrap_or_else(|| paths.vdirbase.clone());
    if opts.rootdir.is_some() && !base.is_dir() {
        return Err(BuildError::NoRootdir { dir: base });
    }
    let vdir = base.join(name);
    let mut report = BuildReport::default();
    let mut undo = Undo::default();
    make_room(paths, name, &confdir, &vdir, opts.force, &mut undo, &mut report)?;
    let (xid, from_counter) = pick_xid(paths, opts.context, &mut report)?;
    report.xid = xid;
    undo.created.push(confdir.clone());
    write_config(&confdir, name, xid, &vdir, opts)?;
    if fs::symlink_metadata(&vdir).is_ok() {
        undo.emptied = Some(vdir.clone()); // an empty root the admin made (a mount point, perhaps)
    } else {
        undo.created.push(vdir.clone());
        fs::create_dir_all(&vdir).doing(|| format!("creating {}", vdir.display()))?;
    }
    fs::set_permissions(&vdir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let style = build_root(paths, name, opts, &confdir, &vdir, &mut report)?;
    if wants_user_namespace(paths, name)? {
        shift::shift_ids(&vdir, crate::config::idmap::base(xid))
            .doing(|| format!("shifting {} into the user namespace's ids", vdir.display()))?;
    }
    if let Some(style) = style {
        write_file(&confdir, "apps/init/style", &format!("{}\n", style.name()))?;
    }
    if from_counter {
        write_atomically(&paths.defaults_dir().join("context.next"), &format!("{}\n", xid + 1))?;
    }
    // util-vserver's barrier: no host user may reach into a guest root, where
    // guest root can plant setuid programs. Root passes regardless.
    fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o000))?;
    undo.done = true;
    Ok(report)
}

/// Runs the method and makes the tree this guest's own; returns the init
/// style to record (None: leave what the configuration has).
fn build_root(
    paths: &Paths,
    name: &str,
    opts: &BuildOptions,
    confdir: &Path,
    vdir: &Path,
    report: &mut BuildReport,
) -> Result<Option<InitChoice>, BuildError> {
    let mut plan = PlanKind { machine_id: false, new_machine: false, guest_fit: false };
    let style = match &opts.method {
        Method::Skeleton => {
            skeleton_root(vdir)?;
            opts.init
        }
        Method::Busybox => {
            busybox::build(vdir)?;
            Some(opts.init.unwrap_or(InitChoice::Plain))
        }
        Method::Debootstrap(args) => {
            let init = opts.init.unwrap_or(InitChoice::Systemd);
            debootstrap::build(paths, vdir, args, init)?;
            plan = PlanKind { machine_id: true, new_machine: false, guest_fit: true };
            Some(init)
        }
        Method::Clone(args) => {
            let copied = clone::build(paths, name, args, confdir, vdir)?;
            if copied.devices_skipped > 0 {
                report.notes.push(format!("{} device nodes not copied (a guest's /dev is made at every start)", copied.devices_skipped));
            }
            for m in &copied.mounts_skipped {
                report.notes.push(format!("{m}: a mount point (or another filesystem) in the source; not copied"));
            }
            plan = PlanKind { machine_id: true, new_machine: true, guest_fit: false };
            match opts.init {
                Some(i) => Some(i),
                // A tree that is no configured guest's brings no apps/init/style:
                // its init decides, as for a template.
                None if args.source.starts_with('/') && !confdir.join("apps/init/style").exists() => {
                    Some(detect_init(&GuestTree::open(vdir)?)?)
                }
                None => None,
            }
        }
        Method::Template(args) => {
            let unpacked = template::build(vdir, args)?;
            if unpacked.devices_skipped > 0 {
                report.notes.push(format!(
                    "{} device nodes in the archive not made (a guest's /dev is made at every start)",
                    unpacked.devices_skipped
                ));
            }
            if unpacked.xattrs_skipped > 0 {
                report
                    .notes
                    .push(format!("{} extended attributes other than user.* and security.capability left out", unpacked.xattrs_skipped));
            }
            let tree = GuestTree::open(vdir)?;
            for d in personalise::STALE_DIRS {
                tree.empty_dir(Path::new(d))?;
            }
            plan = PlanKind { machine_id: true, new_machine: true, guest_fit: true };
            Some(match opts.init {
                Some(i) => i,
                None => detect_init(&tree)?,
            })
        }
    };
    let tree = GuestTree::open(vdir)?;
    let identity = Identity {
        hostname: opts.hostname.clone().unwrap_or_else(|| name.to_string()),
        addresses: opts.interfaces.iter().map(|i| i.ip).collect(),
    };
    let machine_id = plan.machine_id && (matches!(opts.method, Method::Debootstrap(_)) || is_distribution_tree(&tree)?);
    let defaults = paths.defaults_dir();
    let p = Plan { identity: &identity, defaults: &defaults, machine_id, new_machine: plan.new_machine, guest_fit: plan.guest_fit };
    personalise::personalise(&tree, &p, &mut report.notes)?;
    Ok(style)
}

struct PlanKind {
    machine_id: bool,
    new_machine: bool,
    guest_fit: bool,
}

/// A tree with a machine id or a systemd (busybox guests have neither).
fn is_distribution_tree(tree: &GuestTree) -> io::Result<bool> {
    Ok(tree.stat(Path::new("etc/machine-id"))?.is_some()
        || tree.stat(Path::new("lib/systemd/systemd"))?.is_some()
        || tree.stat(Path::new("usr/lib/systemd/systemd"))?.is_some())
}

/// A template's init, from its /sbin/init: systemd; sysvinit with rc
/// scripts (run by the built-in init); anything else as the guest's own.
fn detect_init(tree: &GuestTree) -> io::Result<InitChoice> {
    let init = Path::new("sbin/init");
    if tree.readlink(init)?.is_some_and(|t| t.to_string_lossy().contains("systemd")) {
        return Ok(InitChoice::Systemd);
    }
    if tree.stat(Path::new("etc/init.d/rc"))?.is_some() {
        return Ok(InitChoice::Sysv);
    }
    Ok(InitChoice::Plain)
}

/// Removes what a failed build created and puts a moved guest back.
#[derive(Default)]
struct Undo {
    created: Vec<PathBuf>,
    /// A root that existed (empty) before: emptied, not removed.
    emptied: Option<PathBuf>,
    moved: Vec<(PathBuf, PathBuf)>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for p in &self.created {
            let _ = remove_tree(p);
        }
        if let Some(p) = &self.emptied {
            if let Ok(f) = fs::File::open(p) {
                let _ = remove_contents(f.into());
            }
        }
        for (from, to) in self.moved.iter().rev() {
            let _ = fs::rename(to, from);
        }
    }
}

/// An existing guest is refused, or with `--force` (stopped) moved aside as
/// util-vserver does: `PATH.~UNIXTIME~`, for the configuration and a
/// non-empty root.
fn make_room(
    paths: &Paths,
    name: &str,
    confdir: &Path,
    vdir: &Path,
    force: bool,
    undo: &mut Undo,
    report: &mut BuildReport,
) -> Result<(), BuildError> {
    let conf_exists = fs::symlink_metadata(confdir).is_ok();
    let root_in_use = fs::symlink_metadata(vdir).is_ok() && !is_empty_dir(vdir);
    if !conf_exists && !root_in_use {
        return Ok(());
    }
    if !force {
        return Err(BuildError::Exists { name: name.to_string(), confdir: confdir.to_path_buf(), vdir: vdir.to_path_buf() });
    }
    if runstate::is_running(paths, name) {
        return Err(BuildError::RunningReplace { name: name.to_string() });
    }
    let stamp = runstate::now_secs();
    let moved_root = if root_in_use { Some(move_aside(vdir, stamp, undo)?) } else { None };
    if conf_exists {
        let to = move_aside(confdir, stamp, undo)?;
        // The moved configuration keeps naming its own (moved) root.
        let link = to.join("vdir");
        if let (Some(root), Ok(target)) = (&moved_root, fs::read_link(&link)) {
            if target == vdir {
                fs::remove_file(&link)?;
                std::os::unix::fs::symlink(root, &link)?;
            }
        }
    }
    report.moved = undo.moved.clone();
    Ok(())
}

fn move_aside(path: &Path, stamp: u64, undo: &mut Undo) -> Result<PathBuf, BuildError> {
    let mut t = stamp;
    let to = loop {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".~{t}~"));
        let to = PathBuf::from(s);
        if fs::symlink_metadata(&to).is_err() {
            break to;
        }
        t += 1;
    };
    fs::rename(path, &to).doing(|| format!("renaming {} to {}", path.display(), to.display()))?;
    undo.moved.push((path.to_path_buf(), to.clone()));
    Ok(to)
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// The xid: `--context`, else util-vserver's counter `.defaults/context.next`
/// (the first free id from it), else the lowest free id from 100. Returns
/// whether the counter was used (and must be advanced).
fn pick_xid(paths: &Paths, context: Option<u32>, report: &mut BuildReport) -> Result<(u32, bool), BuildError> {
    let used = all_xids(paths)?;
    let taken = |x: u32| used.iter().find(|(_, u)| *u == x).map(|(n, _)| n.clone());
    if let Some(x) = context {
        let xid = parse_xid(&x.to_string()).map_err(|e| UsageError(format!("--context {x} {e}")))?;
        if let Some(other) = taken(xid) {
            return Err(BuildError::XidTaken { xid, other });
        }
        return Ok((xid, false));
    }
    let dynamic = paths.defaults_dir().join("context.dynamic");
    if dynamic.exists() {
        report.notes.push(format!("{}: guests here always have a static context id", dynamic.display()));
    }
    let counter = paths.defaults_dir().join("context.next");
    let (start, from_counter) = match config::parse::parse_single(&counter, parse_xid)? {
        Some(x) => (x, true),
        None => (100, false),
    };
    let xid = (start..=XID_MAX)
        .find(|x| taken(*x).is_none())
        .ok_or_else(|| BuildError::NoFreeXid { start, counter: from_counter.then(|| counter.clone()) })?;
    Ok((xid, from_counter))
}

fn all_xids(paths: &Paths) -> Result<Vec<(String, u32)>, ConfigError> {
    if !paths.confdir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in config::list_guests(paths)? {
        let file = paths.guest_confdir(&name).join("context");
        if let Some(x) = config::parse::parse_single(&file, parse_xid)? {
            out.push((name, x));
        }
    }
    Ok(out)
}

/// `namespaces` of the guest (or `.defaults`) names `user`.
fn wants_user_namespace(paths: &Paths, name: &str) -> Result<bool, ConfigError> {
    let own = paths.guest_confdir(name).join("namespaces");
    let file = if own.exists() { own } else { paths.defaults_dir().join("namespaces") };
    let Some(lines) = config::parse::read_lines(&file)? else { return Ok(false) };
    for l in lines {
        let ns = config::ExtraNamespace::parse(&l.text).map_err(|e| ConfigError::bad_value(&file, l.number, &l.text, e))?;
        if ns == config::ExtraNamespace::User {
            return Ok(true);
        }
    }
    Ok(false)
}

fn write_file(confdir: &Path, rel: &str, content: &str) -> Result<(), BuildError> {
    let p = confdir.join(rel);
    fs::create_dir_all(p.parent().expect("has parent"))?;
    fs::write(&p, content).doing(|| format!("writing {}", p.display()))
}

fn write_atomically(path: &Path, content: &str) -> Result<(), BuildError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content).doing(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).doing(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// The configuration util-vserver's `setup_writeOption` writes.
fn write_config(confdir: &Path, name: &str, xid: u32, vdir: &Path, opts: &BuildOptions) -> Result<(), BuildError> {
    let w = |rel: &str, content: &str| write_file(confdir, rel, content);
    fs::create_dir_all(confdir).doing(|| format!("creating {}", confdir.display()))?;
    w("context", &format!("{xid}\n"))?;
    w("name", &format!("{name}\n"))?;
    w("uts/nodename", &format!("{}\n", opts.hostname.as_deref().unwrap_or(name)))?;
    if opts.rootdir.is_some() {
        std::os::unix::fs::symlink(vdir, confdir.join("vdir")).doing(|| "writing vdir".to_string())?;
    }
    if let Some(dev) = &opts.net.dev {
        w("interfaces/dev", &format!("{dev}\n"))?;
    }
    match (&opts.netmask, opts.net.prefix) {
        (Some(mask), _) => w("interfaces/mask", &format!("{mask}\n"))?,
        (None, Some(p)) => w("interfaces/prefix", &format!("{p}\n"))?,
        _ => {}
    }
    for (i, iface) in opts.interfaces.iter().enumerate() {
        let (dev, prefix) = iface.resolve(&opts.net).map_err(|e| UsageError(format!("--interface {}: {e}", iface.ip)))?;
        w(&format!("interfaces/{i}/ip"), &format!("{}\n", iface.ip))?;
        w(&format!("interfaces/{i}/prefix"), &format!("{prefix}\n"))?;
        match dev {
            Some(dev) => w(&format!("interfaces/{i}/dev"), &format!("{dev}\n"))?,
            None => w(&format!("interfaces/{i}/nodev"), "")?,
        }
        if let Some(n) = &iface.name {
            w(&format!("interfaces/{i}/name"), &format!("{n}\n"))?;
        }
    }
    if !opts.flags.is_empty() {
        w("cflags", &opts.flags.iter().map(|f| format!("{f}\n")).collect::<String>())?;
    }
    Ok(())
}

pub(crate) fn skeleton_root(vdir: &Path) -> io::Result<()> {
    for (dir, mode) in [("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700)] {
        let p = vdir.join(dir);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    Ok(())
}
