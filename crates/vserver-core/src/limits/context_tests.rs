use std::fs;

use super::*;
use crate::limits::testutil::{hybrid_guest, read, v2_guest};

use crate::config::testutil::guest_with_files as guest;

const FULL: &[(&str, &str)] = &[
    ("rlimits/rss", "16384\n"),
    ("rlimits/nproc", "20\n"),
    ("rlimits/nofile", "100\n"),
    ("sched/fill-rate", "1\n"),
    ("sched/interval", "4\n"),
    ("sched/tokens-max", "10\n"),
    ("cpuset/cpus", "0\n"),
];

#[test]
fn v2_files_get_the_mapped_values() {
    let (_root, cg) = v2_guest("cpuset cpu io memory pids\n");
    let g = guest(FULL);
    apply_context_limits(&cg, &g).unwrap();
    let dir = cg.v2_dir().unwrap();
    let rss = (16384 * page_size()).to_string();
    assert_eq!(read(dir, "memory.max"), rss);
    assert_eq!(read(dir, "memory.high"), "max\n", "rss alone sets only the hard limit");
    assert_eq!(read(dir, "pids.max"), "20");
    assert_eq!(read(dir, "cpu.max"), "25000 100000");
    assert_eq!(read(dir, "cpu.max.burst"), "10000");
    assert_eq!(read(dir, "cpuset.cpus"), "0");
}

