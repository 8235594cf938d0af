//! chbind: a command confined to an IP set by cgroup-BPF programs, seen
//! from inside (a python3 probe run under chbind) and from the host.
//! Only 127.0.0.0/8 and ::1.

use std::process::Command;
use std::time::Duration;

use vserver_rs_tests::net::*;
use vserver_rs_tests::{bin, describe, run, stdout};

const CTX: &[&str] = &["--ip", "127.0.0.2", "--silent"];
/// The same context, allowed to reach the host's 127.0.0.9 (loopback
/// addresses outside the set are out of reach otherwise).
const CTX_TO_9: &[&str] = &["--ip", "127.0.0.2", "--silent", "--allow-loopback", "127.0.0.9"];

#[test]
fn binds_are_confined_to_the_set() {
    if !require_net() {
        return;
    }
    let bind = |args: &[&str]| json_of(&mut chbind_probe(CTX, &[&["bind"], args].concat()));
    assert_eq!(addr_of(&bind(&["127.0.0.2"]), "name"), "127.0.0.2");
    // The wildcard becomes the first address of the set.
    assert_eq!(addr_of(&bind(&["0.0.0.0"]), "name"), "127.0.0.2");
    for refused in [bind(&["127.0.0.3"]), bind(&["127.0.0.3", "freebind"]), bind(&["127.0.0.3", "noport"])] {
        assert_eq!(refused["errno"], "EADDRNOTAVAIL", "{refused}");
    }
    // v4-mapped IPv6 is the IPv4 address it maps.
    assert_eq!(bind(&["::ffff:127.0.0.3"])["errno"], "EADDRNOTAVAIL");
    assert_eq!(addr_of(&bind(&["::ffff:127.0.0.2"]), "name"), "::ffff:127.0.0.2");
    // ::1 is not in this set.
    assert_eq!(bind(&["::1"])["errno"], "EADDRNOTAVAIL");
    // The same binds on the host are not affected.
    assert_eq!(addr_of(&json_of(&mut host_probe(&["bind", "127.0.0.3"])), "name"), "127.0.0.3");
}

#[test]
fn dual_stack_wildcard_cannot_take_ipv4_on_other_addresses() {
    if !require_net() {
        return;
    }
    // IPv4-only set: `::` becomes ::ffff:127.0.0.2.
    let mut server = Background::start(chbind_probe(CTX, &["listen", "dualstack", "1"]));
    let ready = server.next();
    assert_eq!(addr_of(&ready, "name"), "::ffff:127.0.0.2");
    let port = port_of(&ready);
    assert!(json_of(&mut host_probe(&["connect", "127.0.0.3", &port])).get("errno").is_some());
    let ok = json_of(&mut host_probe(&["connect", "127.0.0.2", &port]));
    assert_eq!(ok["data"], "hello", "{ok}");

    // With ::1 in the set, `::` becomes ::1 and takes no IPv4 at all.
    let mut server = Background::start(chbind_probe(&["--ip", "127.0.0.2", "--ip", "::1"], &["listen", "dualstack"]));
    let ready = server.next();
    assert_eq!(addr_of(&ready, "name"), "::1");
    let port = port_of(&ready);
    assert!(json_of(&mut host_probe(&["connect", "127.0.0.3", &port])).get("errno").is_some());
    assert!(json_of(&mut host_probe(&["connect", "127.0.0.2", &port])).get("errno").is_some());
    assert_eq!(json_of(&mut host_probe(&["connect", "::1", &port]))["data"], "hello");
}

