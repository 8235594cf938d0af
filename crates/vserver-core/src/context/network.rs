//! The guest's network on the host side, set up by the monitor for every
//! boot and undone when the guest ends: the IP set's BPF programs on its
//! cgroup v2 directory and its addresses on host devices, or, for a guest
//! with a network namespace of its own, the veth pair.

use crate::context::error::{OrMissing, Result};

use crate::cgroup::GuestCgroup;
use crate::config::{ExtraNamespace, Guest};
use crate::net;
use crate::paths::Paths;

/// The guest's network context on the host: BPF programs on its cgroup v2
/// directory and the addresses added to host devices.
#[derive(Default)]
pub(super) struct Network {
    programs: Option<net::AttachedPrograms>,
    pub(super) added: Vec<net::AddedAddress>,
    /// Host end of the veth pair of a guest with its own network namespace.
    veth: Option<String>,
    /// The guest's live network state (`net::live`): what `vserver NAME ip`
    /// changed since start is undone from there too.
    live: Option<(Paths, String)>,
}

impl Network {
    pub(super) fn set_up(&mut self, paths: &Paths, guest: &Guest, cgroup: &GuestCgroup) -> Result<()> {
        if guest.wants_namespace(ExtraNamespace::Net) {
            // A network namespace of its own: nothing of the host's to restrict.
            return Ok(());
        }
        let net::GuestNetwork::Restricted(ctx) = net::guest_network(&guest.confdir, &guest.net, guest.xid)? else {
            return Ok(());
        };
        let v2 = cgroup.v2_dir().or_missing("network contexts need a cgroup v2 directory for the guest")?;
        self.programs = Some(ctx.apply_to_cgroup(v2, &paths.rundir)?);
        self.added = ctx.add_host_addresses()?;
        self.live = Some((paths.clone(), guest.name.clone()));
        net::live::record(paths, &guest.name, ctx.set(), &self.added)?;
        Ok(())
    }

    /// A guest with a network namespace of its own gets a veth pair carrying
    /// its `interfaces/` addresses; its pid 1 must exist (the pair's guest
    /// end moves into its namespace) but not yet run guest code.
    pub(super) fn connect_namespace(&mut self, guest: &Guest, init_pid: i32) -> Result<()> {
        if !guest.wants_namespace(ExtraNamespace::Net) {
            return Ok(());
        }
        let cfg = net::VethConfig {
            host_if: format!("vs{}", guest.xid),
            guest_if: "eth0".to_string(),
            addresses: guest.net.interfaces.iter().map(|i| (i.ip, i.prefix)).collect(),
        };
        net::setup_veth(&cfg, init_pid)?;
        self.veth = Some(cfg.host_if);
        Ok(())
    }

    /// The veth pair and the host addresses, once no guest process is
    /// left. The programs stay: they go with the cgroup
    /// ([`release_programs`](Self::release_programs)).
    pub(super) fn undo(&mut self) {
        if let Some(host_if) = self.veth.take() {
            if let Err(e) = net::remove_veth(&host_if) {
                log::warn!("{e:#}");
            }
        }
        let mut added = std::mem::take(&mut self.added);
        if let Some((paths, name)) = self.live.take() {
            for a in net::live::forget(&paths, &name) {
                if !added.contains(&a) {
                    added.push(a);
                }
            }
        }
        if let Err(e) = net::remove_host_addresses(&added) {
            log::warn!("{e:#}");
        }
    }

    /// After the cgroup's removal. Removing a cgroup releases its programs
    /// in the kernel's own time (a work item), where detaching them one by
    /// one costs the stop about a millisecond (each detach rebuilds the
    /// cgroup's program arrays and may flip a static key). Only a cgroup
    /// that stays (`cgroup_stays`: its removal failed) gets them detached.
    pub(super) fn release_programs(&mut self, cgroup_stays: bool) {
        let Some(mut p) = self.programs.take() else { return };
        if cgroup_stays && p.cgroup_dir.exists() {
            if let Err(e) = p.detach() {
                log::warn!("{e:#}");
            }
        }
    }
}
