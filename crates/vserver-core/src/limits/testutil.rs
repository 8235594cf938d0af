//! Fixture cgroup trees for the unit tests: plain files in a temp dir laid
//! out like a v2-only or a hybrid host.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroup::{GuestCgroup, Layout};
use crate::config::parse::tests::tempdir;

pub fn fixture(files: &[(&str, &str)]) -> PathBuf {
    let dir = tempdir();
    fill(&dir, files);
    dir
}

pub fn fill(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

pub fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

pub const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("memory.max", "max\n"),
    ("memory.high", "max\n"),
    ("memory.low", "0\n"),
    ("memory.current", "0\n"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("memory.stat", "anon 0\nfile 0\nfile_mapped 0\n"),
    ("pids.max", "max\n"),
    ("pids.current", "0\n"),
    ("pids.events", "max 0\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.max.burst", "0\n"),
    ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"),
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
];

/// A v2-only host whose guest cgroup has the controllers in `enabled`.
pub fn v2_guest(enabled: &str) -> (PathBuf, GuestCgroup) {
    let root = tempdir();
    fill(&root, &[("cgroup.controllers", "cpuset cpu io memory pids\n"), ("cgroup.procs", ""), ("cgroup.subtree_control", "")]);
    let parent = root.join("vserver");
    fs::create_dir_all(parent.join("g1")).unwrap();
    fill(&parent, &[("cgroup.subtree_control", enabled)]);
    fill(&parent.join("g1"), V2_FILES);
    let layout = Layout::detect(&root).unwrap();
    (root, GuestCgroup::for_guest(&layout, "g1"))
}

pub const V1_FILES: &[(&str, &[(&str, &str)])] = &[
    (
        "memory",
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "0\n"),
            ("memory.max_usage_in_bytes", "0\n"),
            ("memory.failcnt", "0\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
            ("memory.stat", "cache 0\nrss 0\nmapped_file 0\n"),
        ],
    ),
    ("pids", &[("pids.max", "max\n"), ("pids.current", "0\n"), ("pids.events", "max 0\n")]),
    (
        "cpu",
        &[
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"),
        ],
    ),
    ("cpuacct", &[("cpuacct.stat", "user 0\nsystem 0\n")]),
    ("cpuset", &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]),
];

/// A hybrid host like the build machine, with the v1 hierarchies named in
/// `hierarchies` (a subset of V1_FILES's) plus a controller-less cgroup2.
pub fn hybrid_guest(hierarchies: &[&str]) -> (PathBuf, GuestCgroup) {
    let root = tempdir();
    for (ctrl, files) in V1_FILES.iter().filter(|(c, _)| hierarchies.contains(c)) {
        let guest = root.join(ctrl).join("vserver/g1");
        fs::create_dir_all(&guest).unwrap();
        fill(&root.join(ctrl), &[("cgroup.procs", "")]);
        fill(&guest, files);
        fill(&guest, &[("cgroup.procs", "")]);
    }
    let unified = root.join("unified");
    fs::create_dir_all(unified.join("vserver/g1")).unwrap();
    fill(&unified, &[("cgroup.controllers", "hugetlb\n"), ("cgroup.procs", "")]);
    fill(&unified.join("vserver"), &[("cgroup.subtree_control", "")]);
    fill(&unified.join("vserver/g1"), &[("cgroup.procs", ""), ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n")]);
    let layout = Layout::detect(&root).unwrap();
    (root, GuestCgroup::for_guest(&layout, "g1"))
}
