//! `vlimit --save`: writing a change to `<confdir>/NAME/rlimits/` so that it
//! also holds at the next start. Each file is replaced atomically (temporary
//! file, fsync, rename). A plain `rlimits/<res>` (soft and hard in one) is
//! split into `.soft` and `.hard` first, so the part not being changed keeps
//! its value and the files never disagree.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::rlimit::{LimitValue, Resource};
use super::LimitError;
use crate::paths::Paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Soft,
    Hard,
    Min,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Soft => ".soft",
            Kind::Hard => ".hard",
            Kind::Min => ".min",
        }
    }
}

/// One value as the admin wrote it (`64M` stays `64M`: for rss a plain
/// number means pages, so the text is kept rather than re-rendered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedValue {
    pub resource: Resource,
    pub kind: Kind,
    pub text: String,
}

/// Writes the values; returns the files written.
pub fn save(paths: &Paths, name: &str, values: &[SavedValue]) -> Result<Vec<PathBuf>, LimitError> {
    let confdir = paths.guest_confdir(name);
    if !confdir.is_dir() {
        return Err(LimitError::NoGuestConfig { name: name.to_string(), confdir });
    }
    let dir = confdir.join("rlimits");
    fs::create_dir_all(&dir).map_err(|err| LimitError::CreatingDir { dir: dir.clone(), err })?;
    for v in values {
        LimitValue::parse(&v.text).map_err(|why| LimitError::BadValue { resource: v.resource, text: v.text.clone(), why })?;
    }
    let mut written = Vec::new();
    for res in resources(values) {
        let plain = dir.join(res.name());
        let kept = read_plain(&plain)?;
        let mut files: Vec<(Kind, String)> = values.iter().filter(|v| v.resource == res).map(|v| (v.kind, v.text.clone())).collect();
        if let Some(old) = kept {
            for kind in [Kind::Soft, Kind::Hard] {
                if !files.iter().any(|(k, _)| *k == kind) && !dir.join(format!("{res}{}", kind.suffix())).exists() {
                    files.push((kind, old.clone()));
                }
            }
        }
        for (kind, text) in files {
            let file = dir.join(format!("{res}{}", kind.suffix()));
            write_atomically(&file, &format!("{text}\n")).map_err(|err| LimitError::Writing { file: file.clone(), err })?;
            written.push(file);
        }
        if plain.exists() {
            fs::remove_file(&plain).map_err(|err| LimitError::RemovingSplit { file: plain.clone(), err })?;
        }
    }
    Ok(written)
}

fn resources(values: &[SavedValue]) -> Vec<Resource> {
    let mut out: Vec<Resource> = values.iter().map(|v| v.resource).collect();
    out.sort();
    out.dedup();
    out
}

fn read_plain(file: &Path) -> Result<Option<String>, LimitError> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(LimitError::Reading { path: file.to_path_buf(), err }),
    }
}

fn write_atomically(file: &Path, content: &str) -> io::Result<()> {
    let dir = file.parent().expect("file in a directory");
    let tmp = dir.join(format!(".{}.tmp{}", file.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, file)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;

    fn paths() -> Paths {
        let root = tempdir();
        fs::create_dir_all(root.join("g1")).unwrap();
        fs::write(root.join("g1/context"), "42\n").unwrap();
        Paths { confdir: root.clone(), vdirbase: root.join("v"), rundir: root.join("r"), cgroup_root: root.join("c") }
    }

    fn v(resource: Resource, kind: Kind, text: &str) -> SavedValue {
        SavedValue { resource, kind, text: text.into() }
    }

    #[test]
    fn writes_hard_and_soft_files_that_load_back() {
        let p = paths();
        save(&p, "g1", &[v(Resource::Rss, Kind::Hard, "64M"), v(Resource::Nofile, Kind::Soft, "100")]).unwrap();
        let dir = p.confdir.join("g1/rlimits");
        assert_eq!(fs::read_to_string(dir.join("rss.hard")).unwrap(), "64M\n");
        assert_eq!(fs::read_to_string(dir.join("nofile.soft")).unwrap(), "100\n");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
        let g = crate::config::load_guest(&p, "g1").unwrap();
        let rss = g.rlimits.iter().find(|s| s.resource == Resource::Rss).unwrap();
        assert_eq!(rss.hard, Some(LimitValue::Scaled(64 << 20)));
    }

    #[test]
    fn a_plain_file_is_split_so_the_other_half_keeps_its_value() {
        let p = paths();
        let dir = p.confdir.join("g1/rlimits");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("nofile"), "1000\n").unwrap();
        save(&p, "g1", &[v(Resource::Nofile, Kind::Soft, "500")]).unwrap();
        assert!(!dir.join("nofile").exists());
        assert_eq!(fs::read_to_string(dir.join("nofile.soft")).unwrap(), "500\n");
        assert_eq!(fs::read_to_string(dir.join("nofile.hard")).unwrap(), "1000\n");
        let g = crate::config::load_guest(&p, "g1").unwrap();
        let s = g.rlimits.iter().find(|s| s.resource == Resource::Nofile).unwrap();
        assert_eq!((s.soft, s.hard), (Some(LimitValue::Plain(500)), Some(LimitValue::Plain(1000))));
    }

    #[test]
    fn bad_values_and_unknown_guests_write_nothing() {
        let p = paths();
        assert!(save(&p, "g1", &[v(Resource::Rss, Kind::Hard, "1kX")]).is_err());
        assert!(!p.confdir.join("g1/rlimits/rss.hard").exists());
        assert!(save(&p, "nope", &[v(Resource::Rss, Kind::Hard, "1")]).unwrap_err().to_string().contains("no such guest"));
    }
}
