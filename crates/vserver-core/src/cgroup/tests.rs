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
    assert_eq!(fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(), "+cpu +cpuset +memory +pids +io");
    assert_eq!(
        fs::read_to_string(root.join("vserver/cgroup.subtree_control")).unwrap(),
        "+cpu +cpuset +memory +pids +io"
    );
}

#[test]
fn empty_root_is_a_clear_error() {
    let root = tempdir();
    let e = Layout::detect(&root).unwrap_err();
    assert!(e.to_string().contains("no cgroup hierarchy"), "{e}");
}
