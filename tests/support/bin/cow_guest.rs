//! vs-cow-guest: runs a command the way a unified guest's process runs, for
//! the copy-on-write tests, without the monitor (whose hand-over of the
//! listener is the lead's to wire): in the guest's cgroup, as pid 1 of new
//! pid and mount namespaces, pivoted into the guest root with its /proc,
//! with the guest's bounding set and seccomp filters, and the copy-on-write
//! filter's listener sent to the test (the supervisor) before exec.
//!
//! Usage: vs-cow-guest ROOT CGROUP_DIR SOCKET_FD CMD [ARG...]

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: vs-cow-guest ROOT CGROUP_DIR SOCKET_FD CMD [ARG...]");
        std::process::exit(2);
    }
    let (root, cgroup, sock) = (&args[1], &args[2], args[3].parse::<i32>().expect("SOCKET_FD"));
    std::fs::write(format!("{cgroup}/cgroup.procs"), "0").unwrap_or_else(|e| fail(&format!("joining {cgroup}: {e}")));
    // SAFETY: unshare with flags; this process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID) } != 0 {
        fail("unshare");
    }
    // SAFETY: single-threaded; the child sets itself up and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid == 0 {
        guest(root, sock, &args[4..]);
    }
    // SAFETY: closing our copy of the socket.
    unsafe { libc::close(sock) };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    std::process::exit(code);
}

fn guest(root: &str, sock: i32, argv: &[String]) -> ! {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE);
    mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC);
    std::env::set_current_dir(root).unwrap_or_else(|_| fail("chdir root"));
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
    vserver_core::caps::restrict_to(&vserver_core::caps::default_bounding_set()).unwrap_or_else(|e| fail(&e));
    vserver_core::seccomp::install(Default::default()).unwrap_or_else(|e| fail(&e));
    let prog = vserver_core::seccomp::cow_notify_filter().unwrap_or_else(|e| fail(&e));
    let listener = vserver_core::seccomp::install_with_listener(&prog).unwrap_or_else(|e| fail(&format!("listener: {e}")));
    send_fd(sock, &listener);
    drop(listener);
    // SAFETY: our copy of the socket goes before exec.
    unsafe { libc::close(sock) };
    let cargs: Vec<CString> = argv.iter().map(|a| c(a)).collect();
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env = [c("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), c("HOME=/root"), c("LANG=C")];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated argv and envp of valid C strings.
    unsafe { libc::execve(ptrs[0], ptrs.as_ptr(), envp.as_ptr()) };
    fail(&format!("exec {}", argv[0]))
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
