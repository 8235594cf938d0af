//! The guest's own cgroup, `vserver/NAME` in every hierarchy, and its two
//! children (INTERFACES §1):
//!
//! - `vserver/NAME` holds the context-wide limits, the device filter and the
//!   IP set's BPF programs; they bound and apply to everything below it;
//! - `vserver/NAME/payload` holds every guest process. On cgroup2 it is the
//!   root of the guest's cgroup namespace: a systemd guest mounts it at
//!   /sys/fs/cgroup and makes sub-cgroups there, bounded by `vserver/NAME`,
//!   which it never sees;
//! - `vserver/NAME/supervisor` holds the monitor, so its console relay (and
//!   later seccomp supervision) is charged to the guest.
//!
//! Everything that asks "which processes are the guest's" or "where do new
//! guest processes go" asks this type.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::tree::{for_each_cgroup, read_procs_at, remove_tree};
use super::{read_file, write_file, Layout};

/// Every guest cgroup lives under this parent in each hierarchy.
pub const PARENT: &str = "vserver";
/// The child holding every guest process.
pub const PAYLOAD: &str = "payload";
/// The child holding the guest's monitor.
pub const SUPERVISOR: &str = "supervisor";

/// v2 controllers enabled for guests where the host's cgroup2 root has them.
const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids", "io"];

