//! Freezing a running guest while `build -m clone` copies it. The copy never
//! follows a symlink of the source, but a running guest could still change
//! the tree under the walk (a directory swapped for a symlink between two
//! steps, files half-written); frozen, guest root can change nothing.
//! The freezer is the unifier's (unify/freezer.rs): cgroup v2's
//! `cgroup.freeze` (kernel 5.2) where the guest has a cgroup2 directory,
//! else the v1 freezer controller; without either the clone of a running
//! guest is refused. The guest is thawed when the guard drops, on error
//! paths too.

use std::time::Duration;

use super::error::{BuildError, Doing};
use crate::cgroup::{GuestCgroup, Layout};
use crate::paths::Paths;
use crate::unify::freezer::{self, Target};

/// How long the kernel may take to stop every task of the guest.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(20);

/// A frozen guest; thawed on drop (by the freezer's own guard).
pub struct Frozen(#[allow(dead_code)] freezer::Frozen);

impl Frozen {
    pub fn freeze(paths: &Paths, name: &str) -> Result<Frozen, BuildError> {
        let layout = Layout::detect(&paths.cgroup_root)?;
        let cg = GuestCgroup::for_guest(&layout, name);
        let v2 = cg.v2_dir().and_then(Target::of);
        let v1 = layout.v1_mount("freezer").and_then(|m| Target::of(&m.join(crate::cgroup::PARENT).join(name)));
        let Some(target) = v2.or(v1) else { return Err(BuildError::Unfreezable { name: name.to_string() }) };
        let targets = [target];
        // A guest someone else froze (an admin, a window) stays as it is.
        let ours = freezer::unrequested(&targets).doing(|| format!("guest {name:?}: reading its freezer state"))?;
        let frozen = freezer::freeze(ours, &targets, FREEZE_TIMEOUT).doing(|| format!("guest {name:?} did not freeze; not copied"))?;
        Ok(Frozen(frozen))
    }
}
