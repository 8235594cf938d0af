//! The exit-code contract as an admin's idempotent shell script relies on
//! it (util-vserver's codes and wording): a real script run by bash against
//! a busybox guest, plus `delete`'s question on a terminal and
//! `--all-marked` with dependencies.

use std::fs;
use std::process::Command;

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{bin, describe, require, require_busybox, require_root};

const SCRIPT: &str = r#"
set -u
fail() { echo "FAIL: $*"; exit 1; }
expect() { want=$1; shift; "$@" >/dev/null 2>&1; got=$?; [ "$got" = "$want" ] || fail "$* exited $got, wanted $want"; }
vs() { "$VSERVER" "$@"; }

# Bad usage is 2 everywhere.
expect 2 vs
expect 2 vs "$G" frobnicate
expect 2 vs --all-marked m exec true
expect 2 vs "$G" build
expect 2 "$VLIMIT"

# A stopped guest, in util-vserver's words.
out=$(vs "$G" status); rc=$?
[ $rc = 3 ] || fail "status of a stopped guest exited $rc"
[ "$out" = "Vserver '$G' is stopped" ] || fail "status said: $out"
expect 1 vs "$G" running

# Start is idempotent.
expect 0 vs "$G" start
msg=$(vs "$G" start 2>&1); rc=$?
[ $rc = 0 ] || fail "starting a running guest exited $rc"
[ "$msg" = "vserver '$G' already running" ] || fail "second start said: $msg"
expect 0 vs "$G" running

# The guest by name, by context id, by configuration directory.
[ "$(vs "$G" status | sed -n 1p)" = "Vserver '$G' is running at context '$XID'" ] || fail "status by name: $(vs "$G" status)"
[ "$(vs "$XID" status | sed -n 1p)" = "Vserver '$XID' is running at context '$XID'" ] || fail "status by xid: $(vs "$XID" status)"
[ "$(vs "$VSERVER_CONFDIR/$G/" status | sed -n 1p)" = "Vserver '$VSERVER_CONFDIR/$G' is running at context '$XID'" ] || fail "status by path"
vs "$G" status | sed -n 2p | grep -q '^Number of processes:  [1-9]' || fail "process count: $(vs "$G" status)"
vs "$G" status | sed -n 3p | grep -q '^Uptime:               [0-9][0-9]:[0-9][0-9]$' || fail "uptime: $(vs "$G" status)"
vs "$XID" status --json | grep -q '"status":"running"' || fail "json: $(vs "$XID" status --json)"
expect 0 vs "$XID" exec true

# The idioms of init scripts and cron jobs.
vs "$G" status >/dev/null || fail "status of a running guest"
vs "$G" running || vs "$G" start || fail "running || start"

# Stop is idempotent.
expect 0 vs "$G" stop
msg=$(vs "$G" stop 2>&1); rc=$?
[ $rc = 0 ] || fail "stopping a stopped guest exited $rc"
[ "$msg" = "vserver '$G' is not running" ] || fail "second stop said: $msg"
expect 3 vs "$G" status
expect 3 vs "$XID" status

# restart of a stopped guest starts it; restart of a running one too.
expect 0 vs "$G" restart
expect 0 vs "$G" restart
expect 0 vs "$G" status
expect 0 vs "$XID" stop

# Failures are 1.
expect 1 vs no-such-guest start
expect 1 vs no-such-guest status
expect 1 vs 49000 status

# delete without a terminal asks nothing; --force never asks.
expect 0 vs "$G" delete --force
[ -e "$VSERVER_CONFDIR/$G" ] && fail "the configuration is still there"
echo ALL-OK
"#;

#[test]
fn an_admins_script_gets_util_vservers_exit_codes() {
    if !(require_root() && require_busybox()) {
        return;
    }
    let w = World::new("script");
    let (g, xid) = w.busybox_guest("sc");
    let script = w.root.join("admin.sh");
    fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .env("VSERVER", bin("vserver"))
        .env("VLIMIT", bin("vlimit"))
        .env("VSERVER_CONFDIR", &w.confdir)
        .env("VSERVER_VDIRBASE", &w.vdirbase)
        .env("VSERVER_RUNDIR", &w.rundir)
        .env_remove("VSERVER_CGROUP_ROOT")
        .env("G", &g)
        .env("XID", xid.to_string())
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ALL-OK"), "{}", describe(&out));
    w.assert_nothing_left(&g);
}