/// cgroup.max.descendants of `vserver/NAME`: a systemd guest makes one
/// cgroup per unit and session (a Debian guest with a few services: ~40);
/// each costs the host kernel memory, so a guest may not make unboundedly many.
pub const MAX_DESCENDANTS: u32 = 1024;
/// cgroup.max.depth of `vserver/NAME`: payload is 1, systemd's deepest
/// (payload/user.slice/user-0.slice/user@0.service/app.slice/x.service) ~6.
pub const MAX_DEPTH: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCgroup {
    /// `vserver/NAME`, one directory per hierarchy, v2 (if any) first.
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

    /// Rebuilds the handle from the `vserver/NAME` directories recorded in
    /// the run state.
    pub fn from_dirs(layout: &Layout, dirs: Vec<PathBuf>) -> GuestCgroup {
        let v2 = layout.v2.as_ref().and_then(|root| dirs.iter().find(|d| d.starts_with(root)).cloned());
        GuestCgroup { dirs, v2, layout: layout.clone() }
    }

    /// Creates `vserver/NAME` in every hierarchy (not yet its children: the
    /// v1 devices controller takes a "deny all" only while a cgroup has no
    /// children, see `create_children`). A leftover empty tree of an earlier
    /// run (a crash) is removed first; one that still holds processes is an
    /// error (the guest, or something of it, is still running).
    pub fn create(layout: &Layout, name: &str) -> io::Result<GuestCgroup> {
        let cg = Self::for_guest(layout, name);
        if cg.exists() {
            if !cg.all_pids()?.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("the cgroup of guest {name:?} still holds processes; stop the guest first"),
                ));
            }
            cg.remove()?;
        }
        let result = cg.create_dirs();
        if result.is_err() {
            let _ = cg.remove();
        }
        result.map(|()| cg)
    }

    pub(crate) fn create_dirs(&self) -> io::Result<()> {
        for dir in &self.dirs {
            // (Also between the parent's mkdir and the write of its cgroup.subtree_control.)
            super::make_below_shared_parent(|| self.prepare_parent(dir).and_then(|()| mkdir(dir)))?;
            if self.is_v1_cpuset(dir) {
                inherit_cpuset(dir.parent().expect("has parent"), dir)?;
            }
            if self.v2.as_deref() == Some(dir) {
                // Down to the children: payload (the guest's delegated
                // subtree) gets every controller vserver/NAME has.
                enable_v2_controllers(&self.layout, &[dir])?;
                write_file(&dir.join("cgroup.max.descendants"), &MAX_DESCENDANTS.to_string())?;
                write_file(&dir.join("cgroup.max.depth"), &MAX_DEPTH.to_string())?;
            }
        }
        Ok(())
    }

    /// `payload` and `supervisor` in every hierarchy, after everything that
    /// must be set on `vserver/NAME` before it has children (devices).
    pub fn create_children(&self) -> io::Result<()> {
        for dir in &self.dirs {
            for child in [PAYLOAD, SUPERVISOR] {
                let d = dir.join(child);
                mkdir(&d)?;
                if self.is_v1_cpuset(dir) {
                    // A v1 cpuset cgroup holds no task before it has cpus and mems.
                    inherit_cpuset(dir, &d)?;
                }
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
            enable_v2_controllers(&self.layout, &[root, parent])?;
        }
        if self.is_v1_cpuset(dir) {
            inherit_cpuset(root, parent)?;
        }
        Ok(())
    }

    fn is_v1_cpuset(&self, dir: &Path) -> bool {
        self.layout.v1_mount("cpuset").is_some_and(|m| dir.starts_with(m))
    }

    /// `vserver/NAME` in every hierarchy (what the run state records).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `vserver/NAME/payload` in every hierarchy: where guest processes go.
    pub fn payload_dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join(PAYLOAD)).collect()
    }

    /// The cgroup2 payload directory (the root of a systemd guest's tree).
    pub fn payload_v2(&self) -> Option<PathBuf> {
        self.v2.as_ref().map(|d| d.join(PAYLOAD))
    }

    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.is_dir())
    }

    /// The cgroup2 `vserver/NAME` directory (where the BPF hooks attach).
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    /// The `vserver/NAME` directory where a controller's files are: its v1
    /// hierarchy, or the cgroup2 directory when the controller is enabled there.
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

    /// A descriptor of the cgroup2 payload directory, for clone3's
    /// CLONE_INTO_CGROUP.
    pub fn open_payload_v2(&self) -> io::Result<Option<OwnedFd>> {
        let Some(dir) = self.payload_v2() else { return Ok(None) };
        let f = fs::File::open(&dir).map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", dir.display())))?;
        Ok(Some(OwnedFd::from(f)))
    }

    /// Hands the cgroup2 payload to the guest's root user of a user
    /// namespace (`uid`, `gid` on the host), as the kernel's delegation
    /// model has it: the directory and the files that create, fill and
    /// enable sub-cgroups. Its limits stay root's, and vserver/NAME's bound them.
    pub fn delegate_payload(&self, uid: u32, gid: u32) -> io::Result<()> {
        let Some(dir) = self.payload_v2() else { return Ok(()) };
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("cgroup.threads"), dir.join("cgroup.subtree_control")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|e| io::Error::new(e.kind(), format!("delegating {}: {e}", p.display())))?;
        }
        Ok(())
    }

    /// Where a process joining the running guest goes (`exec`, `enter`):
    /// payload in every v1 hierarchy; on cgroup2 the cgroup of the guest's
    /// pid 1, which lies within payload. A systemd guest keeps itself in
    /// payload/init.scope and may enable controllers in payload, which can
    /// then hold no process of its own; pid 1's cgroup always can.
    pub fn joiner_dirs(&self, init_pid: i32) -> io::Result<Vec<PathBuf>> {
        let text = read_file(Path::new(&format!("/proc/{init_pid}/cgroup")))?;
        Ok(self.joiner_dirs_from(&text))
    }

    pub(crate) fn joiner_dirs_from(&self, init_cgroups: &str) -> Vec<PathBuf> {
        let mut dirs = self.payload_dirs();
        let (Some(v2), Some(v2_root)) = (self.v2.as_ref(), self.layout.v2.as_ref()) else { return dirs };
        let payload = v2.join(PAYLOAD);
        let own = parse_own_cgroups(&self.layout, init_cgroups).into_iter().find(|(m, _)| m == v2_root).map(|(_, d)| d);
        if let Some(own) = own.filter(|d| d.starts_with(&payload) && !d.components().any(|c| c == std::path::Component::ParentDir)) {
            if let Some(slot) = dirs.iter_mut().find(|d| **d == payload) {
                *slot = own;
            }
        }
        dirs
    }

    /// Moves a process into payload in every hierarchy (`except_v2`: it was
    /// created inside the cgroup2 payload already).
    pub fn enter_payload(&self, pid: i32, except_v2: bool) -> io::Result<()> {
        for dir in &self.dirs {
            if except_v2 && self.v2.as_ref() == Some(dir) {
                continue;
            }
            write_file(&dir.join(PAYLOAD).join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Moves a process into payload in every hierarchy.
    pub fn add_process(&self, pid: i32) -> io::Result<()> {
        self.enter_payload(pid, false)
    }

    /// The `tasks` files of payload in every v1 hierarchy, open for writing:
    /// a single-threaded process writes "0" to each ([`join_v1`]) to enter.
    pub fn open_payload_v1_tasks(&self) -> io::Result<Vec<fs::File>> {
        self.v1_dirs().map(|d| open_for_write(&d.join(PAYLOAD).join("tasks"))).collect()
    }

    fn v1_dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.dirs.iter().filter(move |d| self.v2.as_ref() != Some(*d))
    }

    /// Moves the calling process (the monitor) into `supervisor` in every
    /// hierarchy; the returned seat takes it back where it came from.
    /// (The cgroup2 write waits for an RCU grace period: see
    /// [`GuestCgroup::open_supervisor_v2`] for the way around it.)
    pub fn enter_supervisor(&self) -> io::Result<SupervisorSeat> {
        let seat = self.seat_from_here()?;
        if let Some(v2) = &self.v2 {
            // "0" is the writing process.
            write_file(&v2.join(SUPERVISOR).join("cgroup.procs"), "0")?;
        }
        self.enter_supervisor_v1()?;
        Ok(seat)
    }

    /// Where the calling process is now, to go back there before the
    /// cgroups are removed.
    pub fn seat_from_here(&self) -> io::Result<SupervisorSeat> {
        Ok(SupervisorSeat { origin: own_cgroups(&self.layout)?, v2: self.layout.v2.clone() })
    }

    /// A descriptor of the cgroup2 `supervisor`, for a process that forks
    /// itself into it (CLONE_INTO_CGROUP): unlike a write to cgroup.procs,
    /// which takes the kernel's threadgroup lock and waits for an RCU grace
    /// period (5-20 ms on a busy host), creating a process inside a cgroup
    /// waits for nothing.
    pub fn open_supervisor_v2(&self) -> io::Result<Option<OwnedFd>> {
        let Some(dir) = self.v2.as_ref().map(|d| d.join(SUPERVISOR)) else { return Ok(None) };
        let f = fs::File::open(&dir).map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", dir.display())))?;
        Ok(Some(OwnedFd::from(f)))
    }

    /// Moves the calling thread into `supervisor` in every v1 hierarchy
    /// (the monitor is single-threaded: the whole process). `tasks` moves
    /// one thread and takes no threadgroup lock, so it waits for nothing.
    pub fn enter_supervisor_v1(&self) -> io::Result<()> {
        for dir in self.v1_dirs() {
            write_file(&dir.join(SUPERVISOR).join("tasks"), "0")?;
        }
        Ok(())
    }

    /// Device access for the v1 devices controller: deny all, then allow
    /// `rules` ("c 1:3 rwm"). cgroup v2 has no such files; there the device
    /// BPF program does this. Only before `create_children`: the kernel
    /// takes "a" only for a cgroup without children.
    pub fn restrict_devices(&self, rules: &[&str]) -> io::Result<()> {
        let Some(dir) = self.layout.v1_mount("devices").and_then(|m| self.dirs.iter().find(|d| d.starts_with(m))) else {
            return Ok(());
        };
        write_file(&dir.join("devices.deny"), "a")?;
        for rule in rules {
            write_file(&dir.join("devices.allow"), rule)?;
        }
        Ok(())
    }

    /// Every process of the guest (payload and every sub-cgroup the guest
    /// made there; not the monitor), as host pids. Read from cgroup2 where
    /// there is one: only there can the guest have made sub-cgroups.
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let Some(dir) = self.dirs.iter().find(|d| d.is_dir()) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        // `vserver/NAME` itself and payload's subtree; cgroups made under
        // the old layout (processes directly in NAME) count too.
        for_each_cgroup(dir, &[SUPERVISOR], &mut |fd| read_procs_at(fd, &mut out))?;
        Ok(out)
    }

    /// Every process anywhere below `vserver/NAME` in any hierarchy, the
    /// monitor included.
    pub fn all_pids(&self) -> io::Result<Vec<i32>> {
        let mut out = Vec::new();
        for dir in self.dirs.iter().filter(|d| d.is_dir()) {
            for_each_cgroup(dir, &[], &mut |fd| read_procs_at(fd, &mut out))?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Sends a signal to every guest process.
    pub fn signal_all(&self, signal: i32) -> io::Result<()> {
        if signal == libc::SIGKILL {
            if let Some(kill) = self.payload_v2().map(|d| d.join("cgroup.kill")).filter(|k| k.exists()) {
                write_file(&kill, "1")?;
            }
        }
        for pid in self.pids()? {
            // ESRCH for a process that just exited is fine.
            let _ = crate::sys::signal::kill(pid, signal);
        }
        Ok(())
    }

    /// Kills every guest process and waits until they are gone (up to 5 s),
    /// leaving the cgroups and the monitor in place: what must happen
    /// before the IP set's programs may be detached.
    pub fn kill_guest(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.pids()?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("guest processes {left:?} survived SIGKILL for 5 s")));
            }
            self.signal_all(libc::SIGKILL)?;
            sleep(Duration::from_millis(2));
        }
    }

    /// Kills whatever is left below `vserver/NAME` (a monitor that is gone
    /// included) and removes every directory, deepest first: the children,
    /// every sub-cgroup the guest made, `vserver/NAME`, and the shared
    /// parent when it is the last. Idempotent. The calling process must not
    /// be inside (the monitor leaves `supervisor` first).
    pub fn remove(&self) -> io::Result<()> {
        // Empty already (a stopped guest's, after its monitor's end): a
        // cgroup with a process in it refuses rmdir, so this frees nothing
        // the loop below would keep.
        if self.rmdir_all().is_ok() {
            return Ok(());
        }
        let me = std::process::id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.all_pids()?;
            if left.contains(&me) {
                return Err(io::Error::other("cannot remove the guest's cgroup from inside it"));
            }
            if !left.is_empty() {
                self.kill_everything(&left)?;
            }
            match self.rmdir_all() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => sleep(Duration::from_millis(5)),
            }
        }
    }

    /// What the monitor removes at a `vserver stop` while it is still in the
    /// cgroup2 `supervisor` (having left the v1 ones, [`SupervisorSeat::leave_v1`]):
    /// the v1 trees and the cgroup2 payload. Leaving the cgroup2 supervisor
    /// would take a write to cgroup.procs, which waits for an RCU grace
    /// period (5-20 ms); instead the monitor ends, which takes it out, and
    /// `vserver stop`, which waits for that end, removes the rest ([`remove`](Self::remove)).
    /// The guest's processes must be gone ([`kill_guest`](Self::kill_guest)).
    pub fn remove_all_but_own_v2(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v2_payload = self.v2.as_ref().map(|d| d.join(PAYLOAD));
            let mut result = Ok(());
            for dir in self.v1_dirs().chain(v2_payload.iter()) {
                let known: &[&str] = if self.v2_payload_is(dir) { &[] } else { &[PAYLOAD, SUPERVISOR] };
                match remove_tree(dir, known) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        result = Err(io::Error::new(e.kind(), format!("removing {}: {e}", dir.display())));
                    }
                    _ => {}
                }
                if self.v2_payload_is(dir) {
                    continue;
                }
                // The shared parent goes with the last guest (see rmdir_all).
                if let Some(parent) = dir.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
            match result {
                // A process that was just killed can keep its cgroup busy for a moment.
                Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(5)),
                other => return other,
            }
        }
    }

    fn v2_payload_is(&self, dir: &Path) -> bool {
        self.v2.as_ref().is_some_and(|v2| dir == v2.join(PAYLOAD))
    }

    fn kill_everything(&self, pids: &[i32]) -> io::Result<()> {
        if let Some(kill) = self.v2.as_ref().map(|d| d.join("cgroup.kill")).filter(|k| k.exists()) {
            write_file(&kill, "1")?;
        }
        for pid in pids {
            let _ = crate::sys::signal::kill(*pid, libc::SIGKILL);
        }
        Ok(())
    }

    fn rmdir_all(&self) -> io::Result<()> {
        for dir in &self.dirs {
            // No patience here: remove() kills what is left and tries again.
            super::remove_with_shared_parent(dir, Duration::ZERO)?;
        }
        Ok(())
    }
}

