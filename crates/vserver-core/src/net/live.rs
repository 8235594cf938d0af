//! A running guest's network context: its set as it is now (which live
//! changes may have made differ from `interfaces/`), kept in
//! `<rundir>/NAME/network.json`, and the live changes themselves
//! (`vserver NAME ip add|del`).
//!
//! A change is one step for the guest: the complete new table (`dest.rs`)
//! is written under the slot its programs do not read, then the slot flips,
//! so every bind, connect and packet sees the old set or the new one. The host address of
//! an added address is on its device before the swap; the one of a removed
//! address goes after.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::addr::{self, AddedAddress, WantedAddress};
use super::ipset::{canonical, IpSet, Member};
use super::{attach, dest, host_routes, rtnl, IoContext, NetError};
use crate::cgroup::{GuestCgroup, Layout};
use crate::paths::Paths;
use crate::runstate::RunState;

pub const STATE_FILE: &str = "network.json";

/// What `network.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    pub members: Vec<Member>,
    pub lback: Option<Ipv4Addr>,
    #[serde(default)]
    pub allow_loopback: Vec<IpAddr>,
    /// Host addresses this guest added (at start and live), in
    /// [`AddedAddress`]'s string form: removed when the guest stops.
    #[serde(default)]
    pub added: Vec<String>,
}

impl LiveState {
    pub fn set(&self) -> Result<IpSet, NetError> {
        IpSet::with_members(&self.members, self.lback, &self.allow_loopback).map_err(NetError::Set)
    }

    fn added_addresses(&self) -> Vec<AddedAddress> {
        self.added.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

pub fn state_file(paths: &Paths, name: &str) -> PathBuf {
    paths.guest_rundir(name).join(STATE_FILE)
}

fn save(file: &Path, state: &LiveState) -> Result<(), NetError> {
    let tmp = file.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp).on_file("cannot write", &tmp)?;
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other);
    text.and_then(|t| f.write_all(&t)).map_err(NetError::Sys)?;
    fs::rename(&tmp, file).on_file("cannot write", file)
}

pub fn load(paths: &Paths, name: &str) -> Result<Option<LiveState>, NetError> {
    let file = state_file(paths, name);
    match fs::read(&file) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(state) => Ok(Some(state)),
            Err(err) => Err(NetError::BadState { file, err }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).on_file("cannot read", &file),
    }
}

/// The monitor's record at start: the set it attached and what it added.
pub fn record(paths: &Paths, name: &str, set: &IpSet, added: &[AddedAddress]) -> Result<(), NetError> {
    let state = LiveState {
        members: set.members().to_vec(),
        lback: set.lback(),
        allow_loopback: set.allow_loopback().to_vec(),
        added: added.iter().map(|a| a.to_string()).collect(),
    };
    save(&state_file(paths, name), &state)
}

/// At stop: the host addresses to remove (those added live too); the
/// record goes.
pub fn forget(paths: &Paths, name: &str) -> Vec<AddedAddress> {
    let file = state_file(paths, name);
    let added = load(paths, name).ok().flatten().map(|s| s.added_addresses()).unwrap_or_default();
    let _ = fs::remove_file(file);
    added
}