#[test]
fn delete_asks_on_a_terminal() {
    if !(require_root() && require_busybox()) {
        return;
    }
    if !require(Command::new("script").arg("--version").output().is_ok(), "script(1) from util-linux for a terminal") {
        return;
    }
    let w = World::new("delask");
    let (g, _) = w.busybox_guest("da");
    // script(1) gives the command a pty; the answer comes through it.
    let ask = |answer: &str| {
        let cmd = format!("{} {g} delete", bin("vserver").display());
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("VSERVER_CONFDIR", &w.confdir)
            .env("VSERVER_VDIRBASE", &w.vdirbase)
            .env("VSERVER_RUNDIR", &w.rundir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let no = ask("n\n");
    assert_eq!(no.status.code(), Some(2), "{}", describe(&no));
    assert!(
        String::from_utf8_lossy(&no.stdout).contains(&format!("Are you sure you want to delete the vserver {g} (y/N)")),
        "{}",
        describe(&no)
    );
    assert!(w.guest_conf(&g).exists() && w.guest_root(&g).exists(), "nothing may be deleted on no");
    let yes = ask("y\n");
    assert_eq!(yes.status.code(), Some(0), "{}", describe(&yes));
    assert!(!w.guest_conf(&g).exists() && !w.guest_root(&g).exists());
}

#[test]
fn all_marked_honours_depends_and_runs_independent_guests_in_parallel() {
    if !(require_root() && require_busybox()) {
        return;
    }
    let w = World::new("depends");
    let (db, _) = w.busybox_guest("db");
    let (web, _) = w.busybox_guest("web");
    let (other, _) = w.busybox_guest("ot");
    let log = w.root.join("order.log");
    // db is not marked: web's dependency is started anyway, and first.
    for g in [&web, &other] {
        w.write_conf(g, "apps/init/mark", "compat\nsomething-else\n");
    }
    w.write_conf(&web, "apps/init/depends", &format!("{db}\n"));
    for g in [&db, &web, &other] {
        let s = w.guest_conf(g).join("scripts/post-start");
        fs::create_dir_all(s.parent().unwrap()).unwrap();
        let pre = w.guest_conf(g).join("scripts/pre-stop");
        fs::write(&s, format!("#!/bin/sh\necho started $2 >> {}\n", log.display())).unwrap();
        fs::write(&pre, format!("#!/bin/sh\necho stopping $2 >> {}\n", log.display())).unwrap();
        for f in [&s, &pre] {
            fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
    }
    // db and other do not depend on each other: they start at the same
    // time, which their initialize scriptlets prove by waiting for each other.
    for (g, peer) in [(&db, &other), (&other, &db)] {
        let s = w.guest_conf(g).join("scripts/initialize");
        let mark = |n: &str| w.root.join(format!("init-{n}")).display().to_string();
        fs::write(
            &s,
            format!(
                "#!/bin/sh
touch {}
for i in $(seq 100); do [ -e {} ] && exit 0; sleep 0.1; done
exit 1
",
                mark(g),
                mark(peer)
            ),
        )
        .unwrap();
        fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let out = w.vserver(&["--all-marked", "compat", "-j", "3", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    for g in [&db, &web, &other] {
        assert_eq!(w.vserver(&[g, "status"]).status.code(), Some(0), "{g} runs");
    }
    let order = fs::read_to_string(&log).unwrap();
    let pos = |what: &str| order.lines().position(|l| l == what).unwrap_or_else(|| panic!("{what} missing: {order}"));
    assert!(pos(&format!("started {db}")) < pos(&format!("started {web}")), "{order}");
    for g in [&db, &other] {
        fs::remove_file(w.guest_conf(g).join("scripts/initialize")).unwrap();
    }
    // Running guests are left alone by a second run.
    assert!(w.vserver(&["--all-marked", "compat", "start"]).status.success());
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);
    // stop: the marked guests only; the unmarked db they depend on stays up.
    let out = w.vserver(&["--all-marked", "compat", "stop"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(w.vserver(&[&web, "status"]).status.code(), Some(3));
    assert_eq!(w.vserver(&[&other, "status"]).status.code(), Some(3));
    assert_eq!(w.vserver(&[&db, "status"]).status.code(), Some(0), "an unmarked dependency is not stopped");
    w.ok(&db, &["stop"]);
    // A cycle is refused before anything starts.
    w.write_conf(&db, "apps/init/mark", "compat\n");
    w.write_conf(&db, "apps/init/depends", &format!("{web}\n"));
    let out = w.vserver(&["--all-marked", "compat", "start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cycle"), "{}", describe(&out));
    for g in [&db, &web, &other] {
        w.assert_nothing_left(g);
    }
}
