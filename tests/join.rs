//! Joining a running guest (`exec`, `suexec`, `exec --user`, `enter`)
//! through its monitor, attacked from the inside and checked from the host:
//! the admin's terminal never reaches the guest, bytes and exit codes pass
//! through exactly, a guest whose init cannot be joined runs nothing, the
//! built-in init shows nothing of the host, leases are refused.

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vserver_rs_tests::guest::{cgroup_dirs, World};
use vserver_rs_tests::pty::{holders_of, Pty};
use vserver_rs_tests::{describe, require, require_busybox, require_root, stdout, wait_until};

fn ready() -> bool {
    require_root() && require_busybox()
}

/// A busybox guest with the built-in init (style sysv), started.
fn started_guest(w: &World, base: &str) -> String {
    let (g, _) = w.busybox_guest(base);
    w.write_conf(&g, "apps/init/style", "sysv\n");
    w.ok(&g, &["start"]);
    g
}

/// The static attack tool, in the guest's /bin.
fn install_attack_tool(w: &World, g: &str) -> bool {
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the attack program") {
        return false;
    }
    let bin = w.guest_root(g).join("bin/attack");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/attack.c").output().unwrap();
    assert!(out.status.success(), "building attack.c: {}", describe(&out));
    true
}

/// Every process of the guest, as host pids (its cgroup, recursively).
fn guest_pids(name: &str) -> Vec<i32> {
    fn walk(dir: &Path, out: &mut Vec<i32>) {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(procs.lines().filter_map(|l| l.parse::<i32>().ok()));
        }
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut pids = Vec::new();
    for d in cgroup_dirs(name) {
        walk(&d, &mut pids);
    }
    pids.sort();
    pids.dedup();
    pids
}

fn state(w: &World, g: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(w.rundir.join(g).join("state.json")).unwrap()).unwrap()
}

