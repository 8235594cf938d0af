//! The memory controller: `rss` of a context. Hard limit → `memory.max` /
//! `memory.limit_in_bytes` (the OOM killer acts inside the guest), soft →
//! `memory.high` / `memory.soft_limit_in_bytes`, minimum → `memory.low`
//! (v2 only: v1 has no memory guarantee).

use std::io;
use std::path::Path;

use super::controller::{invalid, keyed_value, max_text, optional, read_keyed, read_max, read_u64, Controller, Max, Version};
use crate::cgroup::{read_file, write_file};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryLimits {
    pub max: Option<Max>,
    pub high: Option<Max>,
    pub low: Option<Max>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    pub current: u64,
    /// Highest usage seen (`memory.peak` needs kernel 5.19 on v2).
    pub peak: Option<u64>,
    /// Times an allocation hit the hard limit (`memory.events` max, `memory.failcnt`).
    pub hits: u64,
    pub oom_kills: Option<u64>,
}

pub struct V1;
pub struct V2;

pub fn backend(version: Version) -> &'static dyn Controller<Settings = MemoryLimits, Usage = MemoryUsage> {
    match version {
        Version::V1 => &V1,
        Version::V2 => &V2,
    }
}

/// Pages resident in RAM, as util-vserver's vserver-stat counts them
/// (anonymous plus mapped file pages), in bytes.
pub fn resident_bytes(version: Version, dir: &Path) -> io::Result<u64> {
    let file = dir.join("memory.stat");
    let text = read_file(&file)?;
    let (anon, mapped) = match version {
        Version::V1 => ("rss", "mapped_file"),
        Version::V2 => ("anon", "file_mapped"),
    };
    let a = keyed_value(&text, anon).ok_or_else(|| invalid(&file, format!("has no {anon:?} line")))?;
    Ok(a + keyed_value(&text, mapped).unwrap_or(0))
}

fn write_max(version: Version, file: &Path, value: Option<Max>) -> io::Result<()> {
    match value {
        Some(v) => write_file(file, &max_text(version, v)),
        None => Ok(()),
    }
}

impl Controller for V1 {
    type Settings = MemoryLimits;
    type Usage = MemoryUsage;

    fn read(&self, dir: &Path) -> io::Result<MemoryLimits> {
        Ok(MemoryLimits {
            max: Some(read_max(&dir.join("memory.limit_in_bytes"))?),
            high: Some(read_max(&dir.join("memory.soft_limit_in_bytes"))?),
            low: None,
        })
    }

    fn write(&self, dir: &Path, wanted: &MemoryLimits) -> io::Result<()> {
        if wanted.low.is_some_and(|l| l.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}: a minimum (guaranteed) rss needs cgroup v2's memory.low; cgroup v1 has no equivalent", dir.display()),
            ));
        }
        write_max(Version::V1, &dir.join("memory.limit_in_bytes"), wanted.max)?;
        write_max(Version::V1, &dir.join("memory.soft_limit_in_bytes"), wanted.high)
    }

    fn usage(&self, dir: &Path) -> io::Result<MemoryUsage> {
        let oom = optional(&dir.join("memory.oom_control"), |p| Ok(keyed_value(&read_file(p)?, "oom_kill")))?;
        Ok(MemoryUsage {
            current: read_u64(&dir.join("memory.usage_in_bytes"))?,
            peak: Some(read_u64(&dir.join("memory.max_usage_in_bytes"))?),
            hits: read_u64(&dir.join("memory.failcnt"))?,
            oom_kills: oom.flatten(),
        })
    }
}

impl Controller for V2 {
    type Settings = MemoryLimits;
    type Usage = MemoryUsage;

    fn read(&self, dir: &Path) -> io::Result<MemoryLimits> {
        Ok(MemoryLimits {
            max: Some(read_max(&dir.join("memory.max"))?),
            high: Some(read_max(&dir.join("memory.high"))?),
            low: Some(read_max(&dir.join("memory.low"))?),
        })
    }

