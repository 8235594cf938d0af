//! `dlimits/N/{directory,space_total,inodes_total,reserved}`: util-vserver's
//! per-guest disk limits, one directory per limit (N is any name), all four
//! files required, `dlimits/N/disabled` switching one off. util-vserver
//! skipped an entry with a missing file without a word; here that is an
//! error naming the file.
//!
//! `directory` names the filesystem the limit is on (util-vserver gave the
//! mount point); `space_total` is in blocks of 1024 bytes, `inodes_total` a
//! count, `reserved` a percentage. `-1` in either total means no limit.

use std::path::{Path, PathBuf};

use super::parse::{parse_single, read_path_entry, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLimit {
    /// `dlimits/N`, for messages.
    pub entry: PathBuf,
    /// A path on the filesystem the limit applies to.
    pub directory: PathBuf,
    /// KiB (1024-byte blocks); `None` is no limit.
    pub space_total_kib: Option<u64>,
    pub inodes_total: Option<u64>,
    /// Percent of `space_total` util-vserver kept for root; see `dlimit`.
    pub reserved_percent: u8,
}

/// The guest's enabled limits, sorted by entry name; none without `dlimits/`.
pub fn load(guest_confdir: &Path) -> Result<Vec<DiskLimit>, ConfigError> {
    let dir = guest_confdir.join("dlimits");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::new(&dir, 0, format!("cannot read: {e}"))),
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    paths.sort();
    paths.into_iter().filter(|p| !p.join("disabled").exists()).map(|p| load_entry(&p)).collect()
}

fn load_entry(entry: &Path) -> Result<DiskLimit, ConfigError> {
    let required = |name: &str| -> Result<PathBuf, ConfigError> {
        let file = entry.join(name);
        if file.symlink_metadata().is_err() {
            return Err(ConfigError::new(
                &file,
                0,
                "is missing; a disk limit needs directory, space_total, inodes_total and reserved \
                 (or a `disabled` file to switch it off)",
            ));
        }
        Ok(file)
    };
    let dir_file = required("directory")?;
    let directory = read_path_entry(&dir_file)?.expect("exists");
    if !directory.is_absolute() {
        return Err(ConfigError::bad_value(&dir_file, 1, &directory.display().to_string(), "is not an absolute path"));
    }
    let space = required("space_total")?;
    let inodes = required("inodes_total")?;
    let reserved = required("reserved")?;
    Ok(DiskLimit {
        entry: entry.to_path_buf(),
        directory,
        space_total_kib: parse_single(&space, parse_total)?.expect("exists"),
        inodes_total: parse_single(&inodes, parse_total)?.expect("exists"),
        reserved_percent: parse_single(&reserved, parse_percent)?.expect("exists"),
    })
}

/// A count, or `-1` for none (util-vserver's VC_CDLIM_INFINITY).
pub fn parse_total(s: &str) -> Result<Option<u64>, String> {
    if s == "-1" {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(0) => Err("is 0: nothing could be written; use -1 for no limit".into()),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err("is not a number (1024-byte blocks or inodes; -1 for no limit)".into()),
    }
}

pub fn parse_percent(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(n) if n < 100 => Ok(n),
        _ => Err("is not a percentage (0-99)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vs-dlimits-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn entries_parse_and_disabled_ones_are_skipped() {
        let d = scratch("ok");
        write(&d, "dlimits/0/directory", "/vservers/web1\n");
        write(&d, "dlimits/0/space_total", "1048576\n");
        write(&d, "dlimits/0/inodes_total", "-1\n");
        write(&d, "dlimits/0/reserved", "5\n");
        write(&d, "dlimits/1/disabled", "");
        let limits = load(&d).unwrap();
        assert_eq!(
            limits,
            [DiskLimit {
                entry: d.join("dlimits/0"),
                directory: "/vservers/web1".into(),
                space_total_kib: Some(1 << 20),
                inodes_total: None,
                reserved_percent: 5,
            }]
        );
        assert_eq!(load(&d.join("none")).unwrap(), []);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_file_or_bad_value_names_the_file() {
        let d = scratch("bad");
        write(&d, "dlimits/x/directory", "/vservers\n");
        write(&d, "dlimits/x/space_total", "100\n");
        let e = load(&d).unwrap_err();
        assert_eq!(e.file, d.join("dlimits/x/inodes_total"));
        write(&d, "dlimits/x/inodes_total", "lots\n");
        write(&d, "dlimits/x/reserved", "5\n");
        let e = load(&d).unwrap_err();
        assert!(e.to_string().contains("inodes_total:1: \"lots\" is not a number"), "{e}");
        write(&d, "dlimits/x/inodes_total", "1000\n");
        write(&d, "dlimits/x/reserved", "100\n");
        assert!(load(&d).unwrap_err().to_string().contains("reserved:1"));
        write(&d, "dlimits/x/reserved", "0\n");
        write(&d, "dlimits/x/directory", "relative/dir\n");
        assert!(load(&d).unwrap_err().to_string().contains("not an absolute path"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
