//! The pids controller: `nproc` of a whole context → `pids.max`. The files
//! are named the same in v1 and v2; both backends exist so the dispatch reads
//! like every other controller's.

use std::io;
use std::path::Path;

use super::controller::{max_text, optional, read_keyed, read_max, read_u64, Controller, Max, Version};
use crate::cgroup::write_file;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidsLimits {
    pub max: Option<Max>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PidsUsage {
    pub current: u64,
    /// `pids.peak` (kernel 6.1 and later).
    pub peak: Option<u64>,
    /// Forks refused because of the limit (`pids.events` max).
    pub hits: u64,
}

pub struct V1;
pub struct V2;

pub fn backend(version: Version) -> &'static dyn Controller<Settings = PidsLimits, Usage = PidsUsage> {
    match version {
        Version::V1 => &V1,
        Version::V2 => &V2,
    }
}

fn read(dir: &Path) -> io::Result<PidsLimits> {
    Ok(PidsLimits { max: Some(read_max(&dir.join("pids.max"))?) })
}

fn write(version: Version, dir: &Path, wanted: &PidsLimits) -> io::Result<()> {
    // pids.max takes "max" in both versions.
    let text = |v: Max| if v.is_none() { "max".to_string() } else { max_text(version, v) };
    match wanted.max {
        Some(v) => write_file(&dir.join("pids.max"), &text(v)),
        None => Ok(()),
    }
}

fn usage(dir: &Path) -> io::Result<PidsUsage> {
    Ok(PidsUsage {
        current: read_u64(&dir.join("pids.current"))?,
        peak: optional(&dir.join("pids.peak"), read_u64)?,
        hits: limit_hits(dir)?,
    })
}

/// Forks refused by the limit on `dir`. The kernel counts a refusal in the
/// cgroup of the process that forked (the guest's payload or deeper), not
/// where the limit sits, except cgroup2 from 6.12 on, whose `pids.events`
/// is hierarchical (and which then also has `pids.events.local`).
fn limit_hits(dir: &Path) -> io::Result<u64> {
    if dir.join("pids.events.local").exists() {
        return read_keyed(&dir.join("pids.events"), "max");
    }
    let mut total = read_keyed(&dir.join("pids.events"), "max")?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            total += limit_hits(&entry.path())?;
        }
    }
    Ok(total)
}

impl Controller for V1 {
    type Settings = PidsLimits;
    type Usage = PidsUsage;
    fn read(&self, dir: &Path) -> io::Result<PidsLimits> {
        read(dir)
    }
    fn write(&self, dir: &Path, wanted: &PidsLimits) -> io::Result<()> {
        write(Version::V1, dir, wanted)
    }
    fn usage(&self, dir: &Path) -> io::Result<PidsUsage> {
        usage(dir)
    }
}

impl Controller for V2 {
    type Settings = PidsLimits;
    type Usage = PidsUsage;
    fn read(&self, dir: &Path) -> io::Result<PidsLimits> {
        read(dir)
    }
    fn write(&self, dir: &Path, wanted: &PidsLimits) -> io::Result<()> {
        write(Version::V2, dir, wanted)
    }
    fn usage(&self, dir: &Path) -> io::Result<PidsUsage> {
        usage(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fixture, read as read_back};

    #[test]
    fn both_versions_use_pids_max() {
        for version in [Version::V1, Version::V2] {
            let dir = fixture(&[("pids.max", "max\n"), ("pids.current", "3\n"), ("pids.events", "max 2\n")]);
            let b = backend(version);
            assert_eq!(b.read(&dir).unwrap(), PidsLimits { max: Some(None) });
            b.write(&dir, &PidsLimits { max: Some(Some(20)) }).unwrap();
            assert_eq!(read_back(&dir, "pids.max"), "20");
            assert_eq!(b.read(&dir).unwrap(), PidsLimits { max: Some(Some(20)) });
            b.write(&dir, &PidsLimits { max: Some(None) }).unwrap();
            assert_eq!(read_back(&dir, "pids.max"), "max");
            assert_eq!(b.usage(&dir).unwrap(), PidsUsage { current: 3, peak: None, hits: 2 });
            std::fs::write(dir.join("pids.peak"), "19\n").unwrap();
            assert_eq!(b.usage(&dir).unwrap().peak, Some(19));
        }
    }
}
