//! A real Debian guest with sysvinit's rc scripts under the built-in init
//! (style `sysv`): its own tools (`runlevel`, `telinit`, `shutdown`,
//! `reboot`, `halt`, invoke-rc.d, dpkg and sysvinit-core's postinst) work
//! as under sysvinit, and installing packages never stops the guest.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use vserver_rs_tests::debian::DebianInit;
use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, wait_until};

fn init_pid(w: &World, g: &str) -> Option<i64> {
    let s: serde_json::Value = serde_json::from_slice(&fs::read(w.rundir.join(g).join("state.json")).ok()?).ok()?;
    s["init"]["pid"].as_i64()
}

fn ssh_banner(ip: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&format!("{ip}:22").parse().unwrap(), Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 64];
    s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"SSH-2.0-OpenSSH"))
}

fn http_ok(ip: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&format!("{ip}:80").parse().unwrap(), Duration::from_secs(2)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

fn services_up(w: &World, g: &str, ip: &str) {
    wait_until("sshd to answer on the guest's address", Duration::from_secs(60), || ssh_banner(ip));
    let ps = w.sh_ok(g, "ps -e -o comm=");
    assert!(ps.lines().any(|l| l == "cron") && ps.lines().any(|l| l == "sshd"), "{ps}");
}

#[test]
fn a_debian_sysv_guest_lives_through_its_own_tools() {
    // An address of our own on lo, away from other tests'.
    let ip = format!("127.78.{}.{}", std::process::id() % 250 + 1, 21);
    let w = World::new("jdeb");
    let Some((g, _)) = w.debian_guest("jd", DebianInit::Sysv, &[&format!("lo:{ip}/32")]) else { return };
    w.ok(&g, &["start"]);
    // The rc scripts of runlevel 3 ran; the runlevel is sysvinit's.
    services_up(&w, &g, &ip);
    assert_eq!(w.sh_ok(&g, "runlevel").trim(), "N 3");
    assert!(w.sh_ok(&g, "who -r").contains("run-level 3"));
    // nginx's default site also listens on [::]:80, which a guest without an
    // IPv6 address cannot bind yet (issue 10, the net helper's fix): the
    // site is made IPv4-only, and invoke-rc.d starts it (it asks `runlevel`).
    w.sh_ok(&g, "sed -i '/listen \\[::\\]/d' /etc/nginx/sites-available/default && invoke-rc.d nginx start");
    wait_until("nginx to answer", Duration::from_secs(30), || http_ok(&ip));

    // telinit changes the runlevel through /run/initctl.
    w.sh_ok(&g, "telinit 2");
    wait_until("runlevel 2", Duration::from_secs(30), || w.sh_ok(&g, "runlevel").trim() == "3 2");
    w.sh_ok(&g, "telinit 3");
    wait_until("runlevel 3", Duration::from_secs(30), || w.sh_ok(&g, "runlevel").trim() == "2 3");

    // Package work never stops the guest: dpkg --configure -a, and
    // reinstalling sysvinit-core (its postinst signals pid 1 and runs `init u`).
    let first = init_pid(&w, &g).unwrap();
    let Some(deb) = vserver_rs_tests::debian::downloaded_deb("sysvinit-core") else { return };
    fs::copy(&deb, w.guest_root(&g).join("tmp").join(deb.file_name().unwrap())).unwrap();
    w.sh_ok(&g, "dpkg --configure -a");
    let reinstall = w.sh(&g, "DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/sysvinit-core_*.deb && dpkg --configure -a");
    assert!(reinstall.status.success(), "{}", describe(&reinstall));
    assert!(String::from_utf8_lossy(&reinstall.stdout).contains("Setting up sysvinit-core"), "{}", describe(&reinstall));
    // util-vserver's package helpers run the guest's own apt.
    let policy = w.ok(&g, &["apt-cache", "policy", "sysvinit-core"]);
    assert!(policy.contains("Installed: 3."), "{policy}");
    // What sysvinit's packages and admins send pid 1 directly, too.
    w.sh_ok(&g, "kill -USR1 1; kill -HUP 1; kill -TERM 1; kill -WINCH 1");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(init_pid(&w, &g), Some(first), "the guest restarted or stopped");
    assert_eq!(w.vserver(&[&g, "status"]).status.code(), Some(0));
    assert_eq!(w.sh_ok(&g, "runlevel").trim(), "2 3");
    // /run/initctl was re-opened after USR1: telinit still answers.
    w.sh_ok(&g, "telinit 2 && telinit 3");

    // `shutdown -r now` and `reboot` run rc 6 and come back with the services
    // (nginx too now: rc 3 starts it with the IPv4-only site).
    let rc6_runs = |w: &World| {
        fs::read_to_string(w.rundir.join(&g).join("console.log")).unwrap_or_default().matches("Switching to runlevel: 6").count()
    };
    for (i, cmd) in ["shutdown -r now", "reboot"].into_iter().enumerate() {
        let how = cmd;
        let before = init_pid(&w, &g).unwrap();
        w.sh(&g, cmd);
        wait_until(&format!("the guest to come back after {how}"), Duration::from_secs(60), || {
            init_pid(&w, &g).is_some_and(|p| p != before) && w.vserver(&[&g, "status"]).status.code() == Some(0)
        });
        services_up(&w, &g, &ip);
        wait_until("nginx after the reboot", Duration::from_secs(30), || http_ok(&ip));
        assert_eq!(w.sh_ok(&g, "runlevel").trim(), "N 3");
        assert_eq!(rc6_runs(&w), i + 1, "{how}: rc 6 did not run");
    }

    // `halt` runs rc 0 and stops the guest.
    w.sh(&g, "halt");
    wait_until("the guest to stop after halt", Duration::from_secs(60), || w.vserver(&[&g, "status"]).status.code() == Some(3));
    let console = fs::read_to_string(w.rundir.join(&g).join("console.log")).unwrap_or_default();
    assert!(console.contains("Switching to runlevel: 0"), "rc 0 did not run:\n{console}");
    assert!(!ssh_banner(&ip));
    w.assert_nothing_left(&g);
}
