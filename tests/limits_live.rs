//! vlimit against a running context: a real cgroup with a shell in it and
//! the run state the monitor writes. Needs root and cgroups (fails in CI
//! when they are missing, skips elsewhere).

mod limits_support;

use std::fs;
use std::time::Duration;

use limits_support::{privileged, TestGuest};

#[test]
fn nproc_20_stops_the_21st_process_and_counts_the_hit() {
    if !privileged() {
        return;
    }
    // One process (shells exit on a failed fork, perl counts them) tries to start 25 more.
    let forker = r#"exec perl -e '$| = 1; for (1..25) { my $p = fork; if (!defined $p) { $failed++ } elsif ($p == 0) { sleep 60; exit 0 } else { $ok++ } } print "ok=$ok failed=$failed\n"; <STDIN>'"#;
    let mut g = TestGuest::start("nproc", 4201, forker);
    g.run_ok("vlimit", &["-c", &g.name, "--nproc", "20"]);
    g.go();
    assert_eq!(g.read_line(), "ok=19 failed=6\n", "the 21st process and later are refused");
    assert_eq!(g.procs().len(), 20, "the pids limit holds the context at 20 processes");
    let stats = g.stats_json();
    let pids = &stats["limits"]["pids"];
    assert_eq!(pids["hard"], 20);
    assert_eq!(pids["current"], 20);
    assert!(pids["hits"].as_u64().unwrap() >= 1, "the refused forks are counted: {stats}");
    let table = g.run_ok("vlimit", &["-c", &g.name, "--stats"]);
    let row = table.lines().find(|l| l.starts_with("nproc")).unwrap();
    assert!(row.split_whitespace().nth(4) == Some("20"), "{table}");
}

#[test]
fn rss_64m_contains_a_128m_allocation_and_shows_the_hit_and_peak() {
    if !privileged() {
        return;
    }
    // tail keeps the whole newline-less input in memory: 128 MiB.
    let script = "head -c 128M /dev/zero | tail > /dev/null; echo status=$?; read done";
    let mut g = TestGuest::start("rss", 4202, script);
    g.run_ok("vlimit", &["-c", &g.name, "--rss", "64M"]);
    g.go();
    assert_eq!(g.read_line(), "status=137\n", "tail is OOM-killed inside the context (SIGKILL)");
    let stats = g.stats_json();
    let mem = &stats["limits"]["memory"];
    assert_eq!(mem["hard_bytes"], 64u64 << 20);
    assert!(mem["hits"].as_u64().unwrap() >= 1, "{stats}");
    assert!(mem["oom_kills"].as_u64().unwrap_or(1) >= 1, "{stats}");
    let peak = mem["peak_bytes"].as_u64().expect("the kernel reports a peak");
    assert!(peak > 60 << 20 && peak <= 64 << 20, "peak {peak} is at the limit");
    // The same figures in vserver-stat --json.
    let stat: serde_json::Value = serde_json::from_str(&g.run_ok("vserver-stat", &["--json"])).unwrap();
    let row = stat["contexts"].as_array().unwrap().iter().find(|c| c["name"] == g.name.as_str()).unwrap().clone();
    assert_eq!(row["limits"]["memory"]["peak_bytes"].as_u64(), Some(peak));
    assert!(row["limits"]["memory"]["hits"].as_u64().unwrap() >= 1);
}

#[test]
fn vlimit_changes_nofile_of_an_already_running_process() {
    if !privileged() {
        return;
    }
    let mut g = TestGuest::start("nofile", 4203, "ulimit -Sn; ulimit -Hn; read again; ulimit -Sn; ulimit -Hn");
    g.run_ok("vlimit", &["-c", &g.name, "--nofile", "77", "-S", "--nofile", "50"]);
    g.go();
    assert_eq!(g.read_line() + &g.read_line(), "50\n77\n");
    // Changed again while the shell runs: the new values show at once.
    g.run_ok("vlimit", &["-c", &g.name, "-SH", "--nofile", "60"]);
    g.send("again");
    let (_, rest) = g.finish(Duration::from_secs(10));
    assert_eq!(rest, "60\n60\n");
}

#[test]
fn a_failing_change_leaves_everything_as_it_was() {
    if !privileged() {
        return;
    }
    let mut g = TestGuest::start("atomic", 4204, "ulimit -Sn; ulimit -Hn");
    let mem = g.controller_dir("memory");
    let limit_file = if mem.join("memory.max").exists() { "memory.max" } else { "memory.limit_in_bytes" };
    let before = fs::read_to_string(mem.join(limit_file)).unwrap();
    // rss goes to the cgroup first, then nofile fails (soft above hard): rss is put back.
    let out = g.run("vlimit", &["-c", &g.name, "--rss", "64M", "--nofile", "40", "-S", "--nofile", "80"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nofile") && err.contains("above the hard limit") && err.contains("nothing was changed"), "{err}");
    assert_eq!(fs::read_to_string(mem.join(limit_file)).unwrap(), before);
    g.go();
    let (_, text) = g.finish(Duration::from_secs(10));
    let lines: Vec<&str> = text.lines().collect();
    assert_ne!(lines.get(1), Some(&"40"), "the hard nofile limit was not changed: {text}");
}

#[test]
fn save_writes_the_config_and_errors_are_clear() {
    if !privileged() {
        return;
    }
    let g = TestGuest::start("save", 4205, "read done");
    g.run_ok("vlimit", &["-c", "4205", "--rss", "64M", "-S", "--nofile", "100", "--save"]);
    let dir = g.confdir().join(&g.name).join("rlimits");
    assert_eq!(fs::read_to_string(dir.join("rss.hard")).unwrap(), "64M\n");
    assert_eq!(fs::read_to_string(dir.join("nofile.soft")).unwrap(), "100\n");
    let a = g.run_ok("vlimit", &["-c", &g.name, "-a", "-d"]);
    let rss = a.lines().find(|l| l.starts_with("RSS")).unwrap();
    assert!(rss.ends_with(&format!("  {}", (64u64 << 20) / 4096)), "{a}");

    let bad = g.run("vlimit", &["-c", &g.name, "--bogus", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = g.run("vlimit", &["-c", &g.name, "--rss", "1kX"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1kX"));
    let bad = g.run("vlimit", &["-c", "4999", "--rss", "1M"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no running guest has context 4999"));
    fs::create_dir_all(g.confdir().join("stopped")).unwrap();
    let bad = g.run("vlimit", &["-c", "stopped", "--rss", "1M"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"stopped\" is not running"), "{bad:?}");
}
