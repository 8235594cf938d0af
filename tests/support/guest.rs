//! A temporary vserver world (config root, guest base, run dir) and guests
//! in it, cleaned up on drop: running guests stopped, cgroups removed, mounts
//! under the temp dir detached, files (also immutable ones) removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{bin, describe, run, unique};

pub struct World {
    pub root: PathBuf,
    pub confdir: PathBuf,
    pub vdirbase: PathBuf,
    pub rundir: PathBuf,
    guests: std::cell::RefCell<Vec<String>>,
}

impl World {
    pub fn new(tag: &str) -> World {
        let root = std::env::temp_dir().join(format!("vserver-test-{tag}-{}-{}", std::process::id(), unique()));
        let _ = vserver_core::builder::remove_tree(&root);
        let w = World {
            confdir: root.join("etc"),
            vdirbase: root.join("vservers"),
            rundir: root.join("run"),
            root,
            guests: Default::default(),
        };
        fs::create_dir_all(w.confdir.join(".defaults")).unwrap();
        fs::create_dir_all(&w.vdirbase).unwrap();
        // A kernel without Landlock scoping (before 6.12) starts a guest on
        // the host network only when its config accepts shared abstract unix
        // sockets: the test worlds say so there (tests/guest_net.rs checks
        // the refusal itself).
        if let vserver_core::net::abstract_unix::Support::Missing { .. } = vserver_core::net::abstract_unix::probe() {
            let flag = vserver_core::net::abstract_unix::SHARED_FLAG;
            fs::write(w.confdir.join(".defaults/cflags"), format!("{flag}\n")).unwrap();
        }
        w
    }

    /// A command of one of our binaries, pointed at this world.
    pub fn cmd(&self, binary: &str) -> Command {
        let mut c = Command::new(bin(binary));
        c.env("VSERVER_CONFDIR", &self.confdir)
            .env("VSERVER_VDIRBASE", &self.vdirbase)
            .env("VSERVER_RUNDIR", &self.rundir)
            .env_remove("VSERVER_CGROUP_ROOT");
        c
    }

    pub fn vserver(&self, args: &[&str]) -> Output {
        run(self.cmd("vserver").args(args))
    }

    /// `vserver NAME ARGS...`, asserting success.
    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec![name];
        all.extend_from_slice(args);
        let out = self.vserver(&all);
        assert!(out.status.success(), "vserver {}: {}", all.join(" "), describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A unique guest name and xid, registered for clean-up.
    pub fn new_guest_name(&self, base: &str) -> (String, u32) {
        let n = unique();
        let name = format!("{base}{}-{n}", std::process::id() % 100000);
        let xid = 2000 + ((std::process::id() % 2000) * 20 + n) % 47000;
        self.guests.borrow_mut().push(name.clone());
        (name, xid)
    }

    /// Builds a busybox guest (not started).
    pub fn busybox_guest(&self, base: &str) -> (String, u32) {
        let (name, xid) = self.new_guest_name(base);
        self.ok(&name, &["build", "-m", "busybox", "--context", &xid.to_string()]);
        (name, xid)
    }

    pub fn guest_conf(&self, name: &str) -> PathBuf {
        self.confdir.join(name)
    }

    pub fn guest_root(&self, name: &str) -> PathBuf {
        self.vdirbase.join(name)
    }

    pub fn write_conf(&self, name: &str, rel: &str, content: &str) {
        let p = self.guest_conf(name).join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// Runs a shell command inside a running guest.
    pub fn sh(&self, name: &str, script: &str) -> Output {
        self.vserver(&[name, "exec", "/bin/sh", "-c", script])
    }

    pub fn sh_ok(&self, name: &str, script: &str) -> String {
        let out = self.sh(name, script);
        assert!(out.status.success(), "in guest {name}: {script}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Asserts that nothing of a guest remains on the host: cgroups, run
    /// state, processes in its cgroup, mounts under the test root.
    pub fn assert_nothing_left(&self, name: &str) {
        for dir in cgroup_dirs(name) {
            assert!(!dir.exists(), "cgroup {} was left behind", dir.display());
        }
        assert!(!self.rundir.join(name).join("state.json").exists(), "run state of {name} was left behind");
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let root = self.root.to_string_lossy();
        assert!(!mounts.contains(&*root), "mounts under {root} were left behind:\n{mounts}");
    }
}

/// Where a guest's cgroup would be, in every hierarchy of this host.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("vserver").join(name)).collect();
    dirs.push(Path::new("/sys/fs/cgroup/vserver").join(name));
    dirs
}

impl Drop for World {
    fn drop(&mut self) {
        for name in self.guests.borrow().iter() {
            let _ = run(self.cmd("vserver").args([name.as_str(), "stop", "--timeout", "2"]));
            for dir in cgroup_dirs(name) {
                kill_and_remove_cgroup(&dir);
                if let Some(parent) = dir.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
        }
        detach_mounts_under(&self.root);
        let _ = vserver_core::builder::remove_tree(&self.root);
    }
}

/// A guest cgroup and everything below it (payload, supervisor, what a
/// systemd guest made): its processes killed, then removed deepest first.
fn kill_and_remove_cgroup(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            kill_and_remove_cgroup(&e.path());
        }
    }
    for _ in 0..100 {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                // SAFETY: killing processes of the test's own guest cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn detach_mounts_under(root: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else { return };
    let root = root.to_string_lossy().into_owned();
    let mut targets: Vec<&str> = mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|t| t.starts_with(&root)).collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let c = std::ffi::CString::new(t).unwrap();
        // SAFETY: unmounting a path under the test's own temp dir.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
