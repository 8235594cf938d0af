//! `cgroup/`: files util-vserver wrote into the guest's cgroup when it
//! made it (`cat cgroup/FILE > <cgroup>/FILE`). The guest's own directory
//! is used, or else `.defaults/cgroup/` (unless the guest has `nocgroup`);
//! the names that describe util-vserver's mount layout are skipped.
//! Translation between v1 and v2 names and the writes are `limits`'.

use std::fs;
use std::path::{Path, PathBuf};

use super::parse::{meaningful_lines, read_optional, read_single, ConfigError};

/// Files of `cgroup/` that are not cgroup control files.
const LAYOUT_FILES: &[&str] = &["mnt", "subsys", "inherit", "name", "base", "per-ss"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSetting {
    /// The configuration file, for messages.
    pub file: PathBuf,
    /// The control file name as written (`memory.limit_in_bytes`).
    pub name: String,
    /// One value per meaningful line, written one at a time (files such as
    /// `blkio.throttle.read_bps_device` take one rule per write).
    pub values: Vec<String>,
}

/// Reads the guest's `cgroup/` or, failing that, `.defaults/cgroup/`.
pub fn parse_cgroup_dir(
    guest_dir: &Path,
    defaults_dir: &Path,
    guest_name: &str,
    refused: &mut Vec<ConfigError>,
) -> Result<Vec<CgroupSetting>, ConfigError> {
    let own = guest_dir.join("cgroup");
    let dir = if own.is_dir() {
        own
    } else if !guest_dir.join("nocgroup").exists() && defaults_dir.join("cgroup").is_dir() {
        defaults_dir.join("cgroup")
    } else {
        return Ok(Vec::new());
    };
    if let Some(name) = read_single(&dir.join("name"))? {
        if name.text != guest_name {
            refused.push(ConfigError::bad_value(
                &dir.join("name"),
                name.number,
                &name.text,
                format!("would put the guest into a cgroup of that name, shared with other guests; here every guest has its own (vserver/{guest_name})"),
            ));
        }
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| ConfigError::new(&dir, 0, format!("cannot read: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if LAYOUT_FILES.contains(&name.as_str()) || name.ends_with('~') || name.starts_with('.') || name == "README" {
            continue;
        }
        if !name.contains('.') || name.contains('/') {
            return Err(ConfigError::new(&file, 0, "is not a cgroup control file name (CONTROLLER.FILE, like memory.limit_in_bytes)"));
        }
        let text = read_optional(&file)?.unwrap_or_default();
        let values: Vec<String> = meaningful_lines(&text).into_iter().map(|l| l.text).collect();
        if values.is_empty() {
            return Err(ConfigError::new(&file, 0, "is empty; remove the file or give it a value"));
        }
        out.push(CgroupSetting { file, name, values });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    #[test]
    fn own_directory_else_defaults_unless_nocgroup() {
        let g = tempdir();
        let d = tempdir();
        fs::create_dir_all(d.join("cgroup")).unwrap();
        fs::write(d.join("cgroup/mnt"), "/dev/cgroup\n").unwrap();
        fs::write(d.join("cgroup/cpu.shares"), "512\n").unwrap();
        let mut refused = Vec::new();
        let s = parse_cgroup_dir(&g, &d, "web1", &mut refused).unwrap();
        assert_eq!(s, vec![CgroupSetting { file: d.join("cgroup/cpu.shares"), name: "cpu.shares".into(), values: vec!["512".into()] }]);
        fs::write(g.join("nocgroup"), "").unwrap();
        assert!(parse_cgroup_dir(&g, &d, "web1", &mut refused).unwrap().is_empty());
        fs::create_dir_all(g.join("cgroup")).unwrap();
        fs::write(g.join("cgroup/memory.limit_in_bytes"), "64M\n").unwrap();
        fs::write(g.join("cgroup/name"), "shared\n").unwrap();
        let s = parse_cgroup_dir(&g, &d, "web1", &mut refused).unwrap();
        assert_eq!(s[0].name, "memory.limit_in_bytes");
        assert_eq!(refused.len(), 1);
        assert!(refused[0].to_string().contains("shared with other guests"));
    }
}