/// Where the monitor was before it entered `supervisor`.
#[derive(Debug)]
pub struct SupervisorSeat {
    origin: Vec<(PathBuf, PathBuf)>,
    /// The cgroup2 mount, whose origin is left by cgroup.procs.
    v2: Option<PathBuf>,
}

impl SupervisorSeat {
    /// Per hierarchy, the file through which a process goes back to where
    /// the monitor came from, and the hierarchy root's for when that cgroup
    /// is gone by then (a login session's scope ends with the session):
    /// `tasks` in v1, `cgroup.procs` in cgroup2. For the host commands the
    /// monitor runs.
    pub fn origin_files(&self) -> Vec<[PathBuf; 2]> {
        self.origin
            .iter()
            .map(|(mount, dir)| {
                let file = if self.v2.as_ref() == Some(mount) { "cgroup.procs" } else { "tasks" };
                [dir.join(file), mount.join(file)]
            })
            .collect()
    }

    /// Takes the calling process back to the cgroups it came from (the
    /// hierarchy's root where one is gone), so that `supervisor` can go.
    /// v1 hierarchies through `tasks` (the single-threaded monitor, no
    /// threadgroup lock), cgroup2 through cgroup.procs.
    pub fn leave(self) -> io::Result<()> {
        for (mount, dir) in &self.origin {
            let file = if self.v2.as_ref() == Some(mount) { "cgroup.procs" } else { "tasks" };
            if write_file(&dir.join(file), "0").is_err() {
                write_file(&mount.join(file), "0")?;
            }
        }
        Ok(())
    }
}

