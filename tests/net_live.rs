//! `vserver NAME ip add|del|show`: a running guest's IP set changes without
//! a restart, checked by binding inside. Loopback addresses only.

use std::io::Read;
use std::net::TcpStream;
use std::process::Command;

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require, require_busybox, require_root, run, stdout};

fn lo_has(addr: &str) -> bool {
    let out = run(Command::new("ip").args(["-o", "addr", "show", "dev", "lo"]));
    stdout(&out).split_whitespace().any(|w| w.split('/').next() == Some(addr))
}

#[test]
fn addresses_come_and_go_while_the_guest_runs() {
    if !(require_root() && require_busybox()) {
        return;
    }
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the probe program") {
        return;
    }
    let w = World::new("live");
    let (g, _) = w.busybox_guest("live");
    w.write_conf(&g, "interfaces/0/ip", "127.0.0.81\n");
    w.write_conf(&g, "interfaces/0/nodev", "");
    let bin = w.guest_root(&g).join("bin/netprobe");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/netprobe.c").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    w.ok(&g, &["start"]);
    let bind = |ip: &str| String::from_utf8_lossy(&w.sh(&g, &format!("netprobe bind {ip} 0")).stdout).trim().to_string();
    assert_eq!(bind("127.0.0.82"), format!("err {}", libc::EADDRNOTAVAIL));
    assert!(!lo_has("127.0.0.82"));

    // Add, on lo, saved to interfaces/.
    w.ok(&g, &["ip", "add", "127.0.0.82/32", "--dev", "lo", "--save"]);
    assert!(bind("127.0.0.82").starts_with("ok 127.0.0.82:"), "{}", bind("127.0.0.82"));
    assert!(lo_has("127.0.0.82"), "the address is on its device");
    let show = w.ok(&g, &["ip", "show"]);
    assert!(show.contains("127.0.0.81/32") && show.contains("127.0.0.82/32 dev lo"), "{show}");
    let saved = w.guest_conf(&g).join("interfaces/1");
    assert_eq!(std::fs::read_to_string(saved.join("ip")).unwrap(), "127.0.0.82\n");
    assert_eq!(std::fs::read_to_string(saved.join("dev")).unwrap(), "lo\n");

    // A listener holds it: removal is refused and changes nothing.
    let mut server = w
        .cmd("vserver")
        .args([&g, "exec", "/bin/netprobe", "serve-on", "127.0.0.82", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 64];
    let n = server.stdout.as_mut().unwrap().read(&mut line).unwrap();
    let listening = String::from_utf8_lossy(&line[..n]).to_string();
    let port: u16 = listening.trim().rsplit(':').next().unwrap().parse().unwrap();
    let out = w.vserver(&[&g, "ip", "del", "127.0.0.82"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sockets are bound to 127.0.0.82"), "{}", describe(&out));
    assert!(bind("127.0.0.82").starts_with("ok "), "the set is unchanged");
    let mut c = TcpStream::connect(("127.0.0.82", port)).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "guest");
    assert!(server.wait().unwrap().success());

    // Now it goes: from the set, from lo, from interfaces/.
    w.ok(&g, &["ip", "del", "127.0.0.82", "--save"]);
    assert_eq!(bind("127.0.0.82"), format!("err {}", libc::EADDRNOTAVAIL));
    assert!(!lo_has("127.0.0.82"));
    assert!(!saved.exists());
    assert!(bind("127.0.0.81").starts_with("ok "), "the rest of the set stays");

    // Errors a user can make: exit 2 for bad usage, 1 for a refused change.
    assert_eq!(w.vserver(&[&g, "ip", "add", "127.0.0.83/40"]).status.code(), Some(2));
    let dup = w.vserver(&[&g, "ip", "add", "127.0.0.81"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already"), "{}", describe(&dup));
    let missing = w.vserver(&[&g, "ip", "del", "127.0.0.99"]);
    assert_eq!(missing.status.code(), Some(1));

    // A live addition on a device goes with the guest (not saved this time).
    w.ok(&g, &["ip", "add", "127.0.0.84/32", "--dev", "lo"]);
    assert!(lo_has("127.0.0.84"));
    w.ok(&g, &["stop"]);
    assert!(!lo_has("127.0.0.84"), "a live-added address must go at stop");
    w.assert_nothing_left(&g);
    let out = w.vserver(&[&g, "ip", "add", "127.0.0.85"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"), "{}", describe(&out));
}
