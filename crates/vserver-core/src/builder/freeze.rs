//! Freezing a running guest while `build -m clone` copies it. The copy never
//! follows a symlink of the source, but a running guest could still change
//! the tree under the walk (a directory swapped for a symlink between two
//! steps, files half-written); frozen, guest root can change nothing.
//! cgroup v2's `cgroup.freeze` (kernel 5.2) is used where the guest has a
//! cgroup2 directory, else the v1 freezer controller; without either the
//! clone of a running guest is refused. The guest is thawed when the guard
//! drops, on error paths too.

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cgroup::{GuestCgroup, Layout};
use crate::paths::Paths;

/// How long the kernel may take to stop every task of the guest.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(20);

enum Freezer {
    V2(PathBuf),
    V1(PathBuf),
}

/// A frozen guest; thawed on drop.
pub struct Frozen {
    freezer: Freezer,
    guest: String,
}

impl Frozen {
    pub fn freeze(paths: &Paths, name: &str) -> Result<Frozen> {
        let layout = Layout::detect(&paths.cgroup_root)?;
        let cg = GuestCgroup::for_guest(&layout, name);
        let freezer = match (cg.v2_dir().map(|d| d.to_path_buf()), layout.v1_mount("freezer")) {
            (Some(v2), _) if v2.join("cgroup.freeze").exists() => Freezer::V2(v2),
            (_, Some(mount)) => Freezer::V1(mount.join(crate::cgroup::PARENT).join(name)),
            _ => bail!(
                "guest {name:?} is running and cannot be frozen for the copy (no cgroup v2 cgroup.freeze, \
                 kernel >= 5.2, and no v1 freezer controller); stop it first"
            ),
        };
        let frozen = Frozen { freezer, guest: name.to_string() };
        frozen.set(true)?;
        frozen.wait_frozen()?;
        Ok(frozen)
    }

    fn set(&self, on: bool) -> Result<()> {
        let (file, value) = match &self.freezer {
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), if on { "1" } else { "0" }),
            Freezer::V1(dir) => (dir.join("freezer.state"), if on { "FROZEN" } else { "THAWED" }),
        };
        fs::write(&file, value).with_context(|| format!("guest {:?}: writing {value} to {}", self.guest, file.display()))
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(match &self.freezer {
            Freezer::V2(dir) => {
                let events = fs::read_to_string(dir.join("cgroup.events")).context("reading cgroup.events")?;
                events.lines().any(|l| l.trim() == "frozen 1")
            }
            Freezer::V1(dir) => fs::read_to_string(dir.join("freezer.state")).context("reading freezer.state")?.trim() == "FROZEN",
        })
    }

    fn wait_frozen(&self) -> Result<()> {
        let start = Instant::now();
        while !self.is_frozen()? {
            if start.elapsed() > FREEZE_TIMEOUT {
                bail!("guest {:?} did not freeze within {}s; not copied", self.guest, FREEZE_TIMEOUT.as_secs());
            }
            sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = self.set(false) {
            eprintln!("warning: could not thaw guest {:?}: {e:#}", self.guest);
        }
    }
}
