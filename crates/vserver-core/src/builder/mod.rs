//! `vserver NAME build -m METHOD`: a guest's configuration directory and root.
//! A build that fails half-way removes what it created; `--force` replaces an
//! existing (stopped) guest.

mod busybox;
mod debootstrap;
mod delete;
mod shift;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub use delete::{delete_guest, remove_tree};

use crate::config::{self, parse_xid, XID_MAX};
use crate::paths::{validate_guest_name, Paths};
use crate::runstate;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The configuration and an empty root.
    Skeleton,
    /// A minimal working guest made from a static busybox.
    Busybox,
    /// A Debian guest; the arguments are util-vserver's `-d SUITE [-m MIRROR]`.
    Debootstrap(Vec<String>),
    /// A copy of another guest (name or root directory).
    Clone(String),
}

/// `--interface [name=]dev:ip/prefix` (util-vserver syntax; `nodev:` or no
/// device for an address that is only in the IP set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    pub name: Option<String>,
    pub dev: Option<String>,
    pub ip: std::net::IpAddr,
    pub prefix: u8,
}

impl InterfaceSpec {
    pub fn parse(s: &str) -> Result<InterfaceSpec, String> {
        let (name, rest) = match s.split_once('=') {
            Some((n, r)) => (Some(n.to_string()), r),
            None => (None, s),
        };
        let is_address = |a: &str| a.split('/').next().is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        // An IPv6 address has colons of its own: only split off a device
        // when the whole text is not already an address.
        let (dev, addr) = match rest.split_once(':') {
            Some((d, a)) if !is_address(rest) => (Some(d.to_string()), a),
            _ => (None, rest),
        };
        let (ip, prefix) = match addr.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (addr, None),
        };
        let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("{ip:?} is not an IPv4 or IPv6 address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{p:?} is not a prefix length (0-{max})"))?,
            None => max,
        };
        let dev = dev.filter(|d| d != "nodev");
        Ok(InterfaceSpec { name, dev, ip, prefix })
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub method: Method,
    pub context: Option<u32>,
    pub hostname: Option<String>,
    pub interfaces: Vec<InterfaceSpec>,
    pub force: bool,
}

/// Removes what a failed build created, unless the build finished.
struct Undo {
    paths: Vec<PathBuf>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.done {
            for p in &self.paths {
                let _ = remove_tree(p);
            }
        }
    }
}

