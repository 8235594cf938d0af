//! Which context a host process belongs to, for `vps` and `vtop`.
//!
//! The answer comes from the kernel's record of the process's cgroup
//! (`/proc/PID/cgroup`) and from our own run state, never from anything a
//! guest can write: not its process names, not its `/etc`, not a pid file.
//! A guest process lives in `vserver/NAME` or below it (`vserver/NAME/payload`
//! and whatever sub-cgroups a systemd guest makes there); the guest's monitor
//! lives in `vserver/NAME/supervisor` (INTERFACES §1), or, on a host whose
//! monitor is not moved there, is recognised by the pid and start time in
//! the run state. Only the first two path components after the root count,
//! so a guest that names its own sub-cgroups `vserver/other` inside its
//! delegated subtree still belongs to itself.

use std::collections::HashMap;
use std::fs;
use std::io;

use crate::cgroup::PARENT;
use crate::paths::Paths;
use crate::runstate::{self, ProcessId, RunState};

/// The host context's number and the name util-vserver's tools show for it.
pub const HOST_XID: u32 = 0;
pub use super::HOST_NAME;

/// The sub-cgroup of `vserver/NAME` the monitor is charged to.
pub const SUPERVISOR: &str = "supervisor";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A process of the host (context 0), also one run by `chbind`.
    Host,
    /// A process inside a guest.
    Guest { xid: u32, name: String },
    /// The host-side monitor of a guest: a host process charged to the guest.
    Monitor { xid: u32, name: String },
    /// In a guest's cgroup, but that guest has no run state (a stale
    /// context whose monitor died): its number is unknown.
    Orphan { name: String },
}

impl Owner {
    /// The context id column (`None`: util-vserver's `ERR`).
    pub fn xid(&self) -> Option<u32> {
        match self {
            Owner::Host => Some(HOST_XID),
            Owner::Guest { xid, .. } | Owner::Monitor { xid, .. } => Some(*xid),
            Owner::Orphan { .. } => None,
        }
    }

    /// The name column: the guest's name, `NAME:monitor` for a monitor
    /// (`:` is not allowed in guest names, so this never clashes).
    pub fn label(&self) -> String {
        match self {
            Owner::Host => HOST_NAME.to_string(),
            Owner::Guest { name, .. } | Owner::Orphan { name } => name.clone(),
            Owner::Monitor { name, .. } => format!("{name}:monitor"),
        }
    }

    /// The guest this process is charged to, if any.
    pub fn guest_name(&self) -> Option<&str> {
        match self {
            Owner::Host => None,
            Owner::Guest { name, .. } | Owner::Monitor { name, .. } | Owner::Orphan { name } => Some(name),
        }
    }
}

/// The running guests, by the name their cgroup carries.
#[derive(Debug, Clone, Default)]
pub struct ContextMap {
    guests: HashMap<String, Known>,
    monitors: HashMap<i32, (ProcessId, String)>,
}

#[derive(Debug, Clone)]
struct Known {
    xid: u32,
}

impl ContextMap {
    /// Every guest with a run state under the run dir.
    pub fn load(paths: &Paths) -> io::Result<ContextMap> {
        Ok(Self::from_states(&runstate::running_guests(paths)?))
    }

    pub fn from_states(states: &[RunState]) -> ContextMap {
        let mut map = ContextMap::default();
        for s in states {
            map.guests.insert(s.name.clone(), Known { xid: s.xid });
            map.monitors.insert(s.monitor.pid, (s.monitor, s.name.clone()));
        }
        map
    }

