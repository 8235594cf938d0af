//! Shared helpers of the integration tests: a temporary config root, guest
//! base and run dir per test, the real binaries, and Drop guards that stop
//! guests and remove what a test made even when it fails.

pub mod cow;
pub mod debian;
pub mod guest;
pub mod net;
pub mod pty;
pub mod tarball;
pub mod unify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The directory the workspace's binaries were built into (tests run from
/// `target/<profile>/deps/`). Build them first: `cargo build --workspace`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` before the tests", p.display());
    p
}

/// Privileged tests need root. Outside CI they are skipped with a note;
/// with CI set, a missing precondition is a failure, never a silent skip.
pub fn require(condition: bool, what: &str) -> bool {
    if condition {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("precondition missing in CI: {what}");
    }
    eprintln!("skipping: {what}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn require_root() -> bool {
    require(is_root(), "this test needs root")
}

pub fn require_busybox() -> bool {
    require(Path::new("/bin/busybox").exists(), "static busybox (apt-get install busybox-static)")
}

/// A unique number per test within this process, for guest names and xids.
pub fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Text of a command's output, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// A temporary directory removed on drop (also when the test fails).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("vs-{tag}-{}-{}", std::process::id(), unique()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` (every 20 ms) until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// `mount -o loop[,OPTIONS] IMAGE DIR`. Without udev (a minimal boot, the
/// vm-suite VM) nothing loads the loop driver, whose /dev/loop-control the
/// mount needs: it is loaded first.
pub fn loop_mount(image: &Path, dir: &Path, options: &str) -> Output {
    if !Path::new("/dev/loop-control").exists() {
        let _ = Command::new("modprobe").arg("loop").output();
    }
    let opts = if options.is_empty() { "loop".to_string() } else { format!("loop,{options}") };
    run(Command::new("mount").args(["-o", &opts]).arg(image).arg(dir))
}

/// The tools the project installs (util/install.sh, the .deb), each with a man page.
pub const BINARIES: &[&str] = &[
    "vserver",
    "vlimit",
    "vhashify",
    "chbind",
    "vserver-stat",
    "vserver-info",
    "vps",
    "vtop",
    "vkill",
    "vwait",
    "vuname",
    "vapt-get",
    "vdlimit",
];
