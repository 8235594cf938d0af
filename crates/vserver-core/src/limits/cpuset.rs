//! The cpuset controller: `cpuset/cpus` and `cpuset/mems` → `cpuset.cpus`,
//! `cpuset.mems`. Same names in v1 and v2; v1 needs both set before the
//! cgroup takes a process (the cgroup module copies the parent's), v2 treats
//! an empty value as "inherit".

use std::io;
use std::path::Path;

use super::controller::{Controller, Version};
use crate::cgroup::{read_file, write_file};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpusetLimits {
    pub cpus: Option<String>,
    pub mems: Option<String>,
}

pub struct V1;
pub struct V2;

pub fn backend(version: Version) -> &'static dyn Controller<Settings = CpusetLimits, Usage = ()> {
    match version {
        Version::V1 => &V1,
        Version::V2 => &V2,
    }
}

fn read(dir: &Path) -> io::Result<CpusetLimits> {
    let get = |f: &str| read_file(&dir.join(f)).map(|s| Some(s.trim().to_string()));
    Ok(CpusetLimits { cpus: get("cpuset.cpus")?, mems: get("cpuset.mems")? })
}

fn write(dir: &Path, wanted: &CpusetLimits) -> io::Result<()> {
    for (file, value) in [("cpuset.cpus", &wanted.cpus), ("cpuset.mems", &wanted.mems)] {
        if let Some(v) = value {
            write_file(&dir.join(file), v)?;
        }
    }
    Ok(())
}

impl Controller for V1 {
    type Settings = CpusetLimits;
    type Usage = ();
    fn read(&self, dir: &Path) -> io::Result<CpusetLimits> {
        read(dir)
    }
    fn write(&self, dir: &Path, wanted: &CpusetLimits) -> io::Result<()> {
        // An empty list would orphan the v1 cgroup's processes; the kernel refuses it, say why.
        if wanted.cpus.as_deref() == Some("") || wanted.mems.as_deref() == Some("") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: a cgroup v1 cpuset needs at least one CPU and one memory node", dir.display()),
            ));
        }
        write(dir, wanted)
    }
    fn usage(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl Controller for V2 {
    type Settings = CpusetLimits;
    type Usage = ();
    fn read(&self, dir: &Path) -> io::Result<CpusetLimits> {
        read(dir)
    }
    fn write(&self, dir: &Path, wanted: &CpusetLimits) -> io::Result<()> {
        write(dir, wanted)
    }
    fn usage(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fixture, read as read_back};

    #[test]
    fn cpus_and_mems() {
        for version in [Version::V1, Version::V2] {
            let dir = fixture(&[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
            let b = backend(version);
            let old = b.read(&dir).unwrap();
            assert_eq!(old, CpusetLimits { cpus: Some("0-1".into()), mems: Some("0".into()) });
            b.write(&dir, &CpusetLimits { cpus: Some("1".into()), mems: None }).unwrap();
            assert_eq!(read_back(&dir, "cpuset.cpus"), "1");
            assert_eq!(read_back(&dir, "cpuset.mems"), "0\n");
            b.write(&dir, &old).unwrap();
            assert_eq!(read_back(&dir, "cpuset.cpus"), "0-1");
        }
        let dir = fixture(&[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")]);
        assert!(V1.write(&dir, &CpusetLimits { cpus: Some(String::new()), mems: None }).is_err());
        V2.write(&dir, &CpusetLimits { cpus: Some(String::new()), mems: None }).unwrap();
    }
}
