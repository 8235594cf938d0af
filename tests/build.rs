//! `vserver NAME build` and `delete` as admins use them: util-vserver's
//! options and exit codes, Debian guests that are personalised, clones that
//! are new machines and copy nothing of the host even from a hostile running
//! source, templates from hostile archives, deletes of any depth.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vserver_rs_tests::debian::{self, DebianInit};
use vserver_rs_tests::guest::World;
use vserver_rs_tests::tarball::Tar;
use vserver_rs_tests::{describe, require_busybox, require_root, stdout, Scratch};

fn ready() -> bool {
    require_root() && require_busybox()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn conf(w: &World, g: &str, rel: &str) -> String {
    read(&w.guest_conf(g).join(rel)).trim().to_string()
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn bad_usage_exits_2_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let w = World::new("usage");
    let (g, xid) = w.new_guest_name("us");
    let x = xid.to_string();
    for (why, args) in [
        ("unknown method", vec!["build", "-m", "nosuch"]),
        ("no method", vec!["build", "--context", &x]),
        ("non-contiguous netmask", vec!["build", "-m", "skeleton", "--netmask", "255.0.255.0"]),
        ("netmask with an IPv6 address", vec!["build", "-m", "skeleton", "--interface", "lo:2001:db8::1/255.0.0.0"]),
        ("bad address", vec!["build", "-m", "skeleton", "--interface", "lo:10.0.0.300"]),
        ("clone without a source", vec!["build", "-m", "clone"]),
        ("template without an archive", vec!["build", "-m", "template"]),
        ("unknown context flag", vec!["build", "-m", "skeleton", "--flags", "virt_uptime,no_such_flag"]),
        ("unsupported init style", vec!["build", "-m", "skeleton", "--initstyle", "minit"]),
        ("out-of-range context", vec!["build", "-m", "skeleton", "--context", "1"]),
        ("busybox with method arguments", vec!["build", "-m", "busybox", "--", "-d", "x"]),
    ] {
        let mut all = vec![g.as_str()];
        all.extend(args);
        let out = w.vserver(&all);
        assert_eq!(code(&out), Some(2), "{why}: {}", describe(&out));
        assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty(), "{why}: a usage error says what is wrong");
        assert!(!w.guest_conf(&g).exists() && !w.guest_root(&g).exists(), "{why}: nothing may be left");
    }
}

#[test]
fn util_vserver_build_options_are_honoured() {
    if !ready() {
        return;
    }
    let w = World::new("opts");
    let (g, xid) = w.new_guest_name("op");
    let rootdir = Scratch::new("rootdir");
    w.ok(
        &g,
        &[
            "build",
            "-m",
            "skeleton",
            "--context",
            &xid.to_string(),
            "--hostname",
            "op.example.org",
            "--interface",
            "a=eth7:10.1.2.3/255.0.0.0",
            "--interface",
            "127.0.81.7",
            "--interface",
            "nodev:127.0.81.8",
            "--netdev",
            "lo",
            "--netprefix",
            "24",
            "--flags",
            "virt_uptime,hide_netif",
            "--initstyle",
            "sysv",
            "--rootdir",
            rootdir.0.to_str().unwrap(),
        ],
    );
    assert_eq!(conf(&w, &g, "interfaces/0/prefix"), "8", "a dotted netmask becomes a prefix");
    assert_eq!(conf(&w, &g, "interfaces/0/dev"), "eth7");
    assert_eq!(conf(&w, &g, "interfaces/0/name"), "a");
    assert_eq!(conf(&w, &g, "interfaces/1/dev"), "lo", "--netdev for an interface without a device");
    assert_eq!(conf(&w, &g, "interfaces/1/prefix"), "24", "--netprefix for an interface without a prefix");
    assert!(w.guest_conf(&g).join("interfaces/2/nodev").exists());
    assert_eq!(conf(&w, &g, "interfaces/dev"), "lo", "util-vserver's guest-wide device");
    assert_eq!(conf(&w, &g, "interfaces/prefix"), "24");
    assert_eq!(conf(&w, &g, "cflags"), "virt_uptime\nhide_netif");
    assert_eq!(conf(&w, &g, "apps/init/style"), "sysv");
    assert_eq!(conf(&w, &g, "uts/nodename"), "op.example.org");
    let root = rootdir.0.join(&g);
    assert_eq!(fs::read_link(w.guest_conf(&g).join("vdir")).unwrap(), root, "--rootdir: the root and a vdir link to it");
    assert!(root.join("etc").is_dir() && !w.guest_root(&g).exists());
    assert_eq!(fs::metadata(&rootdir.0).unwrap().permissions().mode() & 0o777, 0, "the barrier is on --rootdir");
    let hosts = read(&root.join("etc/hosts"));
    assert!(hosts.contains("10.1.2.3\top.example.org op\n"), "{hosts}");
    assert_eq!(read(&root.join("etc/hostname")), "op.example.org\n");
    // The configuration is one `status` (and `start`) accepts.
    assert_eq!(code(&w.vserver(&[&g, "status"])), Some(3));
    w.ok(&g, &["delete"]);
    assert!(!root.exists() && !w.guest_conf(&g).exists());
}

