//! `build -m busybox`: a small working guest from the host's static busybox
//! (Debian's busybox-static): every applet, an init, /etc/passwd and group.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{BuildError, Doing};
use super::skeleton_root;

/// Where the static busybox comes from; `VSERVER_BUSYBOX` overrides.
fn busybox_source() -> PathBuf {
    std::env::var_os("VSERVER_BUSYBOX").map(PathBuf::from).unwrap_or_else(|| "/bin/busybox".into())
}

pub(super) fn build(vdir: &Path) -> Result<(), BuildError> {
    let source = busybox_source();
    if !source.exists() {
        return Err(BuildError::NoBusybox { path: source });
    }
    let is_static = crate::hostinfo::tools::elf_is_static(&source).doing(|| format!("reading {}", source.display()))?;
    if !is_static {
        return Err(BuildError::BusyboxNotStatic { path: source });
    }
    skeleton_root(vdir)?;
    for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "var/log", "var/run", "run", "home", "etc/init.d", "mnt"] {
        fs::create_dir_all(vdir.join(dir))?;
    }
    let target = vdir.join("bin/busybox");
    fs::copy(&source, &target).doing(|| format!("copying {}", source.display()))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    link_applets(&source, vdir)?;
    write_etc(vdir)
    // /etc/hostname and /etc/hosts are the guest's own (personalise.rs).
}

fn link_applets(busybox: &Path, vdir: &Path) -> Result<(), BuildError> {
    let out = Command::new(busybox).arg("--list-full").output().doing(|| "running busybox --list-full".to_string())?;
    if !out.status.success() {
        return Err(BuildError::BusyboxListFailed { path: busybox.to_path_buf() });
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet.contains("..") || applet == "bin/busybox" {
            continue;
        }
        let link = vdir.join(applet);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&link).is_err() {
            symlink("/bin/busybox", &link).doing(|| format!("linking {}", link.display()))?;
        }
    }
    Ok(())
}

fn write_etc(vdir: &Path) -> Result<(), BuildError> {
    let files: &[(&str, &str, u32)] = &[
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
        ("etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o600),
        ("etc/inittab", "::sysinit:/etc/init.d/rcS\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/sync\n", 0o644),
        ("etc/init.d/rcS", "#!/bin/sh\n# Runs once at guest start (busybox init, ::sysinit:).\nmkdir -p /run /var/run /tmp\n", 0o755),
        ("etc/profile", "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPS1='\\h:\\w\\$ '\n", 0o644),
    ];
    for (rel, content, mode) in files {
        let p = vdir.join(rel);
        fs::write(&p, content).doing(|| format!("writing {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}