/// Serialises live changes of one guest (and keeps two `ip` commands from
/// interleaving their read-modify-write of the state).
struct ChangeLock(#[allow(dead_code)] fs::File);

impl ChangeLock {
    fn take(paths: &Paths, name: &str) -> Result<ChangeLock, NetError> {
        let dir = paths.lock_dir();
        fs::create_dir_all(&dir).on_file("creating", &dir)?;
        let file = fs::File::create(dir.join(format!("net-{name}"))).on_file("creating a lock in", &dir)?;
        crate::sys::flock(file.as_fd(), true).or_doing(|| "locking the network state".into())?;
        Ok(ChangeLock(file))
    }
}

/// The running guest's cgroup v2 directory, where its programs are.
fn v2_dir(paths: &Paths, state: &RunState) -> Result<PathBuf, NetError> {
    let layout = Layout::detect(&paths.cgroup_root).map_err(NetError::Sys)?;
    let cg = GuestCgroup::from_dirs(&layout, state.cgroups.clone());
    cg.v2_dir().map(Path::to_path_buf).ok_or_else(|| NetError::NoCgroupV2 { guest: state.name.clone() })
}

/// Builds the trie of `set` with the host's routes as they are now and
/// swaps it in.
fn swap_in(cgroup_v2: &Path, set: &IpSet) -> Result<(), NetError> {
    let routes = host_routes()?;
    let table = dest::table(set, &routes, &|dev| rtnl::ifindex(dev).ok());
    let maps = attach::maps_of(cgroup_v2)?;
    dest::replace(&maps, &table).or_doing(|| "cannot swap in the new set".into())?;
    // The next change reuses the slot just left: no program may still be
    // reading it then.
    wait_for_running_programs();
    Ok(())
}

/// Waits until every BPF program that may still hold the old map has
/// finished (they run under RCU): membarrier(MEMBARRIER_CMD_GLOBAL) is a
/// synchronize_rcu(). Not fatal where it is unavailable (nohz_full).
fn wait_for_running_programs() {
    let _ = crate::sys::misc::membarrier_global();
}

fn running_state(paths: &Paths, name: &str) -> Result<(RunState, LiveState), NetError> {
    let state = crate::runstate::require_running(paths, name)?;
    let Some(live) = load(paths, name)? else {
        return Err(NetError::NoContextToChange { guest: name.to_string() });
    };
    Ok((state, live))
}

fn record_in_run_state(paths: &Paths, name: &str, f: impl FnOnce(&mut Vec<String>)) -> Result<(), NetError> {
    if let Some(mut rs) = RunState::load(paths, name).map_err(NetError::Sys)? {
        f(&mut rs.added_addresses);
        rs.save(paths).or_doing(|| "writing the run state".into())?;
    }
    Ok(())
}

/// What an `ip add` did.
#[derive(Debug)]
pub struct Added {
    /// The address was put on its device (not there before).
    pub on_device: Option<AddedAddress>,
}

/// `vserver NAME ip add ADDR[/PREFIX] [--dev DEV]`.
pub fn add(paths: &Paths, name: &str, member: Member) -> Result<Added, NetError> {
    let _lock = ChangeLock::take(paths, name)?;
    let (state, mut live) = running_state(paths, name)?;
    let old = live.set()?;
    let new = old.with_added(member.clone()).map_err(|reason| NetError::Change { guest: name.to_string(), reason })?;
    let cgroup_v2 = v2_dir(paths, &state)?;
    // The address is on the host before the guest may bind it.
    let on_device = match &member.dev {
        Some(dev) => {
            if !addr::device_exists(dev) {
                return Err(NetError::NoDevice { dev: dev.clone() });
            }
            let wanted =
                WantedAddress { ip: canonical(member.ip), prefix: member.prefix, dev: dev.clone(), label: None, scope_host: false };
            addr::add_addresses(&[wanted])?.pop()
        }
        None => None,
    };
    if let Err(e) = swap_in(&cgroup_v2, &new) {
        if let Some(a) = &on_device {
            let _ = addr::remove_addresses(std::slice::from_ref(a));
        }
        return Err(e);
    }
    live.members = new.members().to_vec();
    if let Some(a) = &on_device {
        live.added.push(a.to_string());
        record_in_run_state(paths, name, |list| list.push(a.to_string()))?;
    }
    save(&state_file(paths, name), &live)?;
    Ok(Added { on_device })
}

/// What an `ip del` did.
#[derive(Debug)]
pub struct Removed {
    /// The address came off its device (the guest had added it).
    pub off_device: Option<AddedAddress>,
    /// Sockets of the guest still bound to it (only with `force`).
    pub sockets_left: usize,
}

/// `vserver NAME ip del ADDR [--force]`. Refused while sockets of the
/// guest are bound to the address (they would keep it: a listener would go
/// on serving an address the admin gave away), unless `force`.
pub fn del(paths: &Paths, name: &str, ip: IpAddr, force: bool) -> Result<Removed, NetError> {
    let _lock = ChangeLock::take(paths, name)?;
    let (state, mut live) = running_state(paths, name)?;
    let old = live.set()?;
    let new = old.without(ip).map_err(|reason| NetError::Change { guest: name.to_string(), reason })?;
    let cgroup_v2 = v2_dir(paths, &state)?;
    swap_in(&cgroup_v2, &new)?;
    // From here no new socket gets the address (swap_in waited for
    // programs still on the old set); count those that have it.
    let layout = Layout::detect(&paths.cgroup_root).map_err(NetError::Sys)?;
    let pids = GuestCgroup::from_dirs(&layout, state.cgroups.clone()).pids().unwrap_or_default();
    let bound = super::sockets::bound_to(&pids, canonical(ip));
    if bound > 0 && !force {
        swap_in(&cgroup_v2, &old).map_err(|e| NetError::PutBack(Box::new(e)))?;
        return Err(NetError::SocketsBound { guest: name.to_string(), bound, ip });
    }
    let ip = canonical(ip);
    let off_device: Option<AddedAddress> = live.added_addresses().into_iter().find(|a| a.ip == ip);
    if let Some(a) = &off_device {
        addr::remove_addresses(std::slice::from_ref(a))?;
        let text = a.to_string();
        live.added.retain(|x| *x != text);
        record_in_run_state(paths, name, |list| list.retain(|x| *x != text))?;
    }
    live.members = new.members().to_vec();
    save(&state_file(paths, name), &live)?;
    Ok(Removed { off_device, sockets_left: bound })
}

/// `--save`: the change written to `interfaces/` too, each step atomic
/// (a new `interfaces/N` is written aside and renamed into place; a removed
/// one is renamed aside before it is deleted).
pub fn save_added(confdir: &Path, member: &Member) -> Result<PathBuf, NetError> {
    let dir = confdir.join("interfaces");
    fs::create_dir_all(&dir).on_file("cannot create", &dir)?;
    let next = fs::read_dir(&dir)
        .map_err(NetError::Sys)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .map_or(0, |n| n + 1);
    let target = dir.join(next.to_string());
    let tmp = dir.join(format!(".{next}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).on_file("cannot create", &tmp)?;
    write_member(&tmp, member).map_err(NetError::Sys)?;
    fs::rename(&tmp, &target).on_file("cannot create", &target)?;
    Ok(target)
}

/// The files of one `interfaces/N` directory.
fn write_member(dir: &Path, member: &Member) -> std::io::Result<()> {
    let ip = canonical(member.ip);
    fs::write(dir.join("ip"), format!("{ip}\n"))?;
    fs::write(dir.join("prefix"), format!("{}\n", member.prefix))?;
    match &member.dev {
        Some(d) => fs::write(dir.join("dev"), format!("{d}\n")),
        None => fs::write(dir.join("nodev"), ""),
    }
}

/// `--save` of a removal: every `interfaces/N` with that address goes.
pub fn save_removed(confdir: &Path, ip: IpAddr) -> Result<Vec<PathBuf>, NetError> {
    let dir = confdir.join("interfaces");
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(removed) };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(text) = fs::read_to_string(p.join("ip")) else { continue };
        let same = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .and_then(|l| l.parse::<IpAddr>().ok())
            .map(canonical)
            == Some(canonical(ip));
        if !same {
            continue;
        }
        let aside = dir.join(format!(".{}.removed", e.file_name().to_string_lossy()));
        fs::rename(&p, &aside).on_file("cannot remove", &p)?;
        fs::remove_dir_all(&aside).on_file("cannot remove", &aside)?;
        removed.push(p);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_writes_and_removes_interface_directories() {
        let d = crate::config::parse::tests::tempdir();
        let m = Member { ip: "10.9.0.5".parse().unwrap(), prefix: 24, dev: Some("eth0".into()) };
        fs::create_dir_all(d.join("interfaces/3")).unwrap();
        fs::write(d.join("interfaces/3/ip"), "127.0.0.2\n").unwrap();
        let p = save_added(&d, &m).unwrap();
        assert_eq!(p, d.join("interfaces/4"));
        assert_eq!(fs::read_to_string(p.join("ip")).unwrap(), "10.9.0.5\n");
        assert_eq!(fs::read_to_string(p.join("dev")).unwrap(), "eth0\n");
        let nodev = save_added(&d, &Member::exact("127.0.0.9".parse().unwrap())).unwrap();
        assert!(nodev.join("nodev").exists());
        let cfg = crate::config::interfaces::parse_interfaces(&d.join("interfaces")).unwrap();
        assert_eq!(cfg.interfaces.len(), 3);
        assert_eq!(save_removed(&d, "10.9.0.5".parse().unwrap()).unwrap(), vec![d.join("interfaces/4")]);
        assert!(!d.join("interfaces/4").exists());
        assert_eq!(crate::config::interfaces::parse_interfaces(&d.join("interfaces")).unwrap().interfaces.len(), 2);
    }
}