#[test]
fn hybrid_files_get_the_mapped_values() {
    let (root, cg) = hybrid_guest(&["memory", "pids", "cpu", "cpuacct", "cpuset"]);
    let g = guest(&[FULL, &[("rlimits/rss.soft", "32M\n"), ("rlimits/rss.hard", "64M\n")]].concat());
    apply_context_limits(&cg, &g).unwrap();
    let at = |c: &str| root.join(c).join("vserver/g1");
    assert_eq!(read(&at("memory"), "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(read(&at("memory"), "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(read(&at("pids"), "pids.max"), "20");
    assert_eq!(read(&at("cpu"), "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&at("cpu"), "cpu.cfs_quota_us"), "25000");
    assert_eq!(read(&at("cpu"), "cpu.cfs_burst_us"), "10000");
    assert_eq!(read(&at("cpuset"), "cpuset.cpus"), "0");
}

#[test]
fn a_missing_v2_controller_is_named_and_nothing_stays_written() {
    let (_root, cg) = v2_guest("memory\n");
    let e = apply_context_limits(&cg, &guest(FULL)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("pids controller is not enabled") && msg.contains("vserver/cgroup.subtree_control"), "{msg}");
    assert_eq!(read(cg.v2_dir().unwrap(), "memory.max"), "max", "memory.max was rolled back");
}

#[test]
fn a_missing_v1_hierarchy_is_named() {
    let (root, cg) = hybrid_guest(&["memory", "cpu", "cpuacct", "cpuset"]);
    let msg = format!("{:#}", apply_context_limits(&cg, &guest(FULL)).unwrap_err());
    assert!(msg.contains("pids controller is not available") && msg.contains("no v1 hierarchy"), "{msg}");
    assert_eq!(read(&root.join("memory/vserver/g1"), "memory.limit_in_bytes"), "-1", "rolled back to unlimited");
}

#[test]
fn limits_not_asked_for_need_no_controller_but_the_default_process_limit_does() {
    let (_root, cg) = v2_guest("");
    let msg = format!("{:#}", apply_context_limits(&cg, &guest(&[("rlimits/nofile", "100\n")])).unwrap_err());
    assert!(msg.contains("default process limit (4096") && msg.contains("rlimits/nproc") && msg.contains("pids controller"), "{msg}");
    let (_root, cg) = v2_guest("pids\n");
    apply_context_limits(&cg, &guest(&[("rlimits/nofile", "100\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "pids.max"), "4096");
}

#[test]
fn the_default_process_limit_yields_to_nproc_and_cgroup_files() {
    let (_root, cg) = v2_guest("pids memory\n");
    apply_context_limits(&cg, &guest(&[("rlimits/nproc", "inf\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "pids.max"), "max");
    apply_context_limits(&cg, &guest(&[("cgroup/pids.max", "77\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "pids.max"), "77");
    apply_context_limits(&cg, &guest(&[("ulimits/nproc", "66\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "pids.max"), "66");
}

#[test]
fn cgroup_files_are_translated_and_may_not_repeat_a_limit() {
    let (_root, cg) = v2_guest("pids memory\n");
    apply_context_limits(&cg, &guest(&[("cgroup/memory.limit_in_bytes", "64M\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "memory.max"), "64M");
    let msg = format!(
        "{:#}",
        apply_context_limits(&cg, &guest(&[("cgroup/memory.limit_in_bytes", "64M\n"), ("rlimits/rss", "1000\n")])).unwrap_err()
    );
    assert!(msg.contains("cgroup/memory.limit_in_bytes") && msg.contains("rlimits/rss sets too"), "{msg}");
    let (root, cg) = hybrid_guest(&["memory", "pids"]);
    apply_context_limits(&cg, &guest(&[("cgroup/memory.max", "32M\n")])).unwrap();
    assert_eq!(read(&root.join("memory/vserver/g1"), "memory.limit_in_bytes"), "32M");
}

#[test]
fn a_failed_write_restores_the_earlier_files() {
    let (_root, cg) = v2_guest("cpuset cpu io memory pids\n");
    let dir = cg.v2_dir().unwrap().to_path_buf();
    fs::remove_file(dir.join("cpu.max")).unwrap();
    fs::create_dir(dir.join("cpu.max")).unwrap();
    let msg = format!("{:#}", apply_context_limits(&cg, &guest(FULL)).unwrap_err());
    assert!(msg.contains("cpu.max"), "{msg}");
    assert_eq!(read(&dir, "memory.max"), "max");
    assert_eq!(read(&dir, "pids.max"), "max");
}

#[test]
fn bucket_knobs_without_a_counterpart_are_refused() {
    let (_root, cg) = v2_guest("cpuset cpu io memory pids\n");
    for knob in ["tokens-min", "priority-bias"] {
        let g = guest(&[("sched/fill-rate", "1\n"), ("sched/interval", "4\n"), (&format!("sched/{knob}"), "2\n")]);
        let msg = format!("{:#}", apply_context_limits(&cg, &g).unwrap_err());
        assert!(msg.contains(knob) && msg.contains("does not map"), "{msg}");
    }
    // Values that change nothing under CFS are accepted.
    let g = guest(&[("sched/fill-rate", "1\n"), ("sched/interval", "4\n"), ("sched/tokens-min", "1\n"), ("sched/priority-bias", "0\n")]);
    apply_context_limits(&cg, &g).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "cpu.max"), "25000 100000");
    let g = guest(&[("schedule", "1\n4\n100\n50\n200\n0\n")]);
    let msg = format!("{:#}", apply_context_limits(&cg, &g).unwrap_err());
    assert!(msg.contains("schedule (tokens-min)") && msg.contains("does not map"), "{msg}");
    fs::write(cg.v2_dir().unwrap().join("cpu.max"), "max 100000\n").unwrap();
    let g = guest(&[("sched/fill-rate", "1\n")]);
    assert!(format!("{:#}", apply_context_limits(&cg, &g).unwrap_err()).contains("needs sched/interval"));
    assert_eq!(read(cg.v2_dir().unwrap(), "cpu.max"), "max 100000\n");
}

#[test]
fn rss_minimum_maps_to_memory_low_on_v2_only() {
    let (_root, cg) = v2_guest("memory pids\n");
    apply_context_limits(&cg, &guest(&[("rlimits/rss.min", "1M\n")])).unwrap();
    assert_eq!(read(cg.v2_dir().unwrap(), "memory.low"), "1048576");
    let (_root, cg) = hybrid_guest(&["memory", "pids"]);
    let msg = format!("{:#}", apply_context_limits(&cg, &guest(&[("rlimits/rss.min", "1M\n")])).unwrap_err());
    assert!(msg.contains("memory.low"), "{msg}");
}

#[test]
fn rss_soft_above_hard_is_caught_across_units() {
    // A soft limit of 1000 pages (4 MB with 4K pages) is above a hard one of 1M bytes.
    let g = guest(&[("rlimits/rss.hard", "1M\n"), ("rlimits/rss.soft", "1000\n")]);
    let msg = format!("{:#}", ContextLimits::from_guest(&g).unwrap_err());
    assert!(msg.contains("rss.soft") && msg.contains("above"), "{msg}");
}

#[test]
fn nproc_soft_is_refused() {
    let g = guest(&[("rlimits/nproc.hard", "20\n"), ("rlimits/nproc.soft", "10\n")]);
    let msg = format!("{:#}", ContextLimits::from_guest(&g).unwrap_err());
    assert!(msg.contains("nproc.soft") && msg.contains("pids.max"), "{msg}");
}
