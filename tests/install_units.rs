//! The systemd units pass `systemd-analyze verify` as installed by
//! util/install.sh (ExecStart pointing at the installed binaries), the
//! template also as an instance. Man page references are checked by
//! install_docs.rs, so `--man=no` here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use vserver_rs_tests::{describe, require, Scratch};

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let have = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !require(have, "systemd-analyze (apt-get install systemd)") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let bin_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let root = Scratch(std::env::temp_dir().join(format!("vs-units-{}", std::process::id())));
    let _ = fs::remove_dir_all(&root.0);
    let prefix = root.0.join("usr");
    let out = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/util/install.sh"))
        .env_remove("DESTDIR")
        .env("PREFIX", &prefix)
        .env("SYSCONFDIR", root.0.join("etc"))
        .env("RUNDIR", root.0.join("run/vservers"))
        .env("BUILD_DIR", &bin_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh: {}", describe(&out));

    let unit_dir = prefix.join("lib/systemd/system");
    let service = fs::read_to_string(unit_dir.join("vservers.service")).unwrap();
    let exec = format!("ExecStart={}/bin/vserver --all-marked default start", prefix.display());
    assert!(service.contains(&exec), "install.sh did not point the unit at PREFIX/bin: {service}");
    fs::copy(unit_dir.join("vservers@.service"), unit_dir.join("vservers@web.service")).unwrap();

    let mut units: Vec<PathBuf> = fs::read_dir(&unit_dir).unwrap().flatten().map(|e| e.path()).collect();
    units.sort();
    assert_eq!(units.len(), 5, "{units:?}");
    let out = Command::new("systemd-analyze").arg("verify").arg("--man=no").args(&units).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify: {}", describe(&out));

    // The check can fail: a unit whose ExecStart binary does not exist.
    let broken = unit_dir.join("vservers-broken.service");
    fs::write(&broken, service.replace(&format!("{}/bin/vserver ", prefix.display()), "/nonexistent/vserver ")).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg("--man=no").arg(&broken).output().unwrap();
    assert!(!out.status.success() || !out.stderr.is_empty(), "verify accepted a broken unit: {}", describe(&out));
}

/// The cron job steps aside while vhashify.timer is active, and does
/// nothing once vhashify is gone (dpkg -r keeps the cron file, a conffile,
/// until purge): the two never both run, and a removed package mails nothing.
#[test]
fn the_cron_job_never_runs_beside_the_timer_or_without_vhashify() {
    let cron = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/util/vhashify.cron")).unwrap();
    let line = cron.lines().find(|l| !l.starts_with('#') && l.split_whitespace().nth(5) == Some("root")).unwrap();
    let command = line.splitn(7, char::is_whitespace).nth(6).unwrap();
    let dir = Scratch(std::env::temp_dir().join(format!("vs-cron-{}", std::process::id())));
    let _ = fs::remove_dir_all(&dir.0);
    let stubs = dir.0.join("bin");
    fs::create_dir_all(&stubs).unwrap();
    let log = dir.0.join("log");
    let stub = |name: &str, body: &str| {
        let p = stubs.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    for tool in ["nice", "ionice"] {
        // nice/ionice pass the command on (their options are dropped).
        stub(tool, "while [ $# -gt 0 ] && [ \"${1#-}\" != \"$1\" ]; do shift 2; done; exec \"$@\"");
    }
    stub("vhashify", &format!("echo \"vhashify $*\" >> {}", log.display()));
    let run_cron = |timer_active: bool| {
        stub("systemctl", if timer_active { "exit 0" } else { "exit 3" });
        let _ = fs::remove_file(&log);
        let out =
            Command::new("/bin/sh").arg("-c").arg(command).env("PATH", format!("{}:/usr/bin:/bin", stubs.display())).output().unwrap();
        (out, fs::read_to_string(&log).unwrap_or_default())
    };
    let (_, ran) = run_cron(true);
    assert_eq!(ran, "", "the cron job ran while vhashify.timer is active");
    let (out, ran) = run_cron(false);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(ran, "vhashify --all --no-wait\nvhashify --gc --no-wait\n");
    fs::remove_file(stubs.join("vhashify")).unwrap();
    let (out, _) = run_cron(false);
    assert!(out.stderr.is_empty(), "without vhashify the job must stay silent: {}", describe(&out));
}
