use super::*;
use crate::config::parse::tests::tempdir;

fn v2_fixture(root: &Path) {
    fs::write(root.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    fs::write(root.join("cgroup.procs"), "").unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
}

#[test]
fn detects_v2_only() {
    let root = tempdir();
    v2_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    assert_eq!(l.kind(), LayoutKind::V2Only);
    assert_eq!(l.v2_controllers(), vec!["cpuset", "cpu", "io", "memory", "pids"]);
}

#[test]
fn detects_hybrid_and_ignores_aliases_and_named_hierarchies() {
    let root = tempdir();
    for d in ["cpu,cpuacct", "memory", "pids", "systemd", "unified"] {
        fs::create_dir_all(root.join(d)).unwrap();
        fs::write(root.join(d).join("cgroup.procs"), "").unwrap();
    }
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).unwrap();
    fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
    let l = Layout::detect(&root).unwrap();
    assert_eq!(l.kind(), LayoutKind::Hybrid);
    assert_eq!(l.v2, Some(root.join("unified")));
    assert_eq!(l.v1.len(), 3);
    assert_eq!(l.v1_mount("cpuacct"), Some(root.join("cpu,cpuacct").as_path()));
    assert!(l.v1_mount("systemd").is_none());
    let cg = GuestCgroup::for_guest(&l, "g1");
    assert_eq!(cg.v2_dir(), Some(root.join("unified/vserver/g1").as_path()));
    assert_eq!(cg.controller_dir("memory"), Some(root.join("memory/vserver/g1")));
}

#[test]
fn v2_guest_cgroup_enables_controllers_top_down() {
    let root = tempdir();
    v2_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let cg = GuestCgroup::for_guest(&l, "g1");
    cg.create_dirs().unwrap();
    assert!(root.join("vserver/g1").is_dir());
    // Root, the shared parent and the guest's own cgroup hand the
    // controllers down, so payload (the guest's delegated subtree) has them.
    for dir in ["", "vserver", "vserver/g1"] {
        assert_eq!(fs::read_to_string(root.join(dir).join("cgroup.subtree_control")).unwrap(), "+cpu +cpuset +memory +pids +io", "{dir}");
    }
    assert_eq!(fs::read_to_string(root.join("vserver/g1/cgroup.max.descendants")).unwrap(), MAX_DESCENDANTS.to_string());
    assert_eq!(fs::read_to_string(root.join("vserver/g1/cgroup.max.depth")).unwrap(), MAX_DEPTH.to_string());
    cg.create_children().unwrap();
    assert!(root.join("vserver/g1/payload").is_dir() && root.join("vserver/g1/supervisor").is_dir());
    assert_eq!(cg.payload_dirs(), vec![root.join("vserver/g1/payload")]);
    assert_eq!(cg.payload_v2(), Some(root.join("vserver/g1/payload")));
}

#[test]
fn hybrid_guest_cgroup_has_payload_and_supervisor_in_every_hierarchy() {
    let root = tempdir();
    hybrid_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let cg = GuestCgroup::for_guest(&l, "g2");
    cg.create_dirs().unwrap();
    cg.create_children().unwrap();
    for h in ["unified", "cpu,cpuacct", "memory", "pids"] {
        assert!(root.join(h).join("vserver/g2/payload").is_dir(), "{h}");
        assert!(root.join(h).join("vserver/g2/supervisor").is_dir(), "{h}");
    }
    assert_eq!(cg.payload_v2(), Some(root.join("unified/vserver/g2/payload")));
    assert_eq!(cg.payload_dirs().len(), 4);
    // No controller on the hybrid cgroup2 root: nothing is enabled there.
    assert!(!root.join("unified/vserver/cgroup.subtree_control").exists());
}

fn hybrid_fixture(root: &Path) {
    for d in ["cpu,cpuacct", "memory", "pids", "systemd", "unified"] {
        fs::create_dir_all(root.join(d)).unwrap();
        fs::write(root.join(d).join("cgroup.procs"), "").unwrap();
    }
    fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
}

