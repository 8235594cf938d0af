//! Helpers of the limits and vserver-stat integration tests: a "running
//! guest" made of a real cgroup `vserver/<name>` in every hierarchy, a shell
//! moved into it, and the run state file the monitor would write, so the
//! real `vlimit` and `vserver-stat` binaries can be run against it. Every
//! resource is released in `Drop`, also when a test fails.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids"];

/// Skips the test (returns false) when a precondition is missing, or fails
/// it when the CI environment variable is set.
pub fn precondition(ok: bool, what: &str) -> bool {
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("precondition missing in CI: {what}");
        }
        eprintln!("skipped: {what}");
    }
    ok
}

pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    precondition(unsafe { libc::geteuid() } == 0, "needs root")
        && precondition(
            Path::new(CGROUP_ROOT).join("cgroup.procs").exists() || Path::new(CGROUP_ROOT).join("pids/cgroup.procs").exists(),
            "needs a cgroup mount at /sys/fs/cgroup",
        )
}

/// A binary of the workspace, built by `cargo build --workspace`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// One hierarchy the guest cgroup is made in.
struct Hierarchy {
    mount: PathBuf,
    v2: bool,
}

fn hierarchies() -> Vec<Hierarchy> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![Hierarchy { mount: root.into(), v2: true }];
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(root).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_symlink() || !e.path().join("cgroup.procs").exists() {
            continue;
        }
        if e.path().join("cgroup.controllers").exists() {
            out.push(Hierarchy { mount: e.path(), v2: true });
        } else if name.split(',').any(|c| CONTROLLERS.contains(&c)) {
            out.push(Hierarchy { mount: e.path(), v2: false });
        }
    }
    out
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestGuest {
    pub name: String,
    pub xid: u32,
    pub root: PathBuf,
    pub dirs: Vec<PathBuf>,
    made_parents: Vec<PathBuf>,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
}

impl TestGuest {
    /// Makes the cgroup and starts `sh -c 'read go; SCRIPT'` in it; the
    /// script runs once `go()` is called.
    pub fn start(tag: &str, xid: u32, script: &str) -> TestGuest {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("vst-{tag}-{}-{n}", std::process::id());
        let root = std::env::temp_dir().join(format!("{name}-tree"));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("conf").join(&name)).unwrap();
        fs::create_dir_all(root.join("run")).unwrap();
        fs::write(root.join("conf").join(&name).join("context"), format!("{xid}\n")).unwrap();
        let mut guest = TestGuest { name, xid, root, dirs: Vec::new(), made_parents: Vec::new(), child: None, stdin: None, stdout: None };
        guest.make_cgroups();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        guest.stdin = child.stdin.take();
        guest.stdout = child.stdout.take().map(BufReader::new);
        let pid = child.id();
        guest.child = Some(child);
        for dir in &guest.dirs {
            fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap_or_else(|e| panic!("moving into {}: {e}", dir.display()));
        }
        guest.write_run_state(pid as i32);
        guest
    }

    fn make_cgroups(&mut self) {
        for h in hierarchies() {
            let parent = h.mount.join("vserver");
            let dir = parent.join(&self.name);
            // Tests run in parallel and the last one out removes the shared
            // parent: make it (again) until the guest's own directory exists.
            let mut attempt = 0;
            loop {
                match fs::create_dir(&parent) {
                    Ok(()) => self.made_parents.push(parent.clone()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("creating {}: {e}", parent.display()),
                }
                if h.v2 {
                    enable_v2(&h.mount, &parent);
                }
                match fs::create_dir(&dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 10 => attempt += 1,
                    other => break other.unwrap(),
                }
            }
            self.dirs.push(dir.clone());
            if !h.v2 && h.mount.file_name().unwrap().to_string_lossy().split(',').any(|c| c == "cpuset") {
                for (d, from) in [(&parent, &h.mount), (&dir, &parent)] {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        if fs::read_to_string(d.join(f)).unwrap().trim().is_empty() {
                            fs::write(d.join(f), fs::read_to_string(from.join(f)).unwrap().trim()).unwrap();
                        }
                    }
                }
            }
        }
    }

    /// Lists this guest in another run dir too (to show several guests at once).
    pub fn register_in(&self, rundir: &Path) {
        let from = self.rundir().join(&self.name);
        fs::create_dir_all(rundir.join(&self.name)).unwrap();
        fs::copy(from.join("state.json"), rundir.join(&self.name).join("state.json")).unwrap();
    }

    fn write_run_state(&self, pid: i32) {
        let me = std::process::id() as i32;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let state = serde_json::json!({
            "name": self.name,
            "xid": self.xid,
            "init": { "pid": pid, "start_time": start_time(pid) },
            "monitor": { "pid": me, "start_time": start_time(me) },
            "started_at": now,
            "cgroups": self.dirs,
        });
        let dir = self.root.join("run").join(&self.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("state.json"), serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    }

    pub fn confdir(&self) -> PathBuf {
        self.root.join("conf")
    }

    pub fn rundir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The directory of one controller (v1 hierarchy or the v2 directory).
    pub fn controller_dir(&self, controller: &str) -> PathBuf {
        self.dirs
            .iter()
            .find(|d| {
                let m = d.parent().unwrap().parent().unwrap();
                m.file_name().unwrap().to_string_lossy().split(',').any(|c| c == controller)
            })
            .or_else(|| self.dirs.iter().find(|d| d.join("cgroup.controllers").exists()))
            .unwrap()
            .clone()
    }

    pub fn go(&mut self) {
        self.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }

    pub fn send(&mut self, line: &str) {
        self.stdin.as_mut().unwrap().write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// One line of the shell's output (blocks until it comes).
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.as_mut().unwrap().read_line(&mut line).unwrap();
        line
    }

    /// Closes stdin and collects the rest of the shell's output and its exit status.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the guest's shell did not finish in {timeout:?}");
            sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        self.stdout.take().unwrap().read_to_string(&mut rest).unwrap();
        (status, rest)
    }

    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.dirs[0].join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
    }

    /// Runs a tool with this guest's config and run dirs.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(bin(tool))
            .args(args)
            .env("VSERVER_CONFDIR", self.confdir())
            .env("VSERVER_RUNDIR", self.rundir())
            .env_remove("VSERVER_CGROUP_ROOT")
            .output()
            .unwrap()
    }

    pub fn run_ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(out.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn stats_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.run_ok("vlimit", &["-c", &self.name, "--stats", "--json"])).unwrap()
    }
}

fn enable_v2(root: &Path, parent: &Path) {
    let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> =
        ["cpu", "cpuset", "memory", "pids"].into_iter().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
    for dir in [root, parent] {
        for c in &wanted {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

pub fn start_time(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

impl Drop for TestGuest {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.dirs.first().map(|_| self.procs()).unwrap_or_default();
            for pid in &pids {
                // SAFETY: kill(2) on pids read from our own test cgroup.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            if let Some(c) = self.child.as_mut() {
                let _ = c.try_wait();
            }
            let all_gone = self.dirs.iter().rev().all(|d| !d.exists() || fs::remove_dir(d).is_ok());
            if all_gone || Instant::now() > deadline {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The parents, also those another test made: the last one out removes them.
        let parents: Vec<PathBuf> = self.dirs.iter().filter_map(|d| d.parent().map(Path::to_path_buf)).collect();
        for p in self.made_parents.iter().chain(&parents) {
            let _ = fs::remove_dir(p);
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}