    /// The owner of a host pid; `None` when the process is gone.
    pub fn owner_of(&self, pid: i32) -> Option<Owner> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let owner = self.owner_from_cgroup(&text);
        if owner == Owner::Host {
            if let Some((id, name)) = self.monitors.get(&pid) {
                if id.is_alive() {
                    return Some(self.monitor(name));
                }
            }
        }
        Some(owner)
    }

    /// Decides from the text of `/proc/PID/cgroup`.
    pub fn owner_from_cgroup(&self, text: &str) -> Owner {
        let Some((name, rest)) = guest_cgroup(text) else { return Owner::Host };
        if rest.first() == Some(&SUPERVISOR) {
            return self.monitor(name);
        }
        match self.guests.get(name) {
            Some(k) => Owner::Guest { xid: k.xid, name: name.to_string() },
            None => Owner::Orphan { name: name.to_string() },
        }
    }

    fn monitor(&self, name: &str) -> Owner {
        match self.guests.get(name) {
            Some(k) => Owner::Monitor { xid: k.xid, name: name.to_string() },
            None => Owner::Orphan { name: name.to_string() },
        }
    }

    /// The xid of a running guest by name.
    pub fn xid_of(&self, name: &str) -> Option<u32> {
        self.guests.get(name).map(|k| k.xid)
    }
}

/// `(NAME, components below vserver/NAME)` when the process's cgroup is a
/// guest's. The cgroup2 line (`0::/path`) is preferred; on a host without
/// cgroup2 the first v1 line with a controller decides (a guest process is
/// in its cgroup in every hierarchy). `vserver/chbind-PID` is chbind's
/// transient cgroup: a host process with an IP set, not a guest.
fn guest_cgroup(text: &str) -> Option<(&str, Vec<&str>)> {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if v1.is_none() && !controllers.is_empty() && !controllers.starts_with("name=") {
            v1 = Some(path);
        }
    }
    let path = v2.or(v1)?;
    let mut parts = path.trim_start_matches('/').split('/');
    if parts.next() != Some(PARENT) {
        return None;
    }
    let name = parts.next().filter(|n| !n.is_empty())?;
    if name.starts_with("chbind-") {
        return None;
    }
    Some((name, parts.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ContextMap {
        let mut m = ContextMap::default();
        m.guests.insert("web1".into(), Known { xid: 101 });
        m
    }

    #[test]
    fn guest_processes_are_found_in_every_layout() {
        let m = map();
        let web1 = Owner::Guest { xid: 101, name: "web1".into() };
        assert_eq!(m.owner_from_cgroup("0::/vserver/web1\n"), web1);
        assert_eq!(m.owner_from_cgroup("0::/vserver/web1/payload\n"), web1);
        assert_eq!(m.owner_from_cgroup("0::/vserver/web1/payload/system.slice/nginx.service\n"), web1);
        // Hybrid: the v2 line wins over the v1 ones.
        assert_eq!(m.owner_from_cgroup("12:pids:/vserver/web1\n4:memory:/vserver/web1\n0::/vserver/web1/payload\n"), web1);
        // v1 only.
        assert_eq!(m.owner_from_cgroup("1:name=systemd:/init.scope\n4:memory:/vserver/web1\n"), web1);
        assert_eq!(m.owner_from_cgroup("0::/vserver/web1/supervisor\n"), Owner::Monitor { xid: 101, name: "web1".into() });
    }

    #[test]
    fn host_chbind_and_unknown_guests() {
        let m = map();
        assert_eq!(m.owner_from_cgroup("0::/init.scope\n"), Owner::Host);
        assert_eq!(m.owner_from_cgroup("0::/\n"), Owner::Host);
        assert_eq!(m.owner_from_cgroup("0::/vserver/chbind-4242\n"), Owner::Host);
        assert_eq!(m.owner_from_cgroup("0::/system.slice/vserver/web1\n"), Owner::Host);
        assert_eq!(m.owner_from_cgroup("0::/vserver/gone\n"), Owner::Orphan { name: "gone".into() });
        assert_eq!(Owner::Orphan { name: "gone".into() }.xid(), None);
    }

    #[test]
    fn a_guest_naming_its_own_subcgroups_stays_itself() {
        let mut m = map();
        m.guests.insert("web2".into(), Known { xid: 102 });
        let owner = m.owner_from_cgroup("0::/vserver/web1/payload/vserver/web2/supervisor\n");
        assert_eq!(owner, Owner::Guest { xid: 101, name: "web1".into() });
    }

    #[test]
    fn labels() {
        assert_eq!(Owner::Host.label(), "root server");
        assert_eq!(Owner::Monitor { xid: 5, name: "a".into() }.label(), "a:monitor");
    }
}