#[test]
fn connect_without_bind_gets_a_source_from_the_set() {
    if !require_net() {
        return;
    }
    let mut server = Background::start(host_probe(&["listen", "127.0.0.9", "2"]));
    let port = port_of(&server.next());
    let client = json_of(&mut chbind_probe(CTX_TO_9, &["connect", "127.0.0.9", &port]));
    assert_eq!(addr_of(&client, "name"), "127.0.0.2", "{client}");
    assert_eq!(addr_of(&server.next(), "peer"), "127.0.0.2");
    // An AF_INET6 socket to a v4-mapped destination too.
    let client = json_of(&mut chbind_probe(CTX_TO_9, &["connect", "::ffff:127.0.0.9", &port]));
    assert_eq!(addr_of(&client, "name"), "::ffff:127.0.0.2", "{client}");
    assert_eq!(addr_of(&server.next(), "peer"), "127.0.0.2");
}

#[test]
fn udp_sendto_without_bind_gets_a_source_from_the_set() {
    if !require_net() {
        return;
    }
    let mut server = Background::start(host_probe(&["recvfrom", "127.0.0.9"]));
    let port = port_of(&server.next());
    let sent = json_of(&mut chbind_probe(CTX_TO_9, &["sendto", "127.0.0.9", &port]));
    assert!(sent.get("errno").is_none(), "{sent}");
    assert_eq!(addr_of(&server.next(), "from"), "127.0.0.2");
}

#[test]
fn listen_without_bind_serves_only_the_set() {
    if !require_net() {
        return;
    }
    // listen() autobinds to the wildcard; the ingress filter drops what is
    // not addressed to the set.
    let mut server = Background::start(chbind_probe(CTX, &["listen", "unbound", "1"]));
    let port = port_of(&server.next());
    let other = json_of(&mut host_probe(&["connect", "127.0.0.3", &port]));
    assert_eq!(other["errno"], "ETIMEDOUT", "{other}");
    let ok = json_of(&mut host_probe(&["connect", "127.0.0.2", &port]));
    assert_eq!(ok["data"], "hello", "{ok}");
    assert_eq!(addr_of(&server.next(), "local"), "127.0.0.2");
}

#[test]
fn two_contexts_each_have_their_own_localhost() {
    if !require_net() {
        return;
    }
    let port = free_localhost_port();
    let a = chbind_probe(&["--ip", "127.0.0.2", "--nid", "40"], &["own-localhost", "A", &port]);
    let b = chbind_probe(&["--ip", "127.0.0.3", "--nid", "41"], &["own-localhost", "B", &port]);
    let (mut a, mut b) = (Background::start(a), Background::start(b));
    let (ra, rb) = (a.next(), b.next());
    for (r, name) in [(&ra, "A"), (&rb, "B")] {
        assert_eq!(r["data"], name, "{r}");
        // The remapping is invisible: both ends look like 127.0.0.1.
        assert_eq!(addr_of(r, "listen"), "127.0.0.1", "{r}");
        assert_eq!(addr_of(r, "name"), "127.0.0.1", "{r}");
        assert_eq!(addr_of(r, "peer"), "127.0.0.1", "{r}");
    }
}

/// A port free on 127.0.0.1 right now (the contexts listen on their own
/// loopback addresses, so a race with the host is harmless).
fn free_localhost_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

#[test]
fn host_and_context_reach_each_other_over_loopback() {
    if !require_net() {
        return;
    }
    let mut in_ctx = Background::start(chbind_probe(CTX, &["listen", "127.0.0.2", "1"]));
    let port = port_of(&in_ctx.next());
    assert_eq!(json_of(&mut host_probe(&["connect", "127.0.0.2", &port]))["data"], "hello");
    // Other loopback addresses of the host are out of reach (EPERM for
    // TCP and UDP alike) unless allowed; then the source is pinned to the set.
    let mut on_host9 = Background::start(host_probe(&["listen", "127.0.0.9", "1"]));
    let port9 = port_of(&on_host9.next());
    assert_eq!(json_of(&mut chbind_probe(CTX, &["connect", "127.0.0.9", &port9]))["errno"], "EPERM");
    assert_eq!(json_of(&mut chbind_probe(CTX, &["sendto", "127.0.0.9", &port9]))["errno"], "EPERM");
    assert_eq!(json_of(&mut chbind_probe(CTX_TO_9, &["connect", "127.0.0.9", &port9]))["data"], "hello");
    assert_eq!(addr_of(&on_host9.next(), "peer"), "127.0.0.2");
}