    fn write(&self, dir: &Path, wanted: &MemoryLimits) -> io::Result<()> {
        write_max(Version::V2, &dir.join("memory.max"), wanted.max)?;
        write_max(Version::V2, &dir.join("memory.high"), wanted.high)?;
        write_max(Version::V2, &dir.join("memory.low"), wanted.low)
    }

    fn usage(&self, dir: &Path) -> io::Result<MemoryUsage> {
        let events = dir.join("memory.events");
        Ok(MemoryUsage {
            current: read_u64(&dir.join("memory.current"))?,
            peak: optional(&dir.join("memory.peak"), read_u64)?,
            hits: read_keyed(&events, "max")?,
            oom_kills: Some(read_keyed(&events, "oom_kill")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::testutil::{fixture, read};

    #[test]
    fn v1_files() {
        let dir = fixture(&[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "134217728\n"),
            ("memory.failcnt", "12\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
            ("memory.stat", "cache 0\nrss 8192\nrss_huge 0\nmapped_file 4096\n"),
        ]);
        assert_eq!(V1.read(&dir).unwrap(), MemoryLimits { max: Some(None), high: Some(None), low: None });
        V1.write(&dir, &MemoryLimits { max: Some(Some(64 << 20)), high: None, low: None }).unwrap();
        assert_eq!(read(&dir, "memory.limit_in_bytes"), "67108864");
        assert_eq!(read(&dir, "memory.soft_limit_in_bytes"), "9223372036854771712\n");
        V1.write(&dir, &MemoryLimits { max: Some(None), high: Some(Some(1 << 20)), low: Some(None) }).unwrap();
        assert_eq!(read(&dir, "memory.limit_in_bytes"), "-1");
        assert_eq!(read(&dir, "memory.soft_limit_in_bytes"), "1048576");
        let e = V1.write(&dir, &MemoryLimits { low: Some(Some(1)), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("memory.low"), "{e}");
        let u = V1.usage(&dir).unwrap();
        assert_eq!(u, MemoryUsage { current: 4096, peak: Some(128 << 20), hits: 12, oom_kills: Some(1) });
        assert_eq!(resident_bytes(Version::V1, &dir).unwrap(), 12288);
    }

    #[test]
    fn v2_files() {
        let dir = fixture(&[
            ("memory.max", "max\n"),
            ("memory.high", "max\n"),
            ("memory.low", "0\n"),
            ("memory.current", "8192\n"),
            ("memory.events", "low 0\nhigh 3\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("memory.stat", "anon 4096\nfile 100\nkernel 5\nfile_mapped 4096\n"),
        ]);
        assert_eq!(V2.read(&dir).unwrap(), MemoryLimits { max: Some(None), high: Some(None), low: Some(Some(0)) });
        let want = MemoryLimits { max: Some(Some(64 << 20)), high: Some(Some(48 << 20)), low: Some(None) };
        V2.write(&dir, &want).unwrap();
        assert_eq!(read(&dir, "memory.max"), "67108864");
        assert_eq!(read(&dir, "memory.high"), "50331648");
        assert_eq!(read(&dir, "memory.low"), "max");
        // No memory.peak on kernels before 5.19: reported as unknown, not as 0.
        assert_eq!(V2.usage(&dir).unwrap(), MemoryUsage { current: 8192, peak: None, hits: 5, oom_kills: Some(1) });
        std::fs::write(dir.join("memory.peak"), "65536\n").unwrap();
        assert_eq!(V2.usage(&dir).unwrap().peak, Some(65536));
        assert_eq!(resident_bytes(Version::V2, &dir).unwrap(), 8192);
    }

    #[test]
    fn broken_files_name_the_file() {
        let dir = fixture(&[("memory.max", "lots\n")]);
        let e = V2.read(&dir).unwrap_err().to_string();
        assert!(e.contains("memory.max") && e.contains("lots"), "{e}");
        let e = V2.usage(&dir).unwrap_err().to_string();
        assert!(e.contains("memory.current"), "{e}");
    }
}