#[test]
fn context_next_and_default_build_options() {
    if !ready() {
        return;
    }
    let w = World::new("ctxnext");
    let base = 30000 + (std::process::id() % 1000) * 10;
    fs::write(w.confdir.join(".defaults/context.next"), format!("{base}\n")).unwrap();
    let (a, _) = w.new_guest_name("cn");
    w.ok(&a, &["build", "-m", "skeleton"]);
    assert_eq!(conf(&w, &a, "context"), base.to_string());
    assert_eq!(read(&w.confdir.join(".defaults/context.next")).trim(), (base + 1).to_string(), "the counter moves on");
    // An id taken meanwhile is skipped.
    let (b, _) = w.new_guest_name("cn");
    w.ok(&b, &["build", "-m", "skeleton", "--context", &(base + 1).to_string()]);
    let (c, _) = w.new_guest_name("cn");
    fs::create_dir_all(w.confdir.join(".defaults/apps/build")).unwrap();
    fs::write(w.confdir.join(".defaults/apps/build/options"), "# defaults\n--initstyle\nplain\n--netdev\nlo\n--interface\n127.0.82.9\n")
        .unwrap();
    w.ok(&c, &["build", "-m", "skeleton", "--initstyle", "sysv", "--interface", "127.0.82.10/8"]);
    assert_eq!(conf(&w, &c, "context"), (base + 2).to_string());
    assert_eq!(conf(&w, &c, "apps/init/style"), "sysv", "the command line wins over apps/build/options");
    assert_eq!(conf(&w, &c, "interfaces/0/ip"), "127.0.82.9", "defaults' interfaces come first");
    assert_eq!(conf(&w, &c, "interfaces/0/dev"), "lo");
    assert_eq!(conf(&w, &c, "interfaces/1/prefix"), "8");
    // A bad defaults file is an error naming it.
    fs::write(w.confdir.join(".defaults/apps/build/options"), "--no-such-option\n").unwrap();
    let (d, _) = w.new_guest_name("cn");
    let out = w.vserver(&[&d, "build", "-m", "skeleton"]);
    assert_eq!(code(&out), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apps/build/options"), "{}", describe(&out));
}

#[test]
fn force_keeps_the_old_guest_as_unixtime() {
    if !ready() {
        return;
    }
    let w = World::new("force");
    let (g, xid) = w.busybox_guest("fo");
    fs::write(w.guest_root(&g).join("root/old-data"), b"keep me").unwrap();
    let out = w.vserver(&[&g, "build", "-m", "busybox", "--context", &xid.to_string()]);
    assert_eq!(code(&out), Some(1), "an existing guest is refused without --force: {}", describe(&out));
    w.ok(&g, &["start"]);
    let out = w.vserver(&[&g, "build", "-m", "busybox", "--force"]);
    assert_eq!(code(&out), Some(1), "a running guest is never replaced: {}", describe(&out));
    w.ok(&g, &["stop"]);
    let out = w.vserver(&[&g, "build", "-m", "busybox", "--force", "--context", &xid.to_string()]);
    assert!(out.status.success(), "{}", describe(&out));
    let said = stdout(&out);
    let moved = |dir: &Path| -> PathBuf {
        let prefix = format!("{g}.~");
        let entry = fs::read_dir(dir).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        entry.unwrap_or_else(|| panic!("no {prefix}UNIXTIME~ in {}: {said}", dir.display())).path()
    };
    let old_root = moved(&w.vdirbase);
    let old_conf = moved(&w.confdir);
    assert!(old_root.to_string_lossy().ends_with('~') && said.contains("Renamed"), "{said}");
    assert_eq!(read(&old_root.join("root/old-data")), "keep me");
    assert_eq!(conf(&w, &g, "context"), xid.to_string());
    assert!(old_conf.join("context").exists());
    assert!(!w.guest_root(&g).join("root/old-data").exists(), "the new guest is new");
    // The moved guest is not a guest any more (its name is not one).
    let list = w.vserver(&["--all-marked", "none", "start"]);
    assert!(list.status.success(), "{}", describe(&list));
    vserver_core::builder::remove_tree(&old_root).unwrap();
}

#[test]
fn a_failed_force_build_puts_the_old_guest_back() {
    if !ready() {
        return;
    }
    let w = World::new("forcefail");
    let (g, xid) = w.busybox_guest("ff");
    fs::write(w.guest_root(&g).join("root/old-data"), b"keep me").unwrap();
    let out = w.vserver(&[&g, "build", "-m", "template", "--force", "--context", &xid.to_string(), "--", "-t", "/nonexistent.tar"]);
    assert_eq!(code(&out), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.tar"), "{}", describe(&out));
    assert_eq!(read(&w.guest_root(&g).join("root/old-data")), "keep me");
    assert_eq!(conf(&w, &g, "context"), xid.to_string());
    let leftovers: Vec<_> =
        fs::read_dir(&w.vdirbase).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".~")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A directory tree deeper than PATH_MAX, with symlinks to a host directory
/// on the way: delete removes all of it and follows none.
#[test]
fn delete_removes_a_tree_deeper_than_path_max() {
    if !ready() {
        return;
    }
    let w = World::new("deep");
    let (g, _) = w.busybox_guest("dp");
    let host = Scratch::new("deep-host");
    fs::write(host.0.join("precious"), b"host file").unwrap();
    let mut dir = fs::File::open(w.guest_root(&g).join("root")).unwrap();
    let name = "x".repeat(250);
    for _ in 0..30 {
        let here = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir));
        fs::create_dir(format!("{here}/{name}")).unwrap();
        std::os::unix::fs::symlink(&host.0, format!("{here}/host")).unwrap();
        fs::write(format!("{here}/f"), b"x").unwrap();
        dir = fs::File::open(format!("{here}/{name}")).unwrap();
    }
    drop(dir);
    w.ok(&g, &["delete"]);
    assert!(!w.guest_root(&g).exists() && !w.guest_conf(&g).exists());
    assert_eq!(read(&host.0.join("precious")), "host file");
}