#[test]
fn cgroup_and_programs_are_gone_after_the_command() {
    if !require_net() || !require_bpftool() {
        return;
    }
    let root = cgroup2_root().unwrap();
    let script = "cat /proc/self/cgroup; read line || true";
    let mut cmd = Command::new(bin("chbind"));
    cmd.args(CTX).args(["--", "sh", "-c", script]).stdin(std::process::Stdio::piped());
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // A cgroup v2 line: 0::/vserver/chbind-PID
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(!line.is_empty(), "no cgroup line");
        if line.starts_with("0::") {
            break;
        }
    }
    let rel = line.trim().trim_start_matches("0::/");
    assert!(rel.starts_with("vserver/chbind-"), "{line}");
    let dir = root.join(rel);
    let ids = attached_prog_ids(&dir);
    assert!(ids.len() >= 10, "programs attached to {}: {ids:?}", dir.display());
    drop(child.stdin.take()); // `read` ends, the command exits
    assert!(child.wait().unwrap().success());
    assert!(!dir.exists(), "{} still exists", dir.display());
    let loaded = loaded_prog_ids();
    assert!(ids.iter().all(|id| !loaded.contains(id)), "programs {ids:?} still loaded");
}

#[test]
fn exit_code_signals_and_descendants() {
    if !require_net() {
        return;
    }
    let out = run(Command::new(bin("chbind")).args(CTX).args(["--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let out = run(Command::new(bin("chbind")).args(CTX).args(["--", "sh", "-c", "kill -9 $$"]));
    assert_eq!(out.status.code(), Some(128 + 9));

    // SIGTERM goes on to the command; chbind waits for its grandchild, too.
    let script = "trap 'echo term; exit 3' TERM; (sleep 1; echo grandchild) & echo ready; sleep 20 & wait $!";
    let mut child =
        Command::new(bin("chbind")).args(CTX).args(["--", "sh", "-c", script]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill on the pid of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    // The grandchild finished before chbind did.
    assert_eq!(rest, ["term", "grandchild"]);
}

#[test]
fn usage_errors_and_missing_cgroup2() {
    if !require_net() {
        return;
    }
    let out = run(Command::new(bin("chbind")).args(["--ip", "127.0.0.300", "--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"127.0.0.300\" is not an IPv4 or IPv6 address"));
    let out = run(Command::new(bin("chbind")).args(["--bcast", "127.255.255.255", "--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bcast is not supported"));
    let out = run(Command::new(bin("chbind")).args(["--ip", "0.0.0.0", "--", "true"]));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // A host without cgroup2 (a plain directory as the cgroup root): refused,
    // the command never runs, nothing is created.
    let fake = std::env::temp_dir().join(format!("vs-net-nocg2-{}", std::process::id()));
    std::fs::create_dir_all(fake.join("unified")).unwrap();
    let marker = fake.join("ran");
    let out = run(Command::new(bin("chbind")).env("VSERVER_CGROUP_ROOT", &fake).args(CTX).args(["--", "touch"]).arg(&marker));
    let listing: Vec<_> = std::fs::read_dir(fake.join("unified")).unwrap().collect();
    let ran = marker.exists();
    std::fs::remove_dir_all(&fake).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cgroup2 hierarchy"), "{}", describe(&out));
    assert!(!ran && listing.is_empty(), "{}", stdout(&out));
}

/// Many chbinds at once create and remove the shared `vserver` parent
/// cgroup under each other's feet: every one must still get its own cgroup
/// (issue 16: a parallel chbind removed the empty parent between the mkdir
/// of the parent and of `chbind-PID`). Loops of short chbinds, so that the
/// parent is often empty and removed while another one starts.
#[test]
fn parallel_chbinds_race_for_the_shared_parent() {
    if !require_net() {
        return;
    }
    let loops: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..40 {
                    let out = run(Command::new(bin("chbind")).args(CTX).args(["--", "true"]));
                    assert!(out.status.success(), "chbind failed: {}", describe(&out));
                }
            })
        })
        .collect();
    for l in loops {
        l.join().unwrap();
    }
}

/// Debian's default nginx site: `listen 80` and `listen [::]:80` with
/// IPV6_V6ONLY, in a context without IPv6 addresses. The v6-only wildcard
/// lands on the context's own IPv6 loopback address (shown as ::1), so both
/// listens succeed and neither takes another address; a dual-stack `::`
/// still gets the IPv4 address.
#[test]
fn v6only_wildcard_without_ipv6_takes_the_ipv6_loopback() {
    if !require_net() {
        return;
    }
    let ctx = ["--ip", "127.0.0.2", "--nid", "4731", "--silent"];
    let r = json_of(&mut chbind_probe(&ctx, &["nginx"]));
    assert_eq!(addr_of(&r, "v4"), "127.0.0.2", "{r}");
    assert_eq!(addr_of(&r, "v6"), "::1", "{r}");
    assert_eq!(addr_of(&r, "client"), "::1", "{r}");
    assert_eq!(addr_of(&r, "peer"), "::1", "{r}");
    let bind = |args: &[&str]| json_of(&mut chbind_probe(&ctx, &[&["bind"], args].concat()));
    assert_eq!(addr_of(&bind(&["::", "dualstack"]), "name"), "::ffff:127.0.0.2");
    assert_eq!(addr_of(&bind(&["::", "v6only"]), "name"), "::1");
    // Another context's IPv6 loopback address is not bindable, nor ::1 of
    // a context without one (no --nid: 127.0.0.1 stands for 127.0.0.2).
    let other = vserver_core::net::lback6_for(vserver_core::net::lback_for_xid(4732).unwrap()).to_string();
    assert_eq!(bind(&[&other])["errno"], "EADDRNOTAVAIL");
    let plain = json_of(&mut chbind_probe(CTX, &["bind", "::", "v6only"]));
    assert_eq!(plain["errno"], "EADDRNOTAVAIL", "{plain}");
    // The address was on lo only while the context ran.
    let lback6 = vserver_core::net::lback6_for(vserver_core::net::lback_for_xid(4731).unwrap()).to_string();
    let lo = stdout(&run(Command::new("ip").args(["-6", "addr", "show", "dev", "lo"])));
    assert!(!lo.contains(&lback6), "{lback6} left on lo: {lo}");
}

/// A context's own loopback address (what 127.0.0.1 is inside it) is out of
/// reach of other contexts (EPERM at connect) and of host processes that do
/// not send from it (dropped on the way in).
#[test]
fn a_contexts_loopback_is_reachable_only_from_itself() {
    if !require_net() {
        return;
    }
    let a = ["--ip", "127.0.0.2", "--nid", "4733", "--silent"];
    let mut server = Background::start(chbind_probe(&a, &["listen", "127.0.0.1", "1"]));
    let ready = server.next();
    assert_eq!(addr_of(&ready, "name"), "127.0.0.1", "{ready}");
    let port = port_of(&ready);
    let lback = vserver_core::net::lback_for_xid(4733).unwrap().to_string();
    let b = ["--ip", "127.0.0.3", "--nid", "4734", "--silent"];
    assert_eq!(json_of(&mut chbind_probe(&b, &["connect", &lback, &port]))["errno"], "EPERM");
    assert_eq!(json_of(&mut chbind_probe(&b, &["sendto", &lback, &port]))["errno"], "EPERM");
    assert_eq!(json_of(&mut host_probe(&["connect", &lback, &port]))["errno"], "ETIMEDOUT");
    // The context itself gets in.
    let own = json_of(&mut chbind_probe(&a, &["connect", "127.0.0.1", &port]));
    assert_eq!(own["data"], "hello", "{own}");
    assert_eq!(addr_of(&server.next(), "peer"), "127.0.0.1");
}