impl SupervisorSeat {
    /// Takes the calling process back to where it came from in the v1
    /// hierarchies only (see [`GuestCgroup::remove_all_but_own_v2`]).
    pub fn leave_v1(self) -> io::Result<()> {
        for (mount, dir) in self.origin.iter().filter(|(m, _)| self.v2.as_ref() != Some(m)) {
            if write_file(&dir.join("tasks"), "0").is_err() {
                write_file(&mount.join("tasks"), "0")?;
            }
        }
        Ok(())
    }
}

/// Enters the cgroups whose `tasks` files are given ("0": the calling
/// thread; callers are single-threaded, so the whole process).
pub fn join_v1(tasks: &[fs::File]) -> io::Result<()> {
    use std::io::Write;
    for mut f in tasks {
        f.write_all(b"0")?;
    }
    Ok(())
}

fn open_for_write(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))
}

/// (hierarchy mount, directory) of the calling process in every hierarchy
/// of `layout`, from /proc/self/cgroup.
fn own_cgroups(layout: &Layout) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    Ok(parse_own_cgroups(layout, &read_file(Path::new("/proc/self/cgroup"))?))
}

pub(crate) fn parse_own_cgroups(layout: &Layout, text: &str) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let rel = path.trim_start_matches('/');
        let mount = if controllers.is_empty() {
            layout.v2.clone()
        } else {
            let names: Vec<&str> = controllers.split(',').collect();
            layout.v1.iter().find(|h| h.controllers.iter().any(|c| names.contains(&c.as_str()))).map(|h| h.mount.clone())
        };
        if let Some(mount) = mount {
            out.push((mount.clone(), mount.join(rel)));
        }
    }
    out
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

/// Lets the children of each of `dirs` use the controllers the host's
/// cgroup2 root has (none on a hybrid host). Controllers must be enabled
/// top-down: `dirs` in order from the root.
fn enable_v2_controllers(layout: &Layout, dirs: &[&Path]) -> io::Result<()> {
    let available = layout.v2_controllers();
    let wanted: Vec<&str> = V2_CONTROLLERS.iter().copied().filter(|c| available.iter().any(|a| a == c)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let line = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
    for dir in dirs {
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if wanted.iter().all(|c| enabled.split_whitespace().any(|e| e == *c)) {
            continue;
        }
        write_file(&dir.join("cgroup.subtree_control"), &line)?;
    }
    Ok(())
}
