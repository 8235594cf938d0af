//! util-vserver's admin tools against real busybox guests: vps's CONTEXT
//! column for processes of two guests and of the host, vkill of one guest
//! pid, vwait returning when a guest stops and timing out, vuname reading
//! and setting the guest's names, vapt-get over two guests.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require_busybox, require_root, run, stdout, wait_until};

fn ready() -> bool {
    require_root() && require_busybox()
}

/// The run state the monitor wrote: (init pid, monitor pid) as the host sees them.
fn pids(w: &World, name: &str) -> (i32, i32) {
    let state: serde_json::Value = serde_json::from_slice(&fs::read(w.rundir.join(name).join("state.json")).unwrap()).unwrap();
    (state["init"]["pid"].as_i64().unwrap() as i32, state["monitor"]["pid"].as_i64().unwrap() as i32)
}

fn tool(w: &World, binary: &str, args: &[&str]) -> Output {
    run(w.cmd(binary).args(args))
}

/// The vps line of a host pid, split into words.
fn vps_line(table: &str, pid: i32) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pid.to_string().as_str()))
        .unwrap_or_else(|| panic!("pid {pid} not in vps output:\n{table}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn vps_shows_the_context_of_guest_and_host_processes() {
    if !ready() {
        return;
    }
    let w = World::new("vps");
    let (a, xa) = w.busybox_guest("vpsa");
    let (b, xb) = w.busybox_guest("vpsb");
    w.ok(&a, &["start"]);
    w.ok(&b, &["start"]);
    // A process started by exec, inside guest a.
    let sleeper: i32 = w.sh_ok(&a, "sleep 300 >/dev/null 2>&1 & echo $!").trim().parse().unwrap();
    let (init_a, monitor_a) = pids(&w, &a);
    let (init_b, _) = pids(&w, &b);

    let out = tool(&w, "vps", &["ax"]);
    assert!(out.status.success(), "{}", describe(&out));
    let table = stdout(&out);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..2], ["PID", "CONTEXT"], "{table}");
    assert_eq!(vps_line(&table, init_a)[1..3], [xa.to_string(), a.clone()]);
    assert_eq!(vps_line(&table, init_b)[1..3], [xb.to_string(), b.clone()]);
    assert_eq!(vps_line(&table, monitor_a)[1..3], [xa.to_string(), format!("{a}:monitor")]);
    assert_eq!(vps_line(&table, std::process::id() as i32)[1..4], ["0", "root", "server"]);
    // The exec'd process: find its host pid through the guest's init's children.
    let host_sleeper = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == a && f.last() == Some(&"300") && f[f.len() - 2] == "sleep")
        .unwrap_or_else(|| panic!("the sleep of {a} (guest pid {sleeper}) is not shown as {a}'s:\n{table}"));
    assert_eq!(host_sleeper[1], xa.to_string());
    // The column sits where util-vserver's stop script looks for it.
    let re = format!(" {xa} ");
    assert!(table.lines().filter(|l| l.contains(&re)).count() >= 3, "{table}");

    // ps's own options pass through; -o without pid cannot work and says so.
    let out = tool(&w, "vps", &["-o", "pid,comm", "-p", &init_b.to_string()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stdout(&out).lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(),
        [&init_b.to_string(), &xb.to_string(), &b, "init"]
    );
    let out = tool(&w, "vps", &["-o", "comm"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("include pid in -o"), "{}", describe(&out));
    // ps's own refusal keeps ps's exit code.
    let out = tool(&w, "vps", &["--no-such-ps-option"]);
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
fn vkill_signals_one_guest_pid_and_all() {
    if !ready() {
        return;
    }
    let w = World::new("vkill");
    let (g, xid) = w.busybox_guest("vkill");
    w.ok(&g, &["start"]);
    let one = w.sh_ok(&g, "sleep 301 >/dev/null 2>&1 & echo $!").trim().to_string();
    let two = w.sh_ok(&g, "sleep 302 >/dev/null 2>&1 & echo $!").trim().to_string();
    let alive = |pid: &str| w.sh(&g, &format!("kill -0 {pid}")).status.success();
    assert!(alive(&one) && alive(&two));

    let out = tool(&w, "vkill", &["--xid", &g, "-s", "KILL", &one]);
    assert!(out.status.success(), "{}", describe(&out));
    wait_until("the killed process to go", Duration::from_secs(20), || !alive(&one));
    assert!(alive(&two), "vkill hit another process");
    // The same guest pid is no process on the host side: the host's pid `one` is untouched.
    let out = tool(&w, "vkill", &["-c", &xid.to_string(), "-s", "0", "9999"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no process 9999"), "{}", describe(&out));
    let out = tool(&w, "vkill", &["--xid", &g, "-s", "NOSUCH"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // No pid: every process of the guest; SIGKILL to its init ends the guest.
    let (_, monitor) = pids(&w, &g);
    let out = tool(&w, "vkill", &["--xid", &g, "-s", "KILL"]);
    assert!(out.status.success(), "{}", describe(&out));
    wait_until("the guest's monitor to tear down", Duration::from_secs(20), || !std::path::Path::new(&format!("/proc/{monitor}")).exists());
    assert_eq!(w.vserver(&[&g, "running"]).status.code(), Some(1));
    w.assert_nothing_left(&g);
}

#[test]
fn vwait_returns_when_the_guest_stops_and_times_out() {
    if !ready() {
        return;
    }
    let w = World::new("vwait");
    let (g, xid) = w.busybox_guest("vwait");
    w.ok(&g, &["start"]);

    let out = tool(&w, "vwait", &["--timeout", "1", "--status-fd", "1", &g]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(2), "TIMEOUT\n"), "{}", describe(&out));

    let mut waiter = w.cmd("vwait").args(["--status-fd", "1", &xid.to_string()]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(waiter.try_wait().unwrap().is_none(), "vwait returned while the guest runs");
    w.ok(&g, &["stop"]);
    let status = wait_child(&mut waiter, Duration::from_secs(20));
    let mut text = String::new();
    waiter.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    assert_eq!((status, text.as_str()), (Some(0), "FINISHED\n"));

    // A stopped guest is util-vserver's ERROR (127), an unknown one too.
    let out = tool(&w, "vwait", &["--status-fd", "1", &g]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("ERROR {}\n", libc::ESRCH));
    assert_eq!(tool(&w, "vwait", &["no-such-guest"]).status.code(), Some(127));
    assert_eq!(tool(&w, "vwait", &["--bogus", &g]).status.code(), Some(127), "bad usage must not look like TIMEOUT");

    // --terminate stops a guest that outlives the timeout: KILLED, exit 1.
    w.ok(&g, &["start"]);
    let out = tool(&w, "vwait", &["--timeout", "1", "--terminate", "--status-fd", "1", &g]);
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(1), "KILLED\n"), "{}", describe(&out));
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(3));
    w.assert_nothing_left(&g);
}

#[test]
fn vuname_reads_and_sets_the_guest_names() {
    if !ready() {
        return;
    }
    let w = World::new("vuname");
    let (g, xid) = w.busybox_guest("vuname");
    w.ok(&g, &["start"]);
    let host = nix_uname();

    let out = tool(&w, "vuname", &["--xid", &g]);
    assert!(out.status.success(), "{}", describe(&out));
    let words: Vec<String> = stdout(&out).split(' ').map(|s| s.trim().to_string()).collect();
    assert_eq!(words[0], w.guest_conf(&g).display().to_string(), "context is the configuration directory");
    assert_eq!(words[1], "Linux");
    assert_eq!(words[2], w.sh_ok(&g, "hostname").trim());
    assert_eq!(words[3], host.0, "the release is the kernel's");

    let out = tool(&w, "vuname", &["-s", "--xid", &xid.to_string(), "-t", "nodename=www.example.org", "-t", "DomainName=example.org"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.sh_ok(&g, "hostname").trim(), "www.example.org");
    assert_eq!(w.sh_ok(&g, "cat /proc/sys/kernel/domainname").trim(), "example.org");
    let out = tool(&w, "vuname", &["--xid", &g, "nodename", "domainname"]);
    assert_eq!(stdout(&out), "www.example.org example.org\n");
    // The host's own names are untouched.
    assert_eq!(nix_uname().1, host.1);

    // From files, as util-vserver's start did with uts/.
    let dir = w.root.join("uts");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("nodename"), "fromdir\n").unwrap();
    let out = tool(&w, "vuname", &["--xid", &g, "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.sh_ok(&g, "hostname").trim(), "fromdir");
    assert!(tool(&w, "vuname", &["--xid", &g, "--dir", "/nonexistent", "--missingok"]).status.success());

    // What a stock kernel cannot change is refused by name (util-vserver's 255).
    let out = tool(&w, "vuname", &["-s", "--xid", &g, "-t", "release=1.0"]);
    assert_eq!(out.status.code(), Some(255), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("release cannot be changed"), "{}", describe(&out));
    assert_eq!(tool(&w, "vuname", &["--xid", &g, "hostname"]).status.code(), Some(255));
    w.ok(&g, &["stop"]);
    assert_eq!(tool(&w, "vuname", &["--xid", &g]).status.code(), Some(255));
}

#[test]
fn vapt_get_runs_in_each_guest_and_reports_each_result() {
    if !ready() {
        return;
    }
    let w = World::new("vapt");
    let (a, _) = w.busybox_guest("apta");
    let (b, _) = w.busybox_guest("aptb");
    // A stand-in apt-get in each guest: it names its guest and arguments; b's fails.
    for (g, code) in [(&a, 0), (&b, 100)] {
        let f = w.guest_root(g).join("usr/bin/apt-get");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, format!("#!/bin/sh\necho \"apt-get in $(hostname): $*\"\nexit {code}\n")).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
        w.ok(g, &["start"]);
    }
    let out = tool(&w, "vapt-get", &[&a, "--", "install", "-y", "less"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("apt-get in {a}: install -y less\n"));

    let out = tool(&w, "vapt-get", &["--running", "--", "update"]);
    assert_eq!(out.status.code(), Some(100), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("apt-get in {a}: update")) && text.contains(&format!("apt-get in {b}: update")), "{text}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains(&format!("vapt-get failed on vserver '{b}' with errorcode 100")), "{err}");
    assert!(err.contains(&format!("{a} ok, {b} failed (100)")), "{err}");

    w.ok(&a, &["stop"]);
    let out = tool(&w, "vapt-get", &[&a, "--", "update"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"), "{}", describe(&out));
    let out = tool(&w, "vapt-get", &["--mark", "nomark", "--", "update"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("vwait did not return after the guest stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (release, nodename) of the host.
fn nix_uname() -> (String, String) {
    let out = Command::new("uname").args(["-r"]).output().unwrap();
    let node = Command::new("uname").args(["-n"]).output().unwrap();
    (stdout(&out).trim().to_string(), stdout(&node).trim().to_string())
}

#[test]
fn vserver_info_answers_util_vservers_questions() {
    if !ready() {
        return;
    }
    let w = World::new("vinfo");
    let (g, xid) = w.busybox_guest("vinfo");
    let ask = |args: &[&str]| {
        let out = tool(&w, "vserver-info", args);
        (out.status.code(), stdout(&out).trim_end().to_string())
    };
    let none = (Some(1), String::new());
    // Stopped: the configured xid, unless only a running one is asked for.
    assert_eq!(ask(&[&g, "CONTEXT"]), (Some(0), xid.to_string()));
    assert_eq!(ask(&[&g, "CONTEXT", "false"]), none);
    assert_eq!(ask(&[&g, "RUNNING"]), none);
    assert_eq!(ask(&[&g, "CFGDIR"]), (Some(0), w.guest_conf(&g).display().to_string()));
    assert_eq!(ask(&[w.guest_conf(&g).to_str().unwrap(), "NAME"]), (Some(0), g.clone()));
    assert_eq!(ask(&[&g, "VDIR"]), (Some(0), w.guest_root(&g).display().to_string()));
    assert_eq!(ask(&[&g, "APPDIR", "init"]).0, Some(if w.guest_conf(&g).join("apps/init").is_dir() { 0 } else { 1 }));
    assert_eq!(ask(&[&xid.to_string(), "XIDTYPE"]), (Some(0), "static".into()));
    assert_eq!(ask(&[&xid.to_string(), "XIDTYPE", "dynamic"]), none);
    assert_eq!(ask(&["0", "XIDTYPE"]), (Some(0), "main".into()));

    w.ok(&g, &["start"]);
    let (init, _) = pids(&w, &g);
    assert_eq!(ask(&[&g, "CONTEXT", "false"]), (Some(0), xid.to_string()));
    assert_eq!(ask(&[&g, "RUNNING"]), (Some(0), "1".into()));
    assert_eq!(ask(&["-q", &g, "RUNNING"]), (Some(0), String::new()));
    assert_eq!(ask(&[&xid.to_string(), "RUNNING"]), (Some(0), "1".into()));
    assert_eq!(ask(&[&g, "INITPID"]), (Some(0), init.to_string()));
    assert_eq!(ask(&[&xid.to_string(), "ID"]), (Some(0), w.guest_conf(&g).display().to_string()));
    assert_eq!(ask(&[&init.to_string(), "XID"]), (Some(0), xid.to_string()));
    assert_eq!(ask(&[&init.to_string(), "INITPID_PID"]), (Some(0), init.to_string()));
    assert_eq!(ask(&[&std::process::id().to_string(), "XID"]), (Some(0), "0".into()));
    assert_eq!(ask(&[&g, "UTS", "nodename"]), (Some(0), w.sh_ok(&g, "hostname").trim().to_string()));
    assert_eq!(ask(&["-", "FEATURE", "vwait"]).0, Some(0));
    assert_eq!(ask(&["-", "FEATURE", "PERSISTENT"]), none);
    assert_eq!(ask(&["-", "APIVER"]).0, Some(1));
    assert_eq!(ask(&[&g, "NOSUCHTAG"]).0, Some(1));
    w.ok(&g, &["stop"]);
}

#[test]
fn vtop_shows_the_busy_guest_first() {
    if !ready() {
        return;
    }
    let w = World::new("vtop");
    let (idle, _) = w.busybox_guest("vtopidle");
    let (busy, xid) = w.busybox_guest("vtopbusy");
    w.ok(&idle, &["start"]);
    w.ok(&busy, &["start"]);
    w.sh_ok(&busy, "(while :; do :; done) >/dev/null 2>&1 & echo started");

    let out = tool(&w, "vtop", &["-b", "-n", "2", "-d", "1", "-p", "40"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    let frames: Vec<&str> = text.split("vtop - ").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 2, "{text}");
    let frame = frames[1];
    assert!(frame.contains("2 guests running"), "{frame}");
    let rows: Vec<Vec<&str>> = frame.lines().skip(3).take_while(|l| !l.is_empty()).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..3], ["0", "root", "server"], "the host first: {frame}");
    assert_eq!(rows[1][..2], [xid.to_string().as_str(), busy.as_str()], "the busy guest next: {frame}");
    let cpu: f64 = rows[1][3].parse().unwrap();
    assert!(cpu > 5.0, "a spinning shell shows CPU: {frame}");
    assert!(rows.iter().any(|r| r[1] == idle), "{frame}");
    // The spinning process is listed with its context.
    assert!(frame.lines().any(|l| l.contains(&format!(" {xid} {busy} ")) && l.ends_with(" sh")), "{frame}");
}

/// A command whose stdout is a pipe nobody reads any more (as after
/// `| head -1`): it must end like a C tool, by SIGPIPE and silently.
fn with_closed_stdout(cmd: &mut Command) -> std::process::ExitStatus {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are fresh descriptors of this process.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = cmd.stdout(Stdio::from(write)).stderr(Stdio::piped()).output().unwrap();
    assert!(out.stderr.is_empty(), "{cmd:?} said something on a closed pipe: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{cmd:?}: {:?}", out.status);
    out.status
}

#[test]
fn every_tool_ends_quietly_on_a_closed_pipe() {
    if !ready() {
        return;
    }
    let w = World::new("pipe");
    let (g, _) = w.busybox_guest("pipe");
    w.ok(&g, &["start"]);
    with_closed_stdout(w.cmd("vserver").args([&g, "status"]));
    with_closed_stdout(w.cmd("vserver").args([&g, "status", "--json"]));
    with_closed_stdout(w.cmd("vserver-stat").arg("--json"));
    with_closed_stdout(w.cmd("vserver-info").arg("--json"));
    with_closed_stdout(w.cmd("vps").arg("ax"));
    with_closed_stdout(w.cmd("vlimit").args(["-c", &g, "--stats"]));
    with_closed_stdout(w.cmd("vuname").args(["--xid", &g]));
    with_closed_stdout(w.cmd("vtop").args(["-b", "-d", "0.1"]));
    w.ok(&g, &["stop"]);
}

#[test]
fn as_an_ordinary_user_the_tools_say_they_need_root() {
    if !ready() {
        return;
    }
    let w = World::new("nonroot");
    let (g, _) = w.busybox_guest("nonroot");
    w.ok(&g, &["start"]);
    let as_nobody = |binary: &str, args: &[&str]| {
        let out = run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(vserver_rs_tests::bin(binary))
            .args(args)
            .env("VSERVER_CONFDIR", &w.confdir)
            .env("VSERVER_VDIRBASE", &w.vdirbase)
            .env("VSERVER_RUNDIR", &w.rundir)
            .env_remove("VSERVER_CGROUP_ROOT"));
        assert!(!out.status.success(), "{binary} {args:?} as nobody: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("needs root"), "{binary} {args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    as_nobody("vkill", &["--xid", &g, "-s", "0"]);
    as_nobody("vuname", &["-s", "--xid", &g, "-t", "nodename=x"]);
    as_nobody("vserver", &[&g, "stop"]);
    as_nobody("vserver", &[&g, "exec", "true"]);
    w.ok(&g, &["stop"]);
    as_nobody("vserver", &[&g, "start"]);
}
