use super::*;
use crate::config::parse::tests::tempdir;
use std::fs;

fn setup() -> (Paths, PathBuf) {
    let root = tempdir();
    let paths =
        Paths { confdir: root.join("etc"), vdirbase: root.join("vservers"), rundir: root.join("run"), cgroup_root: root.join("cgroup") };
    let g = paths.guest_confdir("web1");
    fs::create_dir_all(&g).unwrap();
    fs::create_dir_all(paths.defaults_dir()).unwrap();
    fs::write(g.join("context"), "# xid\n42\n").unwrap();
    (paths, g)
}

#[test]
fn minimal_guest_gets_defaults() {
    let (paths, _) = setup();
    let g = load_guest(&paths, "web1").unwrap();
    assert_eq!(g.xid, 42);
    assert_eq!(g.vdir, paths.vdirbase.join("web1"));
    assert_eq!(g.bcaps, caps::default_bounding_set());
    assert_eq!(g.init.style, InitStyle::Sysv);
    assert_eq!(g.hostname(), "web1");
}

#[test]
fn edits_layer_defaults_then_guest() {
    let (paths, g) = setup();
    fs::write(paths.defaults_dir().join("bcapabilities"), "NET_RAW\n~KILL\n").unwrap();
    fs::write(g.join("bcapabilities"), "!NET_RAW\nCAP_SYS_NICE\n").unwrap();
    fs::write(g.join("cflags"), "VIRT_UPTIME\nnamespace\n").unwrap();
    let guest = load_guest(&paths, "web1").unwrap();
    assert!(!guest.bcaps.contains(&caps::Capability::CAP_NET_RAW));
    assert!(!guest.bcaps.contains(&caps::Capability::CAP_KILL));
    assert!(guest.bcaps.contains(&caps::Capability::CAP_SYS_NICE));
    assert!(guest.wants_namespace(ExtraNamespace::Time));
}

#[test]
fn bad_values_name_file_line_and_value() {
    let (paths, g) = setup();
    fs::write(g.join("bcapabilities"), "CHOWN\n\nCAP_FLY\n").unwrap();
    let e = load_guest(&paths, "web1").unwrap_err();
    assert_eq!((e.file.clone(), e.line), (g.join("bcapabilities"), 3));
    assert!(e.to_string().contains("\"CAP_FLY\""), "{e}");
    fs::remove_file(g.join("bcapabilities")).unwrap();

    fs::write(g.join("context"), "1\n").unwrap();
    let e = load_guest(&paths, "web1").unwrap_err();
    assert!(e.to_string().contains("is not a context id"), "{e}");
    fs::write(g.join("context"), "42\n").unwrap();

    fs::create_dir_all(g.join("rlimits")).unwrap();
    fs::write(g.join("rlimits/nofiles"), "10\n").unwrap();
    assert!(load_guest(&paths, "web1").unwrap_err().to_string().contains("not a resource limit name"));
    fs::remove_file(g.join("rlimits/nofiles")).unwrap();
    fs::write(g.join("rlimits/nofile.hard"), "1kX\n").unwrap();
    assert!(load_guest(&paths, "web1").unwrap_err().to_string().contains("unknown suffix"));
    fs::write(g.join("rlimits/nofile.hard"), "100\n").unwrap();
    fs::write(g.join("rlimits/nofile.soft"), "200\n").unwrap();
    assert!(load_guest(&paths, "web1").unwrap_err().to_string().contains("above the hard limit"));
}

#[test]
fn rlimits_plain_file_sets_both() {
    let (paths, g) = setup();
    fs::create_dir_all(g.join("rlimits")).unwrap();
    fs::write(g.join("rlimits/nofile"), "512\n").unwrap();
    fs::write(g.join("rlimits/nproc.hard"), "20\n").unwrap();
    let guest = load_guest(&paths, "web1").unwrap();
    let nofile = guest.rlimits.iter().find(|r| r.resource == Resource::Nofile).unwrap();
    assert_eq!((nofile.soft, nofile.hard), (Some(LimitValue::Plain(512)), Some(LimitValue::Plain(512))));
}

#[test]
fn unknown_guest_and_listing() {
    let (paths, _) = setup();
    let e = load_guest(&paths, "nope").unwrap_err();
    assert!(e.to_string().contains("no such guest \"nope\""), "{e}");
    assert!(load_guest(&paths, "../x").is_err());
    assert_eq!(list_guests(&paths).unwrap(), vec!["web1".to_string()]);
}

#[test]
fn init_and_machine() {
    let (paths, g) = setup();
    fs::create_dir_all(g.join("apps/init")).unwrap();
    fs::write(g.join("apps/init/style"), "plain\n").unwrap();
    fs::write(g.join("apps/init/cmd.start"), "/bin/sh\n-c\nsleep 1\n").unwrap();
    fs::write(g.join("apps/init/mark"), "default\n").unwrap();
    fs::create_dir_all(g.join("uts")).unwrap();
    fs::write(g.join("uts/machine"), "i686\n").unwrap();
    assert!(load_guest(&paths, "web1").unwrap_err().to_string().contains("personality"));
    fs::write(g.join("personality"), "linux32\n").unwrap();
    let guest = load_guest(&paths, "web1").unwrap();
    assert_eq!(guest.init.cmd_start.as_deref().unwrap(), ["/bin/sh", "-c", "sleep 1"]);
    assert_eq!(guest.init.mark.as_deref(), Some("default"));
    assert_eq!(guest.personality, Personality::Linux32);
}

#[test]
fn the_sample_tree_parses() {
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc-vservers");
    let paths = Paths { confdir: tree, vdirbase: "/vservers".into(), rundir: "/run/vservers".into(), cgroup_root: "/sys/fs/cgroup".into() };
    let g = load_guest(&paths, "example").unwrap();
    assert_eq!(g.xid, 4242);
    assert_eq!(g.init.style, InitStyle::Plain);
    assert_eq!(g.fstab.len(), 1, "the .defaults fstab applies");
    assert!(g.wants_namespace(ExtraNamespace::Time));
    assert_eq!(g.net.interfaces[0].ip.to_string(), "127.0.0.42");
}
