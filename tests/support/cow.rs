//! Copy-on-write test guests: a World's guest run as a unified guest's
//! process tree (tests/support/bin/cow_guest.rs) in a cgroup of its own
//! under `<cgroup2>/vserver/`, supervised by a `vserver_core` Supervisor in
//! a thread of the test, as the monitor will do.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use vserver_core::paths::Paths;
use vserver_core::unify::cow::{Stats, Supervisor};

use super::guest::World;
use super::{bin, describe};

/// The cgroup2 mount of this host (`unified` on hybrid hosts).
pub fn cgroup2_root() -> Option<PathBuf> {
    let layout = vserver_core::cgroup::Layout::detect(Path::new("/sys/fs/cgroup")).ok()?;
    layout.v2.filter(|v2| v2.join("cgroup.freeze").exists() || v2.join("cgroup.subtree_control").exists())
}

pub fn paths_of(w: &World) -> Paths {
    Paths { confdir: w.confdir.clone(), vdirbase: w.vdirbase.clone(), rundir: w.rundir.clone(), cgroup_root: "/sys/fs/cgroup".into() }
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

/// A supervised guest: its cgroup and its supervisor thread.
pub struct CowGuest {
    pub name: String,
    pub root: PathBuf,
    pub cgroup: TestCgroup,
    paths: Paths,
}

/// A process tree of the guest that is running, and its supervisor.
pub struct Running {
    child: Option<Child>,
    stop: Arc<AtomicBool>,
    supervisor: Option<JoinHandle<(Stats, Vec<String>)>>,
}

impl CowGuest {
    pub fn new(w: &World, name: &str) -> CowGuest {
        CowGuest { name: name.to_string(), root: w.guest_root(name), cgroup: TestCgroup::new(name), paths: paths_of(w) }
    }

    /// Starts `argv` in the guest, supervised.
    pub fn spawn(&self, argv: &[&str]) -> Running {
        let (ours, theirs) = socketpair();
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(bin("vs-cow-guest"));
        cmd.arg(&self.root).arg(&self.cgroup.dir).arg(theirs_fd.to_string()).args(argv);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: between fork and exec only fcntl, async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // Keep the socket across exec: the helper sends the listener on it.
                if libc::fcntl(theirs_fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("vs-cow-guest");
        drop(theirs);
        let mut supervisor = Supervisor::new(&self.paths, &self.name).expect("supervisor");
        let stop = Arc::new(AtomicBool::new(false));
        let listener = recv_fd(&ours);
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                if let Some(l) = listener {
                    supervisor.add_listener(l).expect("add listener");
                }
                supervisor.run_until(&stop).expect("supervisor loop");
                (supervisor.stats(), supervisor.take_messages())
            })
        };
        Running { child: Some(child), stop, supervisor: Some(handle) }
    }

    /// Runs `sh -c SCRIPT` in the guest; returns its output and what the supervisor did.
    pub fn sh(&self, script: &str) -> (Output, Stats, Vec<String>) {
        self.spawn(&["/bin/sh", "-c", script]).wait()
    }

    pub fn sh_ok(&self, script: &str) -> (String, Stats) {
        let (out, stats, messages) = self.sh(script);
        assert!(out.status.success(), "in guest {}: {script}: {}\nsupervisor: {messages:?}", self.name, describe(&out));
        (String::from_utf8_lossy(&out.stdout).into_owned(), stats)
    }
}

impl Running {
    pub fn wait(mut self) -> (Output, Stats, Vec<String>) {
        let out = self.child.take().expect("running").wait_with_output().expect("waiting for the guest");
        let (stats, messages) = self.finish();
        (out, stats, messages)
    }

    pub fn kill(mut self) -> (Output, Stats, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let out = child.wait_with_output().expect("waiting for the guest");
        let (stats, messages) = self.finish();
        (out, stats, messages)
    }

    fn finish(&mut self) -> (Stats, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.supervisor.take().map(|h| h.join().expect("supervisor thread")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }
}

/// Puts tests/guest-tools/cowattack.c, built static, at /root/cowattack in
/// the guest's tree.
pub fn install_attack_tool(root: &Path) {
    let out = std::env::temp_dir().join(format!("vs-cowattack-{}", std::process::id()));
    if !out.exists() {
        let built = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&out).arg("tests/guest-tools/cowattack.c").output().expect("gcc");
        assert!(built.status.success(), "building cowattack: {}", describe(&built));
    }
    std::fs::create_dir_all(root.join("root")).unwrap();
    std::fs::copy(&out, root.join("root/cowattack")).unwrap();
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

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two descriptors.
    assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) }, 0);
    // SAFETY: two new descriptors we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// The listener the helper sends, or None if it failed before (its stderr says why).
fn recv_fd(sock: &OwnedFd) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut buf = vec![0u8; space];
    // SAFETY: msghdr is plain data; its pointers stay valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: as above; MSG_CMSG_CLOEXEC marks the received descriptor.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n != 1 {
        return None;
    }
    // SAFETY: the kernel filled in one SCM_RIGHTS cmsg with one descriptor.
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if cm.is_null() || (*cm).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<i32>())))
    }
}
