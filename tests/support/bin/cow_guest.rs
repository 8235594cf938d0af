//! vs-cow-guest: runs a command the way a unified guest's process runs, and
//! supervises it the way the guest's monitor will, for the copy-on-write
//! tests and util/bench-cow.sh (the monitor's hand-over of the listener is
//! the boot/join side's to wire).
//!
//! The command runs as pid 1 of a new pid namespace, in the guest's cgroup,
//! in a new mount namespace pivoted into the guest root (with /proc and a
//! few /dev nodes), with the guest's bounding set and seccomp filters. With
//! copy-on-write, the copy-on-write filter's listener goes to this process
//! before exec, which then runs a `vserver_core` Supervisor until the
//! command ends, and writes its statistics as JSON to `--stats FILE`.
//!
//! Usage: vs-cow-guest [--plain] [--stats FILE] NAME ROOT CGROUP_DIR CMD [ARG...]
//!   --plain   no copy-on-write filter and no supervisor (a guest that is not unified)
//!   paths (config, guests, run dir) from VSERVER_CONFDIR, VSERVER_VDIRBASE, VSERVER_RUNDIR.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

struct Args {
    plain: bool,
    stats: Option<String>,
    name: String,
    root: String,
    cgroup: String,
    argv: Vec<String>,
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1).peekable();
    let (mut plain, mut stats) = (false, None);
    while let Some(a) = it.peek() {
        match a.as_str() {
            "--plain" => plain = true,
            "--stats" => {
                it.next();
                stats = it.peek().cloned();
            }
            _ => break,
        }
        it.next();
    }
    let rest: Vec<String> = it.collect();
    if rest.len() < 4 {
        eprintln!("usage: vs-cow-guest [--plain] [--stats FILE] NAME ROOT CGROUP_DIR CMD [ARG...]");
        std::process::exit(2);
    }
    Args { plain, stats, name: rest[0].clone(), root: rest[1].clone(), cgroup: rest[2].clone(), argv: rest[3..].to_vec() }
}

fn main() {
    let args = parse();
    let (ours, theirs) = socketpair();
    // SAFETY: unshare with a flag; this process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        fail("unshare");
    }
    // SAFETY: single-threaded; the child sets itself up and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid == 0 {
        drop(ours);
        guest(&args, theirs);
    }
    drop(theirs);
    let code = if args.plain { wait(pid) } else { supervise(&args, pid, ours) };
    std::process::exit(code);
}

/// The monitor's part: receive the listener, answer notifications until
/// the guest's pid 1 ends.
fn supervise(args: &Args, pid: i32, sock: OwnedFd) -> i32 {
    let paths = vserver_core::paths::Paths::resolve(&Default::default()).unwrap_or_else(|e| fail(&e.to_string()));
    let mut sup = vserver_core::unify::cow::Supervisor::new(&paths, &args.name).unwrap_or_else(|e| fail(&format!("{e:#}")));
    if let Some(l) = recv_fd(&sock) {
        sup.add_listener(l).unwrap_or_else(|e| fail(&format!("add_listener: {e}")));
    }
    let pidfd = vserver_core::sys::pidfd::open(pid).unwrap_or_else(|e| fail(&format!("pidfd: {e}")));
    loop {
        let mut fds = [
            libc::pollfd { fd: sup.poll_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is valid for two entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            sup.handle_ready().unwrap_or_else(|e| fail(&format!("{e:#}")));
        }
        if fds[1].revents != 0 {
            break;
        }
    }
    let code = wait(pid);
    for m in sup.take_messages() {
        eprintln!("vs-cow-guest: supervisor: {m}");
    }
    if let Some(file) = &args.stats {
        let _ = std::fs::write(file, serde_json::to_vec(&sup.stats()).expect("stats serialise"));
    }
    code
}

fn wait(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// pid 1 of the guest: its cgroup, its mounts, its restrictions, exec.
fn guest(args: &Args, sock: OwnedFd) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // Only the guest's processes are in its cgroup, not its supervisor.
    std::fs::write(format!("{}/cgroup.procs", args.cgroup), "0").unwrap_or_else(|e| fail(&format!("joining {}: {e}", args.cgroup)));
    // SAFETY: unshare with a flag, single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        fail("unshare mount namespace");
    }
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE);
    mount(Some(&args.root), &args.root, None, libc::MS_BIND | libc::MS_REC);
    std::env::set_current_dir(&args.root).unwrap_or_else(|_| fail("chdir root"));
    if std::path::Path::new("proc").is_dir() {
        mount(Some("proc"), "proc", Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    }
    if std::path::Path::new("dev").is_dir() {
        // A few device nodes, bound from the host's /dev (as rootfs/dev.rs does for guests).
        mount(Some("tmpfs"), "dev", Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC);
        for node in ["null", "zero", "full", "random", "urandom"] {
            let target = format!("dev/{node}");
            std::fs::write(&target, b"").unwrap_or_else(|_| fail(&target));
            mount(Some(&format!("/dev/{node}")), &target, None, libc::MS_BIND);
        }
    }
    let dot = c(".");
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one; it is detached next.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        fail("pivot_root");
    }
    // SAFETY: detaching the old root, stacked on "."
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        fail("umount old root");
    }
    std::env::set_current_dir("/").unwrap_or_else(|_| fail("chdir /"));
    vserver_core::caps::restrict_to(&vserver_core::caps::default_bounding_set()).unwrap_or_else(|e| fail(&e.to_string()));
    let deny = vserver_core::seccomp::CompiledFilter::new(Default::default()).unwrap_or_else(|e| fail(&format!("{e:#}")));
    deny.install().unwrap_or_else(|e| fail(&format!("seccomp: {e}")));
    if !args.plain {
        let notify = vserver_core::seccomp::NotifyFilter::copy_on_write();
        let listener = notify.install_with_listener().unwrap_or_else(|e| fail(&format!("listener: {e}")));
        send_fd(sock.as_fd().as_raw_fd(), &listener);
    }
    drop(sock);
    let cargs: Vec<CString> = args.argv.iter().map(|a| c(a)).collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env = [c("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), c("HOME=/root"), c("LANG=C")];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated argv and envp of valid C strings.
    unsafe { libc::execve(ptrs[0], ptrs.as_ptr(), envp.as_ptr()) };
    fail(&format!("exec {}", args.argv[0]))
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0 {
        fail("socketpair");
    }
    // SAFETY: two new descriptors we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn send_fd(sock: i32, fd: &OwnedFd) {
    let byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_ptr() as *mut _, iov_len: 1 };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut buf = vec![0u8; space];
    // SAFETY: msghdr is plain data; the pointers below stay valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer has room for one cmsg with one int.
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<i32>(), fd.as_raw_fd());
        if libc::sendmsg(sock, &msg, 0) != 1 {
            fail("sending the listener");
        }
    }
}

/// The listener, or None if the guest failed before sending it.
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

fn mount(src: Option<&str>, target: &str, fstype: Option<&str>, flags: libc::c_ulong) {
    let (s, t, f) = (src.map(c), c(target), fstype.map(c));
    // SAFETY: NUL-terminated strings or NULL.
    let r = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        fail(&format!("mount {target}"));
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn fail(what: &str) -> ! {
    eprintln!("vs-cow-guest: {what}: {}", std::io::Error::last_os_error());
    // SAFETY: leaving without unwinding (also from the forked child).
    unsafe { libc::_exit(126) }
}
