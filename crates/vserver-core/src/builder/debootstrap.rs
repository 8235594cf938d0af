//! `build -m debootstrap -- -d SUITE [-m MIRROR] [DEBOOTSTRAP-OPTIONS...]`: a
//! real Debian guest. The mirror defaults to the one the host's apt uses.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub(super) fn build(confdir: &Path, vdir: &Path, args: &[String]) -> Result<()> {
    let mut suite = None;
    let mut mirror = None;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-d" => suite = Some(it.next().context("-d needs a distribution (e.g. bookworm)")?.clone()),
            "-m" => mirror = Some(it.next().context("-m needs a mirror URL")?.clone()),
            "--" => extra.extend(it.by_ref().cloned()),
            other => extra.push(other.to_string()),
        }
    }
    let suite = suite.unwrap_or_else(host_suite);
    let mirror = match mirror {
        Some(m) => m,
        None => host_mirror().context("no -m MIRROR given and none found in /etc/apt/sources.list*")?,
    };
    if Command::new("debootstrap").arg("--version").output().is_err() {
        bail!("debootstrap is not installed (apt-get install debootstrap)");
    }
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .args(&extra)
        .arg(&suite)
        .arg(vdir)
        .arg(&mirror)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        bail!("debootstrap {suite} {} {mirror} failed ({status})", vdir.display());
    }
    fs::create_dir_all(confdir.join("apps/init"))?;
    fs::write(confdir.join("apps/init/style"), "sysv\n")?;
    Ok(())
}

fn host_suite() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "stable".to_string())
}

/// The first Debian archive URL in the host's apt sources (one-line or deb822).
pub fn host_mirror() -> Option<String> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        for line in text.lines().map(str::trim) {
            let url = if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                line.strip_prefix("URIs:").and_then(|r| r.split_whitespace().next())
            };
            if let Some(u) = url.filter(|u| !u.contains("security")) {
                return Some(u.to_string());
            }
        }
    }
    None
}
