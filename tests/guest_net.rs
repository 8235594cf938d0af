//! A guest's IP set from the inside: a busybox guest with one loopback
//! address (127.0.0.0/8 only, as every network test here) and a static probe
//! program, against listeners of the host.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use vserver_rs_tests::guest::World;
use vserver_rs_tests::{describe, require, require_busybox, require_root};

fn guest_with_probe(w: &World, ip: &str) -> Option<String> {
    if !(require_root() && require_busybox()) {
        return None;
    }
    let (g, _) = w.busybox_guest("net");
    guest_with_probe_named(w, g, ip)
}

/// A built guest `g` gets `ip` as its only address and the probe, and starts.
fn guest_with_probe_named(w: &World, g: String, ip: &str) -> Option<String> {
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the probe program") {
        return None;
    }
    w.write_conf(&g, "interfaces/0/ip", &format!("{ip}\n"));
    w.write_conf(&g, "interfaces/0/prefix", "8\n");
    w.write_conf(&g, "interfaces/0/nodev", "");
    let bin = w.guest_root(&g).join("bin/netprobe");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/netprobe.c").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    w.ok(&g, &["start"]);
    Some(g)
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

#[test]
fn guest_binds_only_its_own_address_and_the_wildcard_lands_on_it() {
    let w = World::new("gnet");
    let ip = "127.0.0.61";
    let Some(g) = guest_with_probe(&w, ip) else { return };
    let port = free_port("127.0.0.1").to_string();
    let own = w.sh_ok(&g, &format!("netprobe bind {ip} {port}"));
    assert_eq!(own.trim(), format!("ok {ip}:{port}"));
    let wildcard = w.sh_ok(&g, &format!("netprobe bind 0.0.0.0 {port}"));
    assert_eq!(wildcard.trim(), format!("ok {ip}:{port}"), "0.0.0.0 must land on the guest's first address");
    let other = w.sh(&g, &format!("netprobe bind 127.0.0.62 {port}"));
    assert!(!other.status.success(), "binding another address must fail: {}", describe(&other));
    assert_eq!(String::from_utf8_lossy(&other.stdout).trim(), format!("err {}", libc::EADDRNOTAVAIL));
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn guest_to_host_and_host_to_guest_over_loopback() {
    let w = World::new("gnet2");
    let ip = "127.0.0.63";
    if !(require_root() && require_busybox()) {
        return;
    }
    let (g, _) = w.busybox_guest("net");
    // Host loopback services are out of the guest's reach but for those
    // its config allows.
    w.write_conf(&g, "interfaces/allow-loopback", "127.0.0.64\n");
    let Some(g) = guest_with_probe_named(&w, g, ip) else { return };
    let xid: u32 = std::fs::read_to_string(w.guest_conf(&g).join("context")).unwrap().trim().parse().unwrap();
    let lback = vserver_core::net::lback_for_xid(xid).unwrap().to_string();

    // Guest to host: the allowed host listener is reached, and the
    // connection comes from the guest's own loopback address.
    let host = TcpListener::bind("127.0.0.64:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = host.accept().unwrap();
        s.write_all(b"host").unwrap();
        peer
    });
    let out = w.sh_ok(&g, &format!("netprobe connect 127.0.0.64 {port}"));
    let peer = server.join().unwrap();
    assert_eq!(peer.ip().to_string(), lback, "the source must be the guest's loopback address");
    assert!(out.contains("host"), "{out}");
    // Another host loopback address is refused at connect.
    let other = TcpListener::bind("127.0.0.65:0").unwrap();
    let oport = other.local_addr().unwrap().port();
    let out = w.sh(&g, &format!("netprobe connect 127.0.0.65 {oport}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("err {}", libc::EPERM), "{}", describe(&out));

    // Host to guest: a guest server on the wildcard serves its own address.
    let gport = free_port(ip);
    let mut server = w
        .cmd("vserver")
        .args([&g, "exec", "/bin/netprobe", "serve", &gport.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 64];
    let n = server.stdout.as_mut().unwrap().read(&mut line).unwrap();
    assert!(String::from_utf8_lossy(&line[..n]).contains(&format!("listening {ip}:{gport}")));
    let mut c = TcpStream::connect((ip, gport)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "guest");
    assert!(server.wait().unwrap().success());
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn guest_without_interfaces_binds_nothing_unless_unrestricted() {
    if !(require_root() && require_busybox()) {
        return;
    }
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the probe program") {
        return;
    }
    let w = World::new("gnet3");
    let (g, _) = w.busybox_guest("nonet");
    let bin = w.guest_root(&g).join("bin/netprobe");
    assert!(Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/netprobe.c").status().unwrap().success());
    w.ok(&g, &["start"]);
    let port = free_port("127.0.0.1");
    // Its own 127.0.0.1 (remapped to its private loopback address) is all it has.
    let own = w.sh_ok(&g, &format!("netprobe bind 127.0.0.1 {port}"));
    assert!(own.starts_with("ok 127.0.0.1"), "{own}");
    let out = w.sh(&g, &format!("netprobe bind 127.0.0.66 {port}"));
    assert!(!out.status.success(), "a guest with no interfaces may bind no host address: {}", describe(&out));
    w.ok(&g, &["stop"]);
    w.write_conf(&g, "interfaces/unrestricted", "");
    w.ok(&g, &["start"]);
    let out = w.sh_ok(&g, &format!("netprobe bind 127.0.0.66 {port}"));
    assert!(out.starts_with("ok 127.0.0.66"), "{out}");
    w.ok(&g, &["stop"]);
    w.assert_nothing_left(&g);
}

#[test]
fn a_guest_with_its_own_network_namespace_sees_only_its_devices() {
    if !(require_root() && require_busybox()) {
        return;
    }
    let w = World::new("gnetns");
    let (g, xid) = w.busybox_guest("ns");
    w.write_conf(&g, "namespaces", "net\n");
    w.ok(&g, &["start"]);
    let devices = w.sh_ok(&g, "ls /sys/class/net | sort | tr '\\n' ' '");
    assert_eq!(devices.trim(), "eth0 lo", "only its own devices: {devices}");
    assert!(std::path::Path::new(&format!("/sys/class/net/vs{xid}")).exists(), "the host end of the veth pair");
    assert!(w.sh_ok(&g, "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags").contains("0x9"), "lo is up");
    w.ok(&g, &["stop"]);
    assert!(!std::path::Path::new(&format!("/sys/class/net/vs{xid}")).exists(), "the veth pair must go with the guest");
    w.assert_nothing_left(&g);
}

#[test]
fn ping_sockets_only_with_raw_icmp() {
    let w = World::new("gping");
    let Some(g) = guest_with_probe(&w, "127.0.0.67") else { return };
    let out = w.sh(&g, "netprobe ping x");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("err {}", libc::EPERM),
        "seccomp refuses ping sockets without RAW_ICMP"
    );
    w.ok(&g, &["stop"]);

    // With RAW_ICMP and the host's network, the host-wide sysctl decides;
    // this test never changes it.
    w.write_conf(&g, "ccapabilities", "RAW_ICMP\n");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let r: Vec<u64> = range.split_whitespace().map(|v| v.parse().unwrap()).collect();
    let out = w.vserver(&[&g, "start"]);
    if r[0] == 0 && r[1] >= r[0] {
        assert!(out.status.success(), "{}", describe(&out));
        assert_eq!(w.sh_ok(&g, "netprobe ping x").trim(), "ok");
        w.ok(&g, &["stop"]);
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("ping_group_range"), "{}", describe(&out));
        w.assert_nothing_left(&g);
    }

    // In a network namespace of its own the guest gets the sysctl set there.
    w.write_conf(&g, "namespaces", "net\n");
    w.ok(&g, &["start"]);
    assert_eq!(w.sh_ok(&g, "netprobe ping x").trim(), "ok");
    w.ok(&g, &["stop"]);
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(), range, "the host's setting is unchanged");
    w.assert_nothing_left(&g);
}

/// Appends a script to the busybox guest's rcS, which its init (pid 1)
/// runs at start: processes started by the guest's init are in the guest's
/// Landlock domain (`vserver exec` joins from outside the monitor and is
/// not, until joiners are spawned by the monitor).
fn at_guest_start(w: &World, g: &str, script: &str) {
    use std::io::Write as _;
    let rcs = w.guest_root(g).join("etc/init.d/rcS");
    let mut f = std::fs::OpenOptions::new().append(true).open(rcs).unwrap();
    writeln!(f, "{script}").unwrap();
}

/// Waits (bounded) for a file the guest writes, then returns its content.
fn guest_file(w: &World, g: &str, rel: &str) -> String {
    let p = w.guest_root(g).join(rel);
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(&p) {
            if !s.is_empty() {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the guest never wrote {}", p.display());
}

fn busybox_guest_with_probe(w: &World, base: &str) -> String {
    let (g, _) = w.busybox_guest(base);
    let bin = w.guest_root(&g).join("bin/netprobe");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg("tests/guest-tools/netprobe.c").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    g
}

#[test]
fn abstract_unix_sockets_are_private_to_the_guest() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use vserver_core::net::abstract_unix::{probe, Support, SHARED_FLAG};
    if !(require_root() && require_busybox()) {
        return;
    }
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the probe program") {
        return;
    }
    let w = World::new("gunix");
    let tag = format!("vs-gunix-{}", std::process::id());
    let host = UnixListener::bind_addr(&SocketAddr::from_abstract_name(format!("{tag}-host")).unwrap()).unwrap();
    let a = busybox_guest_with_probe(&w, "ua");
    if let Support::Missing { reason } = probe() {
        // A kernel without Landlock scoping: start refuses unless the config
        // accepts shared abstract sockets by name.
        let _ = std::fs::remove_file(w.confdir.join(".defaults/cflags"));
        let out = w.vserver(&[&a, "start"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(SHARED_FLAG), "{}", describe(&out));
        w.assert_nothing_left(&a);
        eprintln!("abstract unix socket scoping not tested: {reason}");
        return;
    }
    at_guest_start(
        &w,
        &a,
        &format!(
            "netprobe unix-connect {tag}-host > /tmp/to-host 2>&1\n\
             netprobe unix-serve {tag}-a > /tmp/serve 2>&1 &\n\
             netprobe unix-serve {tag}-a2 > /tmp/serve2 2>&1 &\n\
             while ! grep -q listening /tmp/serve; do usleep 20000; done\n\
             while ! grep -q listening /tmp/serve2; do usleep 20000; done\n\
             netprobe unix-connect {tag}-a > /tmp/own 2>&1\n\
             echo done > /tmp/done"
        ),
    );
    w.ok(&a, &["start"]);
    guest_file(&w, &a, "tmp/done");
    // The host's abstract socket is out of reach (Landlock refuses with EPERM).
    assert_eq!(guest_file(&w, &a, "tmp/to-host").trim(), format!("err {}", libc::EPERM));
    // The guest's own abstract sockets work between its processes.
    assert_eq!(guest_file(&w, &a, "tmp/own").trim(), "ok\nguest");
    // A process that joins later (vserver exec) is forked by the monitor,
    // inside its Landlock domain: the same two answers.
    let joined = w.sh_ok(
        &a,
        &format!(
            "netprobe unix-connect {tag}-host 2>&1\n\
             netprobe unix-serve {tag}-x > /tmp/serve-x 2>&1 &\n\
             while ! grep -q listening /tmp/serve-x; do usleep 20000; done\n\
             netprobe unix-connect {tag}-x 2>&1"
        ),
    );
    assert_eq!(joined.trim(), format!("err {}\nok\nguest", libc::EPERM), "from vserver exec");

    // Another guest cannot reach the first one's.
    let b = busybox_guest_with_probe(&w, "ub");
    at_guest_start(&w, &b, &format!("netprobe unix-connect {tag}-a2 > /tmp/to-a 2>&1"));
    w.ok(&b, &["start"]);
    assert_eq!(guest_file(&w, &b, "tmp/to-a").trim(), format!("err {}", libc::EPERM));
    // ...while the listener is there: the host (not scoped) still gets in.
    let mut s = UnixStream::connect_addr(&SocketAddr::from_abstract_name(format!("{tag}-a2")).unwrap()).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "guest");
    drop(host);
    for g in [&a, &b] {
        w.ok(g, &["stop"]);
        w.assert_nothing_left(g);
    }
}

/// A guest's 127.0.0.1 (its own loopback address) is reached by the guest
/// only: another guest's connect fails with EPERM, the host's (from its
/// 127.0.0.1) is dropped on the way in. The admin uses `vserver exec`.
#[test]
fn a_guests_loopback_is_reachable_only_from_itself() {
    let w = World::new("glo");
    let Some(a) = guest_with_probe(&w, "127.0.0.68") else { return };
    let b = guest_with_probe_named(&w, busybox_guest_with_probe(&w, "lob"), "127.0.0.69").unwrap();
    let xid: u32 = std::fs::read_to_string(w.guest_conf(&a).join("context")).unwrap().trim().parse().unwrap();
    let lback = vserver_core::net::lback_for_xid(xid).unwrap();
    let port = free_port("127.0.0.1");
    let mut server = w
        .cmd("vserver")
        .args([&a, "exec", "/bin/netprobe", "serve-on", "127.0.0.1", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 64];
    let n = server.stdout.as_mut().unwrap().read(&mut line).unwrap();
    assert!(
        String::from_utf8_lossy(&line[..n]).contains(&format!("listening 127.0.0.1:{port}")),
        "{}",
        String::from_utf8_lossy(&line[..n])
    );
    // Another guest: refused at connect.
    let out = w.sh(&b, &format!("netprobe connect {lback} {port}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("err {}", libc::EPERM), "{}", describe(&out));
    // The host, from its own 127.0.0.1: dropped.
    let e = TcpStream::connect_timeout(&(lback, port).into(), Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    // The guest itself.
    let own = w.sh_ok(&a, &format!("netprobe connect 127.0.0.1 {port}"));
    assert!(own.starts_with("ok 127.0.0.1:") && own.contains("guest"), "{own}");
    assert!(server.wait().unwrap().success());
    for g in [&a, &b] {
        w.ok(g, &["stop"]);
        w.assert_nothing_left(g);
    }
}

/// Runs `f` on a thread of its own network namespace (with lo up); every
/// command it starts, `vserver start` included, lives there: the guests'
/// non-loopback addresses never touch the host's network.
fn in_test_netns(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's namespaces.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        let out = Command::new("ip").args(["link", "set", "lo", "up"]).output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// Outbound sources as the host's routing would choose among the set:
/// a guest whose first address is a loopback service address and whose
/// second is in 10.201.0.0/24 connects to 10.201.0.2 from 10.201.0.1 (not
/// from the first address, which cannot leave lo), while 0.0.0.0 still
/// binds to the first; a guest with loopback addresses only is refused
/// with EPERM.
#[test]
fn sources_follow_the_subnet_and_unroutable_ones_are_refused() {
    if !(require_root() && require_busybox()) {
        return;
    }
    if !require(Command::new("gcc").arg("--version").output().is_ok(), "gcc for the probe program") {
        return;
    }
    in_test_netns(|| {
        let out = Command::new("ip").args(["addr", "add", "10.201.0.2/32", "dev", "lo"]).output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let w = World::new("gsrc");
        let a = busybox_guest_with_probe(&w, "srca");
        w.write_conf(&a, "interfaces/0/ip", "127.0.0.71\n");
        w.write_conf(&a, "interfaces/0/nodev", "");
        w.write_conf(&a, "interfaces/1/ip", "10.201.0.1\n");
        w.write_conf(&a, "interfaces/1/prefix", "24\n");
        w.write_conf(&a, "interfaces/1/dev", "lo\n");
        w.ok(&a, &["start"]);
        let listener = TcpListener::bind("10.201.0.2:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = w
            .cmd("vserver")
            .args([&a, "exec", "/bin/netprobe", "connect", "10.201.0.2", &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"peer").unwrap();
        drop(s);
        let out = client.wait_with_output().unwrap();
        assert_eq!(peer.ip().to_string(), "10.201.0.1", "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok 10.201.0.1:"), "{}", describe(&out));
        let wild = w.sh_ok(&a, "netprobe bind 0.0.0.0 0");
        assert!(wild.starts_with("ok 127.0.0.71:"), "{wild}");

        let b = busybox_guest_with_probe(&w, "srcb");
        w.write_conf(&b, "interfaces/0/ip", "127.0.0.72\n");
        w.write_conf(&b, "interfaces/0/nodev", "");
        w.ok(&b, &["start"]);
        let out = w.sh(&b, &format!("netprobe connect 10.201.0.2 {port}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("err {}", libc::EPERM), "{}", describe(&out));
        for g in [&a, &b] {
            w.ok(g, &["stop"]);
            w.assert_nothing_left(g);
        }
    });
}