#[test]
fn pids_are_read_recursively_from_payload_but_not_from_the_supervisor() {
    let root = tempdir();
    v2_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let cg = GuestCgroup::for_guest(&l, "g3");
    cg.create_dirs().unwrap();
    cg.create_children().unwrap();
    let g = root.join("vserver/g3");
    let nested = g.join("payload/system.slice/ssh.service");
    fs::create_dir_all(&nested).unwrap();
    fs::write(g.join("payload/cgroup.procs"), "1001\n").unwrap();
    fs::write(g.join("payload/system.slice/cgroup.procs"), "").unwrap();
    fs::write(nested.join("cgroup.procs"), "1002\n1003\n").unwrap();
    fs::write(g.join("supervisor/cgroup.procs"), "900\n").unwrap();
    let mut pids = cg.pids().unwrap();
    pids.sort();
    assert_eq!(pids, vec![1001, 1002, 1003]);
    let all = cg.all_pids().unwrap();
    assert_eq!(all, vec![900, 1001, 1002, 1003]);
}

#[test]
fn removal_goes_deepest_first_through_what_the_guest_made() {
    // Directories only (a real cgroupfs removes a cgroup with its control
    // files; a temp dir would not): rmdir of a parent before its children
    // would fail, so this shows the order.
    let root = tempdir();
    fs::create_dir_all(root.join("unified")).unwrap();
    let l = Layout { v1: Vec::new(), v2: Some(root.join("unified")) };
    let g = root.join("unified/vserver/g4");
    for d in ["payload/init.scope", "payload/system.slice/a.service", "payload/user.slice/u/s/x", "supervisor"] {
        fs::create_dir_all(g.join(d)).unwrap();
    }
    let cg = GuestCgroup::for_guest(&l, "g4");
    cg.remove().unwrap();
    assert!(!g.exists());
    assert!(!root.join("unified/vserver").exists(), "the shared parent goes with the last guest");
}

#[test]
fn a_stopped_guests_cgroups_go_by_name_and_the_shared_parent_stays_for_others() {
    let root = tempdir();
    hybrid_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let cg = GuestCgroup::for_guest(&l, "g5");
    // Directories only, as in the test above.
    for d in cg.dirs() {
        for child in [PAYLOAD, SUPERVISOR] {
            fs::create_dir_all(d.join(child)).unwrap();
        }
    }
    let other = root.join("unified/vserver/g6/payload");
    fs::create_dir_all(&other).unwrap();
    cg.remove().unwrap();
    assert!(cg.dirs().iter().all(|d| !d.exists()), "every hierarchy's vserver/g5 is gone");
    assert!(other.exists(), "another guest's cgroup is untouched");
    assert!(root.join("unified/vserver").exists(), "the shared parent stays while another guest is in it");
}

#[test]
fn own_cgroups_map_to_every_hierarchy() {
    let root = tempdir();
    hybrid_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let text = "9:name=systemd:/\n8:pids:/\n4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/user.slice\n";
    let got = guest::parse_own_cgroups(&l, text);
    assert!(got.contains(&(root.join("memory"), root.join("memory/a/b"))), "{got:?}");
    assert!(got.contains(&(root.join("cpu,cpuacct"), root.join("cpu,cpuacct/c"))), "{got:?}");
    assert!(got.contains(&(root.join("pids"), root.join("pids"))), "{got:?}");
    assert!(got.contains(&(root.join("unified"), root.join("unified/user.slice"))), "{got:?}");
    assert_eq!(got.len(), 4, "the named systemd hierarchy is not ours: {got:?}");
}

#[test]
fn empty_root_is_a_clear_error() {
    let root = tempdir();
    let e = Layout::detect(&root).unwrap_err();
    assert!(e.to_string().contains("no cgroup hierarchy"), "{e}");
}

#[test]
fn joiners_go_where_pid_1_is_within_payload() {
    let root = tempdir();
    hybrid_fixture(&root);
    let l = Layout::detect(&root).unwrap();
    let cg = GuestCgroup::for_guest(&l, "g5");
    // A systemd guest: pid 1 in payload/init.scope on cgroup2, payload in v1.
    let systemd = "8:pids:/vserver/g5/payload\n4:memory:/vserver/g5/payload\n0::/vserver/g5/payload/init.scope\n";
    let dirs = cg.joiner_dirs_from(systemd);
    assert!(dirs.contains(&root.join("unified/vserver/g5/payload/init.scope")), "{dirs:?}");
    assert!(dirs.contains(&root.join("memory/vserver/g5/payload")), "{dirs:?}");
    assert_eq!(dirs.len(), 4);
    // Anything outside payload (never so for a guest) falls back to payload.
    for odd in ["0::/vserver/g5/supervisor\n", "0::/elsewhere\n", "0::/vserver/g5/payload/../supervisor\n"] {
        assert!(cg.joiner_dirs_from(odd).contains(&root.join("unified/vserver/g5/payload")), "{odd}");
    }
}