pub fn build_guest(paths: &Paths, name: &str, opts: &BuildOptions) -> Result<()> {
    validate_guest_name(name).map_err(anyhow::Error::msg)?;
    let confdir = paths.guest_confdir(name);
    let vdir = paths.default_vdir(name);
    if confdir.exists() || vdir.exists() {
        if !opts.force {
            bail!("guest {name:?} already exists ({} or {}); use --force to replace it", confdir.display(), vdir.display());
        }
        if runstate::is_running(paths, name) {
            bail!("guest {name:?} is running; stop it before replacing it");
        }
        delete_guest(paths, name)?;
    }
    let xid = match opts.context {
        Some(x) => parse_xid(&x.to_string()).map_err(|e| anyhow::anyhow!("--context {x} {e}"))?,
        None => free_xid(paths)?,
    };
    if let Some(other) = guest_with_xid(paths, xid)? {
        bail!("context id {xid} is already used by guest {other:?}");
    }
    let mut undo = Undo { paths: vec![confdir.clone(), vdir.clone()], done: false };
    write_config(&confdir, name, xid, opts)?;
    fs::create_dir_all(&vdir).with_context(|| format!("creating {}", vdir.display()))?;
    fs::set_permissions(&vdir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    match &opts.method {
        Method::Skeleton => skeleton_root(&vdir)?,
        Method::Busybox => busybox::build(&confdir, &vdir)?,
        Method::Debootstrap(args) => debootstrap::build(&confdir, &vdir, args)?,
        Method::Clone(source) => clone_from(paths, source, &confdir, &vdir)?,
    }
    shift_for_user_namespace(paths, name, &vdir)?;
    // util-vserver's barrier: no host user may reach into a guest root, where
    // guest root can plant setuid programs. Root passes regardless.
    fs::set_permissions(&paths.vdirbase, std::os::unix::fs::PermissionsExt::from_mode(0o000))?;
    undo.done = true;
    Ok(())
}

/// A guest whose configuration (its own or `.defaults/namespaces`) asks for
/// a user namespace gets its tree owned by the mapped ids.
fn shift_for_user_namespace(paths: &Paths, name: &str, vdir: &Path) -> Result<()> {
    let guest = config::load_guest(paths, name)?;
    if guest.namespaces.contains(&config::ExtraNamespace::User) {
        shift::shift_ids(vdir, crate::context::userns::base(guest.xid))
            .with_context(|| format!("shifting {} into the user namespace's ids", vdir.display()))?;
    }
    Ok(())
}

fn write_config(confdir: &Path, name: &str, xid: u32, opts: &BuildOptions) -> Result<()> {
    let w = |rel: &str, content: &str| -> Result<()> {
        let p = confdir.join(rel);
        fs::create_dir_all(p.parent().expect("has parent"))?;
        fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
    };
    w("context", &format!("{xid}\n"))?;
    w("name", &format!("{name}\n"))?;
    w("uts/nodename", &format!("{}\n", opts.hostname.as_deref().unwrap_or(name)))?;
    for (i, iface) in opts.interfaces.iter().enumerate() {
        w(&format!("interfaces/{i}/ip"), &format!("{}\n", iface.ip))?;
        w(&format!("interfaces/{i}/prefix"), &format!("{}\n", iface.prefix))?;
        match &iface.dev {
            Some(dev) => w(&format!("interfaces/{i}/dev"), &format!("{dev}\n"))?,
            None => w(&format!("interfaces/{i}/nodev"), "")?,
        }
        if let Some(n) = &iface.name {
            w(&format!("interfaces/{i}/name"), &format!("{n}\n"))?;
        }
    }
    Ok(())
}

pub(crate) fn skeleton_root(vdir: &Path) -> Result<()> {
    for (dir, mode) in [("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700)] {
        let p = vdir.join(dir);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    Ok(())
}

/// The lowest context id from 100 upwards that no configured guest uses.
fn free_xid(paths: &Paths) -> Result<u32> {
    let used: Vec<u32> = all_xids(paths)?.into_iter().map(|(_, x)| x).collect();
    (100..=XID_MAX).find(|x| !used.contains(x)).context("every context id is in use")
}

fn guest_with_xid(paths: &Paths, xid: u32) -> Result<Option<String>> {
    Ok(all_xids(paths)?.into_iter().find(|(_, x)| *x == xid).map(|(n, _)| n))
}

fn all_xids(paths: &Paths) -> Result<Vec<(String, u32)>> {
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

fn clone_from(paths: &Paths, source: &str, confdir: &Path, vdir: &Path) -> Result<()> {
    let (src_root, src_conf) = if source.starts_with('/') {
        (PathBuf::from(source), None)
    } else {
        let g = config::load_guest(paths, source).with_context(|| format!("clone source {source:?}"))?;
        (g.vdir, Some(g.confdir))
    };
    if !src_root.is_dir() {
        bail!("clone source {} is not a directory", src_root.display());
    }
    // cp -a copies symlinks as symlinks and never follows them out of the source.
    let status = Command::new("cp")
        .args(["-a", "--reflink=auto", "--one-file-system", "-T"])
        .arg(&src_root)
        .arg(vdir)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("copying {} to {} failed", src_root.display(), vdir.display());
    }
    if let Some(src_conf) = src_conf {
        // Everything but what identifies the source guest.
        for entry in ["bcapabilities", "ccapabilities", "cflags", "flags", "fstab", "rlimits", "apps", "personality", "namespaces", "sched", "cpuset", "uts/domainname"] {
            let from = src_conf.join(entry);
            if from.exists() {
                let to = confdir.join(entry);
                fs::create_dir_all(to.parent().expect("has parent"))?;
                let ok = Command::new("cp").args(["-a", "-T"]).arg(&from).arg(&to).status()?.success();
                if !ok {
                    bail!("copying {} failed", from.display());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_specs() {
        let s = InterfaceSpec::parse("eth0:192.0.2.5/24").unwrap();
        assert_eq!((s.dev.as_deref(), s.prefix), (Some("eth0"), 24));
        let s = InterfaceSpec::parse("web=lo:127.0.0.5").unwrap();
        assert_eq!((s.name.as_deref(), s.dev.as_deref(), s.prefix), (Some("web"), Some("lo"), 32));
        let s = InterfaceSpec::parse("nodev:127.0.0.9/8").unwrap();
        assert_eq!(s.dev, None);
        let s = InterfaceSpec::parse("::1").unwrap();
        assert_eq!((s.dev, s.prefix), (None, 128));
        assert!(InterfaceSpec::parse("eth0:10.0.0.300").is_err());
        assert!(InterfaceSpec::parse("eth0:10.0.0.1/40").is_err());
    }
}
