//! Copy-on-write test guests: a World's guest run as a unified guest's
//! process tree by tests/support/bin/cow_guest.rs (vs-cow-guest), in a
//! cgroup of its own under `<cgroup2>/vserver/`, supervised by a
//! `vserver_core` Supervisor in that helper, as the monitor will do.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use vserver_core::unify::cow::Stats;

use super::describe;
use super::guest::World;

/// The cgroup2 mount of this host (`unified` on hybrid hosts).
pub fn cgroup2_root() -> Option<PathBuf> {
    let layout = vserver_core::cgroup::Layout::detect(Path::new("/sys/fs/cgroup")).ok()?;
    layout.v2.filter(|v2| v2.join("cgroup.procs").exists())
}

/// A guest's cgroup for the test (`<cgroup2>/vserver/NAME`), killed and
/// removed on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let root = cgroup2_root().expect("a cgroup2 mount");
        let parent = root.join("vserver");
        let dir = parent.join(name);
        for _ in 0..5 {
            let _ = std::fs::create_dir(&parent);
            match std::fs::create_dir(&dir) {
                Ok(()) => break,
                // Another test's last guest removed the shared parent meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
        }
        assert!(dir.join("cgroup.freeze").exists(), "{} has no cgroup.freeze (kernel < 5.2?)", dir.display());
        TestCgroup { dir }
    }

    pub fn is_frozen(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events")).is_ok_and(|e| e.contains("frozen 1"))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.freeze"), "0");
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Some(parent) = self.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A guest whose processes are run as a unified guest's.
pub struct CowGuest<'w> {
    pub name: String,
    pub root: PathBuf,
    pub cgroup: TestCgroup,
    world: &'w World,
}

/// A supervised process tree of the guest that is running.
pub struct Running {
    child: Option<Child>,
    stats: PathBuf,
}

impl<'w> CowGuest<'w> {
    pub fn new(w: &'w World, name: &str) -> CowGuest<'w> {
        CowGuest { name: name.to_string(), root: w.guest_root(name), cgroup: TestCgroup::new(name), world: w }
    }

    /// Starts `argv` in the guest, supervised.
    pub fn spawn(&self, argv: &[&str]) -> Running {
        let stats = self.world.root.join(format!("cow-stats-{}-{}", self.name, super::unique()));
        let child = self
            .world
            .cmd("vs-cow-guest")
            .arg("--stats")
            .arg(&stats)
            .arg(&self.name)
            .arg(&self.root)
            .arg(&self.cgroup.dir)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vs-cow-guest");
        Running { child: Some(child), stats }
    }

    /// Runs `sh -c SCRIPT` in the guest; its output, what the supervisor did.
    pub fn sh(&self, script: &str) -> (Output, Stats) {
        self.spawn(&["/bin/sh", "-c", script]).wait()
    }

    pub fn sh_ok(&self, script: &str) -> (String, Stats) {
        let (out, stats) = self.sh(script);
        assert!(out.status.success(), "in guest {}: {script}: {}", self.name, describe(&out));
        (String::from_utf8_lossy(&out.stdout).into_owned(), stats)
    }

    /// The same without copy-on-write (a guest that is not unified).
    pub fn plain(&self, argv: &[&str]) -> Output {
        let out = self.world.cmd("vs-cow-guest").arg("--plain").arg(&self.name).arg(&self.root).arg(&self.cgroup.dir).args(argv).output();
        out.expect("vs-cow-guest")
    }
}

impl Running {
    pub fn wait(mut self) -> (Output, Stats) {
        let out = self.child.take().expect("running").wait_with_output().expect("waiting for the guest");
        let stats = std::fs::read(&self.stats).ok().and_then(|s| serde_json::from_slice(&s).ok()).unwrap_or_default();
        let _ = std::fs::remove_file(&self.stats);
        (out, stats)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Puts tests/guest-tools/cowattack.c, built static, at /root/cowattack in
/// the guest's tree.
pub fn install_attack_tool(root: &Path) {
    // Built once per test process. Tests run in parallel threads: a second
    // test must wait for the first one's gcc, never copy its half-written
    // output (an empty file, which sh runs as an empty script that succeeds).
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let out = BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("vs-cowattack-{}", std::process::id()));
        let built =
            Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&out).arg("tests/guest-tools/cowattack.c").output().expect("gcc");
        assert!(built.status.success(), "building cowattack: {}", describe(&built));
        out
    });
    std::fs::create_dir_all(root.join("root")).unwrap();
    std::fs::copy(out, root.join("root/cowattack")).unwrap();
    std::fs::set_permissions(root.join("root/cowattack"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The extended attributes of a file (names and values, sorted).
pub fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: buffer valid for its length; c is NUL-terminated.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut out: Vec<(String, Vec<u8>)> = names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cn = std::ffi::CString::new(name).unwrap();
            let mut v = vec![0u8; 4096];
            // SAFETY: as above.
            let len = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            v.truncate(len.max(0) as usize);
            (String::from_utf8_lossy(name).into_owned(), v)
        })
        .collect();
    out.sort();
    out
}
