//! vserver-stat against running contexts (real cgroups with processes in
//! them and their run state). Needs root and cgroups.

mod limits_support;

use std::time::{Duration, Instant};

use limits_support::{privileged, TestGuest};

#[test]
fn vserver_stat_lists_exactly_the_running_guests_with_their_process_counts() {
    if !privileged() {
        return;
    }
    let mut a = TestGuest::start("stata", 4302, "sleep 60 & sleep 60 & echo up; read done");
    let mut b = TestGuest::start("statb", 4301, "sleep 60 & sleep 60 & sleep 60 & sleep 60 & echo up; read done");
    b.register_in(&a.rundir());
    a.go();
    b.go();
    assert_eq!(a.read_line(), "up\n");
    assert_eq!(b.read_line(), "up\n");
    wait_for(|| a.procs().len() == 3 && b.procs().len() == 5);

    let table = a.run_ok("vserver-stat", &[]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME");
    assert!(lines[1].starts_with("0 ") && lines[1].ends_with(" root server"), "{table}");
    assert_eq!(lines.len(), 4, "host plus exactly the two running guests: {table}");
    // Sorted by xid: b (4301) before a (4302).
    for (line, g, procs) in [(lines[2], &b, 5), (lines[3], &a, 3)] {
        assert!(line.starts_with(&g.xid.to_string()), "{line}");
        assert!(line.ends_with(&format!(" {}", &g.name[..g.name.len().min(20)])), "{line}");
        assert_eq!(line[..10].split_whitespace().nth(1), Some(procs.to_string().as_str()), "{line}");
        assert_eq!(line.len(), 55 + g.name.len().min(20), "fixed columns: {line}");
    }

    let json: serde_json::Value = serde_json::from_str(&a.run_ok("vserver-stat", &["--json"])).unwrap();
    let ctx = json["contexts"].as_array().unwrap();
    assert_eq!(ctx.len(), 3);
    assert_eq!(ctx[0]["xid"], 0);
    for (c, g) in [(&ctx[1], &b), (&ctx[2], &a)] {
        assert_eq!(c["name"], g.name.as_str());
        assert_eq!(c["processes"].as_u64().unwrap(), g.procs().len() as u64);
        assert!(c["vsz_bytes"].as_u64().unwrap() > 0 && c["uptime_seconds"].as_f64().is_some());
        assert!(c["limits"]["memory"]["current_bytes"].is_u64() && c["limits"]["pids"]["current"] == g.procs().len() as u64);
    }

    let prom = a.run_ok("vserver-stat", &["--prometheus"]);
    assert!(prom.contains(&format!("vserver_processes{{xid=\"4302\",name=\"{}\"}} 3\n", a.name)), "{prom}");
    assert!(prom.contains(&format!("vserver_pids_limit_hits_total{{xid=\"4301\",name=\"{}\"}} 0\n", b.name)), "{prom}");
}

#[test]
fn a_guest_whose_init_is_gone_is_not_listed() {
    if !privileged() {
        return;
    }
    let mut g = TestGuest::start("stale", 4303, "exit 0");
    g.go();
    let _ = g.finish(Duration::from_secs(10));
    let table = g.run_ok("vserver-stat", &[]);
    assert_eq!(table.lines().count(), 2, "only the host: {table}");
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for the guests' processes");
        std::thread::sleep(Duration::from_millis(20));
    }
}
