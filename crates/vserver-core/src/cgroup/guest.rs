//! The guest's own cgroup, `vserver/<name>` in every hierarchy: membership,
//! accounting and, at stop, the handle that finds and kills every process of
//! the context, however it forked.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{read_file, write_file, Layout};

/// Every guest cgroup lives under this parent in each hierarchy.
pub const PARENT: &str = "vserver";

/// v2 controllers enabled for guests where the host's cgroup2 root has them.
const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids", "io"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCgroup {
    /// One directory per hierarchy, v2 (if any) first.
    dirs: Vec<PathBuf>,
    v2: Option<PathBuf>,
    layout: Layout,
}

impl GuestCgroup {
    /// The guest's cgroup whether or not it exists yet.
    pub fn for_guest(layout: &Layout, name: &str) -> GuestCgroup {
        let v2 = layout.v2.as_ref().map(|root| root.join(PARENT).join(name));
        let mut dirs: Vec<PathBuf> = v2.iter().cloned().collect();
        dirs.extend(layout.v1.iter().map(|h| h.mount.join(PARENT).join(name)));
        GuestCgroup { dirs, v2, layout: layout.clone() }
    }

    /// Rebuilds the handle from directories recorded in the run state.
    pub fn from_dirs(layout: &Layout, dirs: Vec<PathBuf>) -> GuestCgroup {
        let v2 = layout.v2.as_ref().and_then(|root| dirs.iter().find(|d| d.starts_with(root)).cloned());
        GuestCgroup { dirs, v2, layout: layout.clone() }
    }

    /// Creates the cgroup in every hierarchy. A leftover empty cgroup of an
    /// earlier run is reused; one that still holds processes is an error (the
    /// guest, or something of it, is still running).
    pub fn create(layout: &Layout, name: &str) -> io::Result<GuestCgroup> {
        let cg = Self::for_guest(layout, name);
        if cg.exists() && !cg.pids()?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("the cgroup of guest {name:?} still holds processes; stop the guest first"),
            ));
        }
        let result = cg.create_dirs();
        if result.is_err() {
            let _ = cg.remove();
        }
        result.map(|()| cg)
    }

    pub(crate) fn create_dirs(&self) -> io::Result<()> {
        for dir in &self.dirs {
            // Another guest stopping at this moment may remove the shared
            // parent once it is empty; then the parent is made again.
            let mut tries = 0;
            loop {
                self.prepare_parent(dir)?;
                match mkdir(dir) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
                    other => break other?,
                }
            }
            if self.is_v1_cpuset(dir) {
                inherit_cpuset(dir.parent().expect("has parent"), dir)?;
            }
        }
        Ok(())
    }

    /// The `vserver` parent: it must exist, hand v2 controllers down, and
    /// (v1 cpuset) have cpus and mems before a child can hold tasks.
    fn prepare_parent(&self, dir: &Path) -> io::Result<()> {
        let parent = dir.parent().expect("has parent");
        let root = parent.parent().expect("has root");
        mkdir(parent)?;
        if self.v2.as_deref() == Some(dir) {
            enable_v2_controllers(root, parent)?;
        }
        if self.is_v1_cpuset(dir) {
            inherit_cpuset(root, parent)?;
        }
        Ok(())
    }

    fn is_v1_cpuset(&self, dir: &Path) -> bool {
        self.layout.v1_mount("cpuset").is_some_and(|m| dir.starts_with(m))
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.is_dir())
    }

    /// The cgroup2 directory (where the BPF hooks attach).
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    /// The directory where a controller's files are: its v1 hierarchy, or the
    /// cgroup2 directory when the controller is enabled there.
    pub fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        if let Some(mount) = self.layout.v1_mount(controller) {
            return self.dirs.iter().find(|d| d.starts_with(mount)).cloned();
        }
        let v2 = self.v2.as_ref()?;
        let enabled = fs::read_to_string(v2.parent()?.join("cgroup.subtree_control")).unwrap_or_default();
        enabled.split_whitespace().any(|c| c == controller).then(|| v2.clone())
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Moves a process into the cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> io::Result<()> {
        for dir in &self.dirs {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Device access for the v1 devices controller: deny all, then allow
    /// `rules` ("c 1:3 rwm"). cgroup v2 has no such files; there the fresh
    /// /dev and the missing CAP_MKNOD are what keep devices out.
    pub fn restrict_devices(&self, rules: &[&str]) -> io::Result<()> {
        let Some(dir) = self.layout.v1_mount("devices").and_then(|m| self.dirs.iter().find(|d| d.starts_with(m)))
        else {
            return Ok(());
        };
        write_file(&dir.join("devices.deny"), "a")?;
        for rule in rules {
            write_file(&dir.join("devices.allow"), rule)?;
        }
        Ok(())
    }

    /// Every process of the context, as host pids.
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let Some(dir) = self.dirs.iter().find(|d| d.is_dir()) else { return Ok(Vec::new()) };
        let text = match read_file(&dir.join("cgroup.procs")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Sends a signal to every process of the context.
    pub fn signal_all(&self, signal: i32) -> io::Result<()> {
        if signal == libc::SIGKILL {
            if let Some(kill) = self.v2.as_ref().map(|d| d.join("cgroup.kill")).filter(|k| k.exists()) {
                return write_file(&kill, "1");
            }
        }
        for pid in self.pids()? {
            // SAFETY: kill(2) with a pid read from the cgroup; ESRCH for a process that just exited is fine.
            unsafe { libc::kill(pid, signal) };
        }
        Ok(())
    }

    /// Kills whatever is left and removes the directories. Idempotent.
    pub fn remove(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if !self.pids()?.is_empty() {
                self.signal_all(libc::SIGKILL)?;
            }
            match self.rmdir_all() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => sleep(Duration::from_millis(5)),
            }
        }
    }

    fn rmdir_all(&self) -> io::Result<()> {
        for dir in &self.dirs {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io::Error::new(e.kind(), format!("removing {}: {e}", dir.display())))
                }
                _ => {}
            }
            // The shared parent goes with the last guest; while another
            // guest still has its cgroup there, rmdir fails and that is fine.
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io::Error::new(e.kind(), format!("creating cgroup {}: {e}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// A v1 cpuset cgroup accepts no task until its cpus and mems are set.
fn inherit_cpuset(parent: &Path, child: &Path) -> io::Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = child.join(file);
        if read_file(&own).map(|v| v.trim().is_empty()).unwrap_or(false) {
            write_file(&own, read_file(&parent.join(file))?.trim())?;
        }
    }
    Ok(())
}

/// Lets the guest cgroups use the controllers the host's cgroup2 root has
/// (none on a hybrid host). Controllers must be enabled top-down.
fn enable_v2_controllers(root: &Path, parent: &Path) -> io::Result<()> {
    let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> =
        V2_CONTROLLERS.iter().copied().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    for dir in [root, parent] {
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if wanted.iter().all(|c| enabled.split_whitespace().any(|e| e == *c)) {
            continue;
        }
        write_file(&dir.join("cgroup.subtree_control"), &line)?;
    }
    Ok(())
}
