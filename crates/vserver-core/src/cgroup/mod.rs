//! The cgroup layout of the host and the guest's own cgroup.
//!
//! Three layouts exist in the wild: v2-only (`/sys/fs/cgroup` is cgroup2; most
//! current hosts), hybrid (v1 controller hierarchies under `/sys/fs/cgroup/<ctrl>`
//! plus a controller-less cgroup2 mount at `/sys/fs/cgroup/unified`, where the
//! BPF hooks attach; this build machine), and pure v1. The layout is read
//! from the directory tree itself (a cgroup2 directory has
//! `cgroup.controllers`, a v1 one has not), so fixtures in a temp dir work the
//! same as the real mount.

pub mod device_filter;
pub(crate) mod guest;
mod tree;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use crate::sys::clone::CgroupEntry;
pub use guest::{join_v1, GuestCgroup, SupervisorSeat, MAX_DEPTH, MAX_DESCENDANTS, PARENT, PAYLOAD, SUPERVISOR};

/// How a guest's pid 1 (and joiners) get into the guest's cgroup on this
/// kernel: created inside it (clone3 CLONE_INTO_CGROUP, kernel >= 5.7) or
/// moved by a cgroup.procs write after fork. For `vserver-info`.
pub fn entry_path() -> CgroupEntry {
    crate::sys::clone::probe_cgroup_entry()
}

/// v1 hierarchies a guest joins. The named `systemd` hierarchy is the host's.
const V1_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "net_cls", "perf_event"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Controllers bound to this hierarchy (`cpu,cpuacct` is two).
    pub controllers: Vec<String>,
    pub mount: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, if any.
    pub v2: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    V2Only,
    Hybrid,
    V1Only,
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayoutKind::V2Only => "cgroup v2 only",
            LayoutKind::Hybrid => "hybrid (cgroup v1 controllers and a cgroup2 mount)",
            LayoutKind::V1Only => "cgroup v1 only",
        })
    }
}

impl Layout {
    pub fn detect(root: &Path) -> io::Result<Layout> {
        if is_v2_dir(root) {
            return Ok(Layout { v1: Vec::new(), v2: Some(root.to_path_buf()) });
        }
        let entries =
            fs::read_dir(root).map_err(|e| io::Error::new(e.kind(), format!("{}: cannot read the cgroup mounts: {e}", root.display())))?;
        let mut layout = Layout { v1: Vec::new(), v2: None };
        let mut names: Vec<_> = entries.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            // cpu -> cpu,cpuacct style aliases are symlinks; the real directory counts once.
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(true) || !path.join("cgroup.procs").exists() {
                continue;
            }
            if is_v2_dir(&path) {
                layout.v2 = Some(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let controllers: Vec<String> = name.split(',').filter(|c| V1_CONTROLLERS.contains(c)).map(str::to_string).collect();
            if !controllers.is_empty() {
                layout.v1.push(V1Hierarchy { controllers, mount: path });
            }
        }
        if layout.v1.is_empty() && layout.v2.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no cgroup hierarchy is mounted here (neither cgroup2 nor v1 controllers)", root.display()),
            ));
        }
        Ok(layout)
    }

    pub fn kind(&self) -> LayoutKind {
        match (self.v1.is_empty(), self.v2.is_some()) {
            (true, _) => LayoutKind::V2Only,
            (false, true) => LayoutKind::Hybrid,
            (false, false) => LayoutKind::V1Only,
        }
    }

    /// The v1 hierarchy a controller is bound to, if it is a v1 controller here.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1.iter().find(|h| h.controllers.iter().any(|c| c == controller)).map(|h| h.mount.as_path())
    }

    /// Controllers the cgroup2 root offers (empty on hybrid hosts, where the
    /// v1 hierarchies hold them all).
    pub fn v2_controllers(&self) -> Vec<String> {
        self.v2
            .as_ref()
            .and_then(|root| fs::read_to_string(root.join("cgroup.controllers")).ok())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn is_v2_dir(dir: &Path) -> bool {
    dir.join("cgroup.controllers").exists() && dir.join("cgroup.procs").exists()
}

/// Makes a cgroup below the shared `vserver` parent, which goes with the
/// last guest or chbind in it: one that stops at this moment may remove
/// the empty parent between `make`'s mkdir of it (and its set-up) and of
/// the cgroup itself. Then `make` (parent and cgroup) runs again.
pub fn make_below_shared_parent(mut make: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match make() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 20 => tries += 1,
            other => return other,
        }
    }
}

/// Removes the cgroup `dir` and every cgroup below it, then the shared
/// parent if `dir` was the last in it (while others remain, its rmdir
/// fails and that is fine). A cgroup can stay busy for a moment after its
/// last process was reaped: tried again for up to `patience`.
pub fn remove_with_shared_parent(dir: &Path, patience: std::time::Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match tree::remove_tree(dir, &[PAYLOAD, SUPERVISOR]) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(io::Error::new(e.kind(), format!("removing {}: {e}", dir.display()))),
        }
    }
    if let Some(parent) = dir.parent() {
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

/// Writes a cgroup control file, naming it in the error.
pub fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("writing {value:?} to {}: {e}", path.display())))
}

pub fn read_file(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