/// Every regular file below `root` whose name is `name`, never following a
/// symlink (lstat all the way).
fn find_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else if e.file_name() == name {
                found.push(e.path());
            }
        }
    }
    found
}

/// Guest root in a running source swaps a directory for a symlink to a host
/// directory as fast as it can while the host clones it: no clone may get
/// the host's file.
#[test]
fn cloning_a_running_hostile_guest_copies_no_host_file() {
    if !ready() {
        return;
    }
    let w = World::new("race");
    let (src, _) = w.busybox_guest("rs");
    let host = Scratch::new("race-host");
    let marker = format!("MARKER-{}", std::process::id());
    fs::write(host.0.join(&marker), b"a host file").unwrap();
    let script = format!(
        "mkdir -p /race/d; echo guest > /race/d/inside; i=0\n\
         while :; do mv /race/d /race/d.real; ln -s {host} /race/d; rm /race/d; mv /race/d.real /race/d\n\
         i=$((i+1)); [ $((i % 20)) = 0 ] && echo $i > /race/count; done\n",
        host = host.0.display()
    );
    fs::write(w.guest_root(&src).join("race.sh"), script).unwrap();
    w.ok(&src, &["start"]);
    w.sh_ok(&src, "setsid sh /race.sh </dev/null >/dev/null 2>&1 &");
    let count = || fs::read_to_string(w.guest_root(&src).join("race/count")).ok().and_then(|c| c.trim().parse::<u64>().ok()).unwrap_or(0);
    // On a loaded machine the loop may take a while to get going.
    let started = std::time::Instant::now();
    while count() == 0 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = count();
    assert!(before > 0, "the hostile loop runs");
    for i in 0..30 {
        let (c, _) = w.new_guest_name("rc");
        let out = w.vserver(&[&c, "build", "-m", "clone", "--", &src]);
        assert!(out.status.success(), "clone {i}: {}", describe(&out));
        let root = w.guest_root(&c);
        assert!(root.join("bin/busybox").is_file(), "clone {i} is complete");
        let leaked = find_named(&root, &marker);
        assert!(leaked.is_empty(), "clone {i} holds the host's file: {leaked:?}");
        w.ok(&c, &["delete"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = count();
    assert!(after > before, "the source was thawed after the clones ({before} -> {after})");
    w.ok(&src, &["stop"]);
    assert!(host.0.join(&marker).exists());
}

#[test]
fn a_clone_of_a_plain_tree_takes_the_init_the_tree_has() {
    if !ready() {
        return;
    }
    let w = World::new("cloneinit");
    for (tree, expected) in [("sd", "systemd"), ("sv", "sysv"), ("pl", "plain")] {
        let src = w.root.join(format!("tree-{tree}"));
        fs::create_dir_all(src.join("etc/init.d")).unwrap();
        fs::create_dir_all(src.join("sbin")).unwrap();
        match expected {
            "systemd" => std::os::unix::fs::symlink("/lib/systemd/systemd", src.join("sbin/init")).unwrap(),
            "sysv" => fs::write(src.join("etc/init.d/rc"), "#!/bin/sh\n").unwrap(),
            _ => std::os::unix::fs::symlink("/bin/busybox", src.join("sbin/init")).unwrap(),
        }
        let (g, _) = w.new_guest_name(tree);
        w.ok(&g, &["build", "-m", "clone", "--", &src.to_string_lossy()]);
        assert_eq!(read(&w.guest_conf(&g).join("apps/init/style")), format!("{expected}\n"), "a clone of {}", src.display());
    }
}

#[test]
fn a_clone_is_a_new_machine_that_keeps_unified_links() {
    if !ready() {
        return;
    }
    let w = World::new("clonelinks");
    let (a, _) = w.busybox_guest("la");
    let (b, _) = w.busybox_guest("lb");
    // A machine identity and SSH host keys in the source, as a Debian guest has them.
    let ra = w.guest_root(&a);
    fs::create_dir_all(ra.join("etc/ssh")).unwrap();
    let keygen =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(ra.join("etc/ssh/ssh_host_ed25519_key")).status();
    assert!(keygen.is_ok_and(|s| s.success()), "ssh-keygen (openssh-client) is needed");
    fs::write(ra.join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
    fs::create_dir_all(ra.join("run")).unwrap();
    fs::write(ra.join("run/stale.pid"), "42\n").unwrap();
    for g in [&a, &b] {
        fs::create_dir_all(w.guest_conf(g).join("apps/vunify")).unwrap();
    }
    // Together: a file only one guest has is never unified.
    let out = w.cmd("vhashify").arg("--all").output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let (c, _) = w.new_guest_name("lc");
    w.ok(&c, &["build", "-m", "clone", "--hostname", "lc.example.org", "--interface", "nodev:127.0.84.3", "--", &a]);
    let rc = w.guest_root(&c);
    assert_eq!(
        fs::metadata(rc.join("bin/busybox")).unwrap().ino(),
        fs::metadata(ra.join("bin/busybox")).unwrap().ino(),
        "unified files stay linked"
    );
    assert!(vserver_rs_tests::unify::is_immutable(&rc.join("bin/busybox")));
    let id = read(&rc.join("etc/machine-id"));
    assert!(id.trim().len() == 32 && id != read(&ra.join("etc/machine-id")), "a new machine-id: {id}");
    let pubkey = |r: &Path| read(&r.join("etc/ssh/ssh_host_ed25519_key.pub"));
    assert_ne!(pubkey(&rc), pubkey(&ra), "new SSH host keys");
    assert!(pubkey(&rc).trim_end().ends_with("root@lc.example.org"));
    assert_eq!(fs::metadata(rc.join("etc/ssh/ssh_host_ed25519_key")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(read(&rc.join("etc/hostname")), "lc.example.org\n");
    assert!(read(&rc.join("etc/hosts")).contains("127.0.84.3\tlc.example.org lc\n"));
    assert!(!rc.join("run/stale.pid").exists() && rc.join("run").is_dir(), "no stale run files");
    // Deleting the clone keeps the entries the others use; deleting all frees them.
    let store = w.vdirbase.join(".hash");
    let entries = vserver_rs_tests::unify::store_entries(&store).len();
    assert!(entries > 0);
    w.ok(&c, &["delete"]);
    w.ok(&b, &["delete"]);
    assert_eq!(vserver_rs_tests::unify::store_entries(&store).len(), entries, "a still links to every entry");
    let out = w.vserver(&[&a, "delete"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains("hash store entries"), "delete reports what it freed: {}", describe(&out));
    assert_eq!(vserver_rs_tests::unify::store_entries(&store).len(), 0, "entries no guest links to are gone");
}

/// A tree with the things templates carry, archived by the host's tar.
fn template_source(dir: &Path) {
    for d in ["bin", "etc/ssh", "dev", "run", "var/lib", "home/u"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    fs::hard_link(dir.join("bin/busybox"), dir.join("bin/ash")).unwrap();
    fs::write(dir.join("home/u/file"), b"user data").unwrap();
    vserver_rs_tests::unify::chown(&dir.join("home/u/file"), 1234, 5678);
    vserver_rs_tests::unify::chmod(&dir.join("bin/busybox"), 0o4755);
    fs::write(dir.join("etc/hostname"), b"template-host\n").unwrap();
    fs::write(dir.join("run/old.pid"), b"1\n").unwrap();
    let keygen =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("etc/ssh/ssh_host_ed25519_key")).status();
    assert!(keygen.is_ok_and(|s| s.success()));
    let ok = Command::new("mknod").arg(dir.join("dev/sda")).args(["b", "8", "0"]).status().unwrap().success();
    assert!(ok, "mknod");
    assert!(Command::new("mkfifo").arg(dir.join("run/fifo")).status().unwrap().success());
}

#[test]
fn templates_from_tar_gz_xz_and_zst() {
    if !ready() {
        return;
    }
    let w = World::new("template");
    let scratch = Scratch::new("template-src");
    let src = scratch.0.join("root");
    template_source(&src);
    for (ext, flag) in [("tar", None), ("tar.gz", Some("--gzip")), ("tar.xz", Some("--xz")), ("tar.zst", Some("--zstd"))] {
        let archive = scratch.0.join(format!("t.{ext}"));
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&src).arg("--numeric-owner").arg("-cf").arg(&archive);
        tar.args(flag);
        let made = tar.arg(".").status().unwrap().success();
        assert!(made, "tar {ext} (install xz-utils and zstd)");
        let (g, _) = w.new_guest_name("tp");
        let out = w.vserver(&[&g, "build", "-m", "template", "--interface", "nodev:127.0.85.4", "--", "-t", archive.to_str().unwrap()]);
        assert!(out.status.success(), "{ext}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("1 device nodes"), "{ext}: the skipped node is reported: {}", describe(&out));
        let r = w.guest_root(&g);
        let m = |p: &str| fs::symlink_metadata(r.join(p)).unwrap_or_else(|e| panic!("{ext}: {p}: {e}"));
        assert_eq!((m("home/u/file").uid(), m("home/u/file").gid()), (1234, 5678), "{ext}: owners kept");
        assert_eq!(m("bin/busybox").mode() & 0o7777, 0o4755, "{ext}: the setuid bit kept");
        assert_eq!(m("bin/busybox").ino(), m("bin/ash").ino(), "{ext}: hard links kept");
        assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("busybox"));
        assert!(m("run").is_dir() && !r.join("run/old.pid").exists() && !r.join("run/fifo").exists(), "{ext}: stale run files gone");
        assert!(!r.join("dev/sda").exists(), "{ext}: no device nodes");
        assert_eq!(read(&r.join("etc/hostname")), format!("{g}\n"));
        assert_ne!(
            read(&r.join("etc/ssh/ssh_host_ed25519_key.pub")),
            read(&src.join("etc/ssh/ssh_host_ed25519_key.pub")),
            "{ext}: new host keys"
        );
        assert_eq!(conf(&w, &g, "apps/init/style"), "plain", "{ext}: a busybox template runs its own init");
        w.ok(&g, &["delete"]);
    }
}

/// Builds a template guest from `archive` bytes and expects a refusal
/// naming `why`, with nothing left.
fn refused(w: &World, scratch: &Path, tag: &str, archive: Vec<u8>, why: &str) {
    let path = scratch.join(format!("{tag}.tar"));
    fs::write(&path, archive).unwrap();
    let (g, _) = w.new_guest_name("ht");
    let out = w.vserver(&[&g, "build", "-m", "template", "--", "-t", path.to_str().unwrap()]);
    assert_eq!(code(&out), Some(1), "{tag}: {}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "{tag}: the refusal says {why:?}: {err}");
    assert!(!w.guest_conf(&g).exists() && !w.guest_root(&g).exists(), "{tag}: nothing may be left");
}

#[test]
fn hostile_templates_write_nothing_outside_the_guest() {
    if !ready() {
        return;
    }
    let w = World::new("hostiletpl");
    let scratch = Scratch::new("hostile-tpl");
    let host = scratch.0.join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("secret"), b"host secret").unwrap();
    let h = host.to_str().unwrap().trim_start_matches('/').to_string();
    let up = "../".repeat(12);
    refused(&w, &scratch.0, "dotdot", Tar::new().file(&format!("{up}{h}/pwned"), b"x", 0o644, (0, 0)).finish(), "outside the guest root");
    refused(
        &w,
        &scratch.0,
        "through-symlink",
        Tar::new().dir("etc", 0o755).symlink("etc/evil", host.to_str().unwrap()).file("etc/evil/pwned", b"x", 0o644, (0, 0)).finish(),
        "symlink",
    );
    refused(
        &w,
        &scratch.0,
        "through-root-symlink",
        Tar::new().symlink("r", "/").file("r/tmp/pwned", b"x", 0o644, (0, 0)).finish(),
        "symlink",
    );
    refused(&w, &scratch.0, "hardlink-out", Tar::new().hardlink("stolen", &format!("{up}{h}/secret")).finish(), "outside the guest root");
    refused(
        &w,
        &scratch.0,
        "hardlink-via-symlink",
        Tar::new().symlink("l", host.to_str().unwrap()).hardlink("stolen", "l/secret").finish(),
        "hard link target",
    );
    assert!(!host.join("pwned").exists() && fs::read_dir(&host).unwrap().count() == 1, "nothing was written to the host");
    assert_eq!(fs::metadata(host.join("secret")).unwrap().nlink(), 1, "no link to a host file");
    // Absolute names land inside the guest; devices are left out; symlinks
    // to host paths are made as they are (they mean the guest's own paths).
    let path = scratch.0.join("ok.tar");
    let abs = format!("var/tmp/vs-abs-{}", std::process::id());
    let archive = Tar::new()
        .file(&format!("/{abs}/inside"), b"in the guest", 0o600, (0, 0))
        .device("dev/sda", b'4', 8, 0)
        .device("kmem", b'3', 1, 2)
        .symlink("hostlink", host.to_str().unwrap())
        .hardlink("inside2", &format!("/{abs}/inside"))
        .fifo("run/fifo")
        .finish();
    fs::write(&path, archive).unwrap();
    let (g, _) = w.new_guest_name("ht");
    let out = w.vserver(&[&g, "build", "-m", "template", "--", "-t", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let r = w.guest_root(&g);
    assert_eq!(read(&r.join(&abs).join("inside")), "in the guest");
    let on_host = Path::new("/").join(&abs);
    let escaped = on_host.exists();
    let _ = fs::remove_dir_all(&on_host);
    assert!(!escaped, "an absolute member name must not reach the host");
    assert_eq!(fs::metadata(r.join("inside2")).unwrap().ino(), fs::metadata(r.join(&abs).join("inside")).unwrap().ino());
    assert!(!r.join("dev/sda").exists() && !r.join("kmem").exists());
    assert_eq!(fs::read_link(r.join("hostlink")).unwrap(), host);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 device nodes"), "{}", describe(&out));
}

/// What a Debian guest built by `build -m debootstrap` and cloned must have.
fn check_debian_guest(init: DebianInit) {
    if !ready() {
        return;
    }
    let Some(template) = debian::template(init) else { return };
    let w = World::new(&format!("deb{}", init.name()));
    let Some((g, xid)) = w.debian_guest("dg", init, &["lo:127.0.86.2/32"]) else { return };
    let r = w.guest_root(&g);
    let host_name = fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_eq!(conf(&w, &g, "apps/init/style"), init.name());
    assert_eq!(conf(&w, &g, "context"), xid.to_string());
    for (root, name) in [(template.as_path(), "template"), (r.as_path(), g.as_str())] {
        let hostname = read(&root.join("etc/hostname"));
        assert_eq!(hostname, format!("{name}\n"));
        assert_ne!(hostname.trim(), host_name.trim(), "not the host's /etc/hostname");
        let resolv = read(&root.join("etc/resolv.conf"));
        assert!(!resolv.lines().any(|l| l.starts_with("nameserver 127.")), "no name server on the host's loopback:\n{resolv}");
        assert_eq!(fs::read_link(root.join("etc/mtab")).unwrap(), Path::new("../proc/self/mounts"));
        let id = read(&root.join("etc/machine-id"));
        assert!(id.trim().len() == 32 && id.trim().chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(root.join("usr/sbin/ifup").exists(), "debootstrap's default variant (ifupdown is 'important'), not minbase");
    }
    assert_ne!(read(&r.join("etc/machine-id")), read(&template.join("etc/machine-id")), "each guest its own machine-id");
    let key = "etc/ssh/ssh_host_ed25519_key.pub";
    assert_ne!(read(&r.join(key)), read(&template.join(key)), "each guest its own SSH host keys");
    let hosts = read(&r.join("etc/hosts"));
    assert!(hosts.contains(&format!("127.0.86.2\t{g}\n")) && !hosts.contains("template"), "{hosts}");
    let status = read(&r.join("var/lib/dpkg/status"));
    let installed = |p: &str| status.contains(&format!("Package: {p}\nStatus: install ok installed"));
    for p in ["openssh-server", "nginx-light", "cron", "rsyslog"] {
        assert!(installed(p), "{p} is installed");
    }
    match init {
        DebianInit::Systemd => {
            assert!(installed("systemd-sysv"));
            assert!(fs::read_link(r.join("usr/sbin/init")).unwrap().to_string_lossy().contains("systemd"));
            for unit in ["systemd-udevd.service", "getty@tty1.service", "networking.service", "systemd-timesyncd.service", "fstrim.timer"] {
                let link = fs::read_link(r.join("etc/systemd/system").join(unit));
                assert_eq!(link.ok().as_deref(), Some(Path::new("/dev/null")), "{unit} is masked");
            }
        }
        DebianInit::Sysv => {
            assert!(installed("sysvinit-core") && !installed("systemd-sysv"));
            let rcs: Vec<String> =
                fs::read_dir(r.join("etc/rcS.d")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            for script in ["hwclock.sh", "udev", "networking", "kmod"] {
                let start = rcs.iter().any(|n| n.starts_with('S') && n.ends_with(script) && n.len() == script.len() + 3);
                let stop = rcs.iter().any(|n| n.starts_with('K') && n.ends_with(script) && n.len() == script.len() + 3);
                assert!(!start && stop, "{script} is disabled in rcS.d: {rcs:?}");
            }
            let inittab = read(&r.join("etc/inittab"));
            assert!(!inittab.lines().any(|l| !l.starts_with('#') && l.contains("getty") && l.contains("tty1")), "{inittab}");
            assert!(inittab.lines().any(|l| l.starts_with('#') && l.contains("getty") && l.contains("tty1")), "{inittab}");
        }
    }
}

#[test]
fn debian_systemd_guest_is_built_bootable_and_personalised() {
    check_debian_guest(DebianInit::Systemd);
}

#[test]
fn debian_sysv_guest_is_built_bootable_and_personalised() {
    check_debian_guest(DebianInit::Sysv);
}
