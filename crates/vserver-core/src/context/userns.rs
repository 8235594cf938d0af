//! A user namespace for a guest (`namespaces` containing `user`): guest uid
//! and gid 0..65535 are host ids BASE..BASE+65535 with BASE = xid * 65536, so
//! guest root is an unprivileged user on the host. The guest tree must be
//! owned by the mapped ids (`build` shifts them when the guest's config asks
//! for a user namespace).
//!
//! The guest's first process makes every mount as host root and enters the
//! user namespace last (unshare), so its other namespaces stay owned by the
//! host: guest root cannot mount, and reboot(2) from inside is refused (the
//! built-in init then exits to be restarted). Ports below 1024 of a shared
//! host network need the host's CAP_NET_BIND_SERVICE, which a user namespace
//! cannot give.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use crate::context::error::{ContextError, Result, StepResult};

use crate::config::Guest;

pub use crate::config::idmap::{base, RANGE};

/// Written by the monitor for the guest's first process, before it runs:
/// only a process with CAP_SETUID/CAP_SETGID in the parent namespace may map
/// ranges other than its own ids.
pub(super) fn write_maps(pid: i32, xid: u32) -> Result<()> {
    let map = format!("0 {} {RANGE}\n", base(xid));
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, &map).with_step(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// In the guest's first process: a new user namespace, the monitor writes
/// its id maps (only a process outside may map other ids than its own), then
/// we become its root.
pub(super) fn enter_new(ready: &File, go: &mut File) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).step("creating the user namespace")?;
    (&*ready).write_all(b"u").step("asking the monitor for the id maps")?;
    super::channel::wait_for(go, b'm').step("waiting for the id maps")?;
    become_root()
}

/// uid and gid 0 inside the user namespace (the process came in as host
/// root, which is not mapped there).
pub fn become_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setgroups(&[]).step("clearing supplementary groups")?;
    nix::unistd::setresgid(root_gid, root_gid, root_gid).step("becoming gid 0 of the user namespace")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).step("becoming uid 0 of the user namespace")?;
    Ok(())
}

/// The guest root must belong to the mapped root, or guest root could not
/// write its own files.
pub(super) fn check_tree_owner(guest: &Guest) -> Result<()> {
    let meta = fs::metadata(&guest.vdir).with_step(|| format!("{}", guest.vdir.display()))?;
    let want = base(guest.xid);
    if meta.uid() != want {
        return Err(ContextError::Unstartable(format!(
            "guest {:?} asks for a user namespace ({}), but its root {} belongs to uid {}, not {want} (guest root); \
             build the guest with the namespace configured (vserver {} build ... --force) to get shifted ids",
            guest.name,
            guest.confdir.join("namespaces").display(),
            guest.vdir.display(),
            meta.uid(),
            guest.name
        )));
    }
    Ok(())
}