#[test]
fn files_sockets_and_null_pass_byte_for_byte_and_exit_codes_pass_through() {
    if !ready() {
        return;
    }
    let w = World::new("jbytes");
    let g = started_guest(&w, "jb");
    // 5 MiB of every byte value, through a file on stdin and a file on stdout.
    let data: Vec<u8> = (0..5u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let dir = w.root.join("io");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("in.bin"), &data).unwrap();
    let out = w
        .cmd("vserver")
        .args([&g, "exec", "cat"])
        .stdin(fs::File::open(dir.join("in.bin")).unwrap())
        .stdout(fs::File::create(dir.join("out.bin")).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    assert!(fs::read(dir.join("out.bin")).unwrap() == data, "cat < file > out changed the bytes");
    // Appending keeps working (the file is written by us with its own flags).
    fs::write(dir.join("log"), b"first\n").unwrap();
    let log = fs::OpenOptions::new().append(true).open(dir.join("log")).unwrap();
    assert!(w.cmd("vserver").args([&g, "exec", "echo", "second"]).stdout(log).status().unwrap().success());
    assert_eq!(fs::read_to_string(dir.join("log")).unwrap(), "first\nsecond\n");

    // The guest never saw a host file: its descriptors are pipes and its own /dev/null.
    let seen = w
        .cmd("vserver")
        .args([&g, "exec", "sh", "-c", "ls -l /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2"])
        .stdin(fs::File::open(dir.join("in.bin")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&seen);
    assert!(text.contains("0 -> pipe:") && text.contains("1 -> pipe:") && text.contains("2 -> /dev/null"), "{text}");
    assert!(!text.contains("in.bin"), "a host file reached the guest: {text}");

    // A socket on stdout is relayed too.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let st = w
        .cmd("vserver")
        .args([&g, "exec", "echo", "over a socket"])
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .status()
        .unwrap();
    assert!(st.success());
    ours.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut ours, &mut got).unwrap();
    assert_eq!(got, "over a socket\n");

    // Exit codes, deaths by signal, commands that cannot start.
    assert_eq!(w.vserver(&[&g, "exec", "sh", "-c", "exit 42"]).status.code(), Some(42));
    assert_eq!(w.vserver(&[&g, "exec", "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
    let missing = w.vserver(&[&g, "exec", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(255), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("command not found"), "{}", describe(&missing));
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn signals_to_vserver_reach_the_command() {
    if !ready() {
        return;
    }
    let w = World::new("jsig");
    let g = started_guest(&w, "js");
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT"), (libc::SIGHUP, "HUP"), (libc::SIGQUIT, "QUIT")] {
        let script = format!("trap 'echo got-{name}; exit 7' {name}; echo ready; while :; do sleep 1; done");
        let mut child =
            w.cmd("vserver").args([&g, "exec", "sh", "-c", &script]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut first).unwrap();
        assert_eq!(&first, b"ready\n");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(7), "SIG{name}: {rest}");
        assert_eq!(rest.trim(), format!("got-{name}"));
    }
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn a_guest_process_never_holds_the_admins_terminal() {
    if !ready() {
        return;
    }
    let w = World::new("jtty");
    let g = started_guest(&w, "jt");
    if !install_attack_tool(&w, &g) {
        return;
    }
    let mut term = Pty::new(33, 99);
    let before = term.termios();
    // The guest command gets a pty of its own, sized like ours, as controlling
    // terminal of a new session; it leaves a process behind that tries to
    // take over the terminal it was given.
    let script = "tty; stty size; attack tty /tmp/attack.log 4; exit 3";
    let status = w
        .cmd("vserver")
        .args([&g, "exec", "sh", "-c", script])
        .stdin(term.stdio())
        .stdout(term.stdio())
        .stderr(term.stdio())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the exit code passes through: {}", term.screen());
    let screen = term.wait_for("33 99", Duration::from_secs(5));
    // pts/0 of the guest's own devpts is its /dev/console.
    assert!(screen.contains("/dev/pts/1"), "the guest's own pty: {screen}");
    let after = term.termios();
    assert_eq!((before.c_lflag, before.c_iflag, before.c_oflag), (after.c_lflag, after.c_iflag, after.c_oflag), "terminal restored");

    // While the left-behind process lives, no guest process holds our terminal.
    let log = w.guest_root(&g).join("tmp/attack.log");
    wait_until("the attack to start", Duration::from_secs(20), || fs::read_to_string(&log).is_ok_and(|l| l.contains("write")));
    let pids = guest_pids(&g);
    assert!(pids.len() >= 2, "the attacker should still run: {pids:?}");
    assert_eq!(holders_of(term.slave_id(), &pids), Vec::<i32>::new(), "a guest process holds the admin's terminal");
    // The scan does find a holder: the test itself.
    assert_eq!(holders_of(term.slave_id(), &[std::process::id() as i32]), vec![std::process::id() as i32]);
    // The admin types the next command (a password, say) into the shell.
    term.type_in(b"secret-password\n");
    let mut typed = String::new();
    wait_until("the typed line to reach the admin's side", Duration::from_secs(5), || {
        let mut buf = [0u8; 64];
        // SAFETY: a non-blocking read of the slave, as the admin's shell would read.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&term.slave), libc::F_SETFL, libc::O_NONBLOCK) };
        let n = unsafe { libc::read(std::os::fd::AsRawFd::as_raw_fd(&term.slave), buf.as_mut_ptr().cast(), 64) };
        if n > 0 {
            typed.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
        }
        typed.contains("secret-password")
    });
    wait_until("the attack to end", Duration::from_secs(10), || fs::read_to_string(&log).is_ok_and(|l| l.contains("done")));
    let report = fs::read_to_string(&log).unwrap();
    assert!(!report.contains("secret"), "the guest read what the admin typed:\n{report}");
    assert!(!term.screen().contains("guest was here"), "the guest wrote on the admin's terminal");
    assert!(report.contains("tiocsti Operation not permitted"), "{report}");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn ctrl_c_and_ctrl_z_work_through_the_guests_line_discipline() {
    if !ready() {
        return;
    }
    let w = World::new("jctl");
    let g = started_guest(&w, "jc");
    // ^C to a command run with exec.
    let mut term = Pty::new(24, 80);
    let mut child = w
        .cmd("vserver")
        .args([&g, "exec", "sh", "-c", "echo started; exec sleep 1000"])
        .stdin(term.stdio())
        .stdout(term.stdio())
        .stderr(term.stdio())
        .spawn()
        .unwrap();
    term.wait_for("started", Duration::from_secs(10));
    term.type_in(b"\x03");
    assert_eq!(child.wait().unwrap().code(), Some(130), "^C ends it with SIGINT: {}", term.screen());

    // ^Z to a job of the shell `enter` gives, which has job control.
    let mut term = Pty::new(24, 80);
    let mut child = w.cmd("vserver").args([&g, "enter"]).stdin(term.stdio()).stdout(term.stdio()).stderr(term.stdio()).spawn().unwrap();
    term.type_in(b"sleep 1000\n");
    let sleeper = || guest_pids(&g).into_iter().find(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep"));
    wait_until("sleep to run", Duration::from_secs(10), || sleeper().is_some());
    let pid = sleeper().unwrap();
    let state_of = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.rsplit(')').next().unwrap().trim_start().chars().next().unwrap())
    };
    term.type_in(b"\x1a");
    wait_until("^Z to stop the job", Duration::from_secs(5), || state_of(pid).is_ok_and(|s| s == 'T'));
    term.wait_for("Stopped", Duration::from_secs(5));
    term.type_in(b"fg\n");
    wait_until("fg to continue it", Duration::from_secs(5), || state_of(pid).is_ok_and(|s| s != 'T'));
    term.type_in(b"\x03");
    wait_until("^C to end it", Duration::from_secs(5), || state_of(pid).is_err());
    term.type_in(b"exit 6\n");
    assert_eq!(child.wait().unwrap().code(), Some(6), "{}", term.screen());
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn exec_runs_nothing_when_the_guests_init_cannot_be_joined() {
    if !ready() {
        return;
    }
    let w = World::new("jclosed");
    let g = started_guest(&w, "jf");
    let s = state(&w, &g);
    let (init, monitor) = (s["init"]["pid"].as_i64().unwrap() as i32, s["monitor"]["pid"].as_i64().unwrap() as i32);
    // The monitor is held while the guest's init dies: its namespaces can no
    // longer be joined, but the run state still names it.
    // SAFETY: signalling the test guest's own monitor and init.
    unsafe { libc::kill(monitor, libc::SIGSTOP) };
    // Stopped for real before init dies (SIGSTOP takes effect when the
    // monitor next runs), so it sees the request and init's end together.
    let state_of = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.rsplit(')').next().unwrap().trim_start().chars().next().unwrap())
    };
    wait_until("the monitor to stop", Duration::from_secs(5), || state_of(monitor).is_ok_and(|s| s == 'T'));
    unsafe { libc::kill(init, libc::SIGKILL) };
    wait_until("init to be a zombie", Duration::from_secs(5), || state_of(init).is_ok_and(|s| s == 'Z'));
    let child = w.cmd("vserver").args([&g, "exec", "touch", "/joined"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let cli = child.id();
    wait_until("the request to wait for the monitor", Duration::from_secs(10), || {
        fs::read_to_string(format!("/proc/{cli}/wchan")).is_ok_and(|c| c.contains("poll"))
            && fs::read_dir(format!("/proc/{cli}/fd")).is_ok_and(|d| d.count() >= 5)
    });
    unsafe { libc::kill(monitor, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("joining the guest's pid namespace"), "{err}");
    assert!(!w.guest_root(&g).join("joined").exists(), "the command ran although the guest could not be joined");
    wait_until("the guest to be gone", Duration::from_secs(10), || w.vserver(&[&g, "status"]).status.code() == Some(3));
    w.assert_nothing_left(&g);
}

#[test]
fn the_built_in_init_shows_nothing_of_the_host() {
    if !ready() {
        return;
    }
    let w = World::new("jinit");
    let g = started_guest(&w, "ji");
    if !install_attack_tool(&w, &g) {
        return;
    }
    let init = state(&w, &g)["init"]["pid"].as_i64().unwrap();
    // From the host: argv, name and environment are an init's.
    assert_eq!(fs::read(format!("/proc/{init}/cmdline")).unwrap(), b"init\0");
    assert_eq!(fs::read_to_string(format!("/proc/{init}/comm")).unwrap().trim(), "init");
    let env = fs::read(format!("/proc/{init}/environ")).unwrap();
    let mut vars: Vec<String> = env.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    vars.sort();
    assert_eq!(
        vars,
        vec!["HOME=/", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=linux", "container=vserver"]
    );
    // From the guest, as root: no way into pid 1, no host path in any argv.
    let attempts = w.sh_ok(&g, "attack pid1");
    assert_eq!(attempts, "ptrace denied\nexe denied\nenviron denied\nmem denied\n");
    assert_eq!(w.sh_ok(&g, "ps -o pid,args | awk '$1 == 1 {print $2}'").trim(), "init");
    let bin = vserver_rs_tests::bin_dir();
    let argvs = w.sh_ok(&g, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
    assert!(!argvs.contains(&*bin.to_string_lossy()) && !argvs.contains("vserver"), "{argvs}");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn leases_are_refused_unless_the_guest_is_allowed_them() {
    if !ready() {
        return;
    }
    let w = World::new("jlease");
    let (g, _) = w.busybox_guest("jl");
    if !install_attack_tool(&w, &g) {
        return;
    }
    w.ok(&g, &["start"]);
    // A root-owned file, as unified files are: the owner needs no CAP_LEASE.
    assert_eq!(w.sh_ok(&g, "attack lease /bin/busybox").trim(), "lease errno 1");
    // CAP_LEASE is capability 28.
    let bnd = w.sh_ok(&g, "grep CapBnd /proc/self/status");
    let mask = u64::from_str_radix(bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << 28), 0, "CAP_LEASE is out of the default bounding set");
    w.ok(&g, &["stop"]);
    w.write_conf(&g, "ccapabilities", "SET_LEASE\n");
    w.ok(&g, &["start"]);
    assert_eq!(w.sh_ok(&g, "attack lease /bin/busybox").trim(), "lease ok");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn suexec_and_exec_user_run_as_a_guest_user_with_its_groups() {
    if !ready() {
        return;
    }
    let w = World::new("juser");
    let (g, _) = w.busybox_guest("ju");
    // A user only the guest knows (the host has no "joinalice").
    let root = w.guest_root(&g);
    let mut passwd = fs::OpenOptions::new().append(true).open(root.join("etc/passwd")).unwrap();
    writeln!(passwd, "joinalice:x:4321:4321:Alice:/home/joinalice:/bin/sh").unwrap();
    let mut group = fs::OpenOptions::new().append(true).open(root.join("etc/group")).unwrap();
    writeln!(group, "joinalice:x:4321:\njoinstaff:x:4350:someone,joinalice\njoinaudio:x:4329:joinalice").unwrap();
    fs::create_dir_all(root.join("home/joinalice")).unwrap();
    w.ok(&g, &["start"]);
    let id = w.ok(&g, &["suexec", "joinalice", "id"]);
    assert_eq!(id.trim(), "uid=4321(joinalice) gid=4321(joinalice) groups=4321(joinalice),4329(joinaudio),4350(joinstaff)");
    let env = w.ok(&g, &["exec", "--user", "joinalice", "sh", "-c", "echo $HOME $USER $LOGNAME; pwd"]);
    assert_eq!(env, "/home/joinalice joinalice joinalice\n/\n");
    assert_eq!(w.ok(&g, &["exec", "-u", "4321", "id", "-u"]).trim(), "4321");
    assert_eq!(w.ok(&g, &["suexec", "0", "id", "-u"]).trim(), "0");
    // As that user, no capability and no way back to root.
    let caps = w.ok(&g, &["suexec", "joinalice", "grep", "CapEff", "/proc/self/status"]);
    assert!(caps.contains("0000000000000000"), "{caps}");
    let unknown = w.vserver(&[&g, "suexec", "nosuchuser", "id"]);
    assert_eq!(unknown.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no user \"nosuchuser\" in the guest's /etc/passwd"),
        "{}",
        describe(&unknown)
    );
    // Under a pty the terminal belongs to the user, as login makes it.
    let mut term = Pty::new(24, 80);
    let st = w
        .cmd("vserver")
        .args([&g, "suexec", "joinalice", "sh", "-c", "stat -c 'owner %u' $(tty)"])
        .stdin(term.stdio())
        .stdout(term.stdio())
        .stderr(term.stdio())
        .status()
        .unwrap();
    assert!(st.success());
    term.wait_for("owner 4321", Duration::from_secs(5));
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn condrestart_restarts_only_a_running_guest() {
    if !ready() {
        return;
    }
    let w = World::new("jcond");
    let (g, _) = w.busybox_guest("jr");
    assert_eq!(w.vserver(&[&g, "condrestart"]).status.code(), Some(0));
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3), "condrestart must not start a stopped guest");
    w.ok(&g, &["start"]);
    let first = state(&w, &g)["init"]["pid"].clone();
    w.ok(&g, &["condrestart"]);
    assert_ne!(state(&w, &g)["init"]["pid"], first);
    // apt-get is the guest's own: a busybox guest has none.
    let apt = w.vserver(&[&g, "apt-get", "--version"]);
    assert_eq!(apt.status.code(), Some(255), "{}", describe(&apt));
    w.ok(&g, &["stop"]);
    assert!(!w.rundir.join(&g).join("control").exists(), "the control socket goes with the guest");
    w.assert_nothing_left(&g);
}

#[test]
fn joiners_enter_the_guests_cgroup_and_are_reaped() {
    if !ready() {
        return;
    }
    let w = World::new("jreap");
    let g = started_guest(&w, "jp");
    let monitor = state(&w, &g)["monitor"]["pid"].as_i64().unwrap();
    // In every hierarchy the guest has (the host's named systemd one is not the guest's).
    let cgroups = w.sh_ok(&g, "cat /proc/self/cgroup");
    let inside = |path: &str| path == format!("/vserver/{g}") || path.starts_with(&format!("/vserver/{g}/"));
    let mut checked = 0;
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        if controllers.starts_with("name=") || controllers == "misc" || controllers == "rdma" {
            continue;
        }
        let managed = cgroup_dirs(&g)
            .iter()
            .any(|d| d.exists() && (controllers.is_empty() || d.to_string_lossy().contains(controllers.split(',').next().unwrap())));
        if managed {
            assert!(inside(path), "outside the guest's cgroup: {line}");
            checked += 1;
        }
    }
    assert!(checked > 0, "{cgroups}");
    for _ in 0..20 {
        w.sh_ok(&g, "true");
    }
    let children = fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children")).unwrap();
    assert_eq!(children.split_whitespace().count(), 1, "only the guest's init is the monitor's child: {children}");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn the_built_in_init_takes_vservers_and_busyboxs_signals() {
    if !ready() {
        return;
    }
    let w = World::new("jrt");
    let g = started_guest(&w, "jq");
    let init = |w: &World| state(w, &g)["init"]["pid"].as_i64().unwrap() as i32;
    let restarted = |w: &World, before: i32| {
        wait_until("the guest to come back", Duration::from_secs(15), || {
            fs::read(w.rundir.join(&g).join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|s| s["init"]["pid"].as_i64().is_some_and(|p| p as i32 != before))
                && w.vserver(&[&g, "status"]).status.code() == Some(0)
        })
    };
    // What `vserver restart` and `stop` send (SIGRTMIN+5, SIGRTMIN+3).
    let first = init(&w);
    // SAFETY: signalling the test guest's init.
    unsafe { libc::kill(first, libc::SIGRTMIN() + 5) };
    restarted(&w, first);
    // busybox's reboot sends SIGTERM, which sysvinit would ignore: this guest's
    // /sbin/halt is busybox, so it is a reboot here.
    let second = init(&w);
    w.sh(&g, "reboot");
    restarted(&w, second);
    let third = init(&w);
    unsafe { libc::kill(third, libc::SIGRTMIN() + 3) };
    wait_until("SIGRTMIN+3 to stop the guest", Duration::from_secs(15), || w.vserver(&[&g, "status"]).status.code() == Some(3));
    w.assert_nothing_left(&g);
    w.ok(&g, &["start"]);
    w.sh(&g, "halt");
    wait_until("halt to stop the guest", Duration::from_secs(15), || w.vserver(&[&g, "status"]).status.code() == Some(3));
    w.assert_nothing_left(&g);
}

#[test]
fn a_guest_in_a_user_namespace_is_joined_with_exactly_its_bounding_set() {
    if !ready() {
        return;
    }
    let w = World::new("juserns");
    // Built with the namespace configured, so its tree is shifted.
    w.write_conf(".defaults", "namespaces", "user\n");
    let (g, _) = w.busybox_guest("jn");
    fs::remove_file(w.confdir.join(".defaults/namespaces")).unwrap();
    w.write_conf(&g, "namespaces", "user\n");
    w.write_conf(&g, "apps/init/style", "sysv\n");
    w.ok(&g, &["start"]);
    // A new user namespace starts with a full bounding set: what leaves it
    // must be everything outside the configured set, not what the monitor lacks.
    let expected = vserver_core::caps::to_mask(&vserver_core::caps::default_bounding_set());
    for who in ["self", "1"] {
        let status = w.sh_ok(&g, &format!("grep CapBnd /proc/{who}/status"));
        let mask = u64::from_str_radix(status.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask, expected, "/proc/{who}/status: {status}");
    }
    assert_eq!(w.sh_ok(&g, "id -u").trim(), "0");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}
