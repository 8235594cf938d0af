//! Reading util-vserver style configuration files: one value per file, or one
//! entry per line, `#` comments and blank lines allowed. Every failure is a
//! typed [`ConfigError`] naming the file, the line and the value, so tests can
//! assert on it and users see exactly what to fix.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A configuration error: which file, which line (1-based, 0 when the whole
/// file is meant), which value, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}", .file.display(), line_suffix(*.line), .message)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

impl ConfigError {
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Self {
        ConfigError { file: file.to_path_buf(), line, message: message.into() }
    }

    pub fn bad_value(file: &Path, line: usize, value: &str, why: impl std::fmt::Display) -> Self {
        Self::new(file, line, format!("{value:?} {why}"))
    }

    fn io(file: &Path, err: io::Error) -> Self {
        Self::new(file, 0, format!("cannot read: {err}"))
    }
}

/// One meaningful line of a config file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// Reads a file as its meaningful lines (trimmed, without comments and blank
/// lines). A missing file is `Ok(None)`: absence means "use the default".
pub fn read_lines(file: &Path) -> Result<Option<Vec<Line>>, ConfigError> {
    let Some(content) = read_optional(file)? else { return Ok(None) };
    Ok(Some(meaningful_lines(&content)))
}

pub fn meaningful_lines(content: &str) -> Vec<Line> {
    content
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let text = raw.trim();
            (!text.is_empty() && !text.starts_with('#')).then(|| Line { number: i + 1, text: text.to_string() })
        })
        .collect()
}

/// Reads a file that holds a single value (the first meaningful line). More
/// than one value is an error, never silently truncated.
pub fn read_single(file: &Path) -> Result<Option<Line>, ConfigError> {
    let Some(mut lines) = read_lines(file)? else { return Ok(None) };
    match lines.len() {
        0 => Err(ConfigError::new(file, 0, "is empty; remove the file or give it a value")),
        1 => Ok(lines.pop()),
        _ => Err(ConfigError::bad_value(file, lines[1].number, &lines[1].text, "is a second value; this file holds exactly one")),
    }
}

/// Reads a whole file; `Ok(None)` when it does not exist.
pub fn read_optional(file: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::io(file, e)),
    }
}

/// util-vserver lets a directory be named either by a symlink or by a file
/// whose content is the path (`vdir`, `vdirbase`, `apps/vunify/hash`).
pub fn read_path_entry(entry: &Path) -> Result<Option<PathBuf>, ConfigError> {
    match fs::symlink_metadata(entry) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::io(entry, e)),
        Ok(meta) if meta.file_type().is_symlink() => fs::read_link(entry).map(Some).map_err(|e| ConfigError::io(entry, e)),
        Ok(meta) if meta.is_dir() => Ok(Some(entry.to_path_buf())),
        Ok(_) => {
            let line = read_single(entry)?.expect("file exists");
            let path = PathBuf::from(&line.text);
            if !path.is_absolute() {
                return Err(ConfigError::bad_value(entry, line.number, &line.text, "is not an absolute path"));
            }
            Ok(Some(path))
        }
    }
}

/// Parses a single value with `parse`, turning its error into a ConfigError.
pub fn parse_single<T, E: std::fmt::Display>(file: &Path, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<Option<T>, ConfigError> {
    let Some(line) = read_single(file)? else { return Ok(None) };
    parse(&line.text).map(Some).map_err(|e| ConfigError::bad_value(file, line.number, &line.text, e))
}

/// A name list with util-vserver's edit syntax: `NAME` adds, `~NAME` or
/// `!NAME` removes from the default. Returns (name, add?) per line, with the
/// line for error reporting.
pub fn name_edits(lines: &[Line]) -> Vec<(&Line, &str, bool)> {
    lines
        .iter()
        .map(|l| match l.text.strip_prefix(['~', '!']) {
            Some(rest) => (l, rest.trim(), false),
            None => (l, l.text.as_str(), true),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_numbers_kept() {
        let lines = meaningful_lines("# c\n\n  CHOWN \n#x\nKILL\n");
        assert_eq!(lines, vec![Line { number: 3, text: "CHOWN".into() }, Line { number: 5, text: "KILL".into() },]);
    }

    #[test]
    fn single_value_files_reject_a_second_value() {
        let dir = tempdir();
        let f = dir.join("context");
        fs::write(&f, "42\n43\n").unwrap();
        let err = read_single(&f).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("\"43\""), "{err}");
    }

    #[test]
    fn edits_understand_tilde_and_bang() {
        let lines = meaningful_lines("A\n~B\n!C\n");
        let e: Vec<_> = name_edits(&lines).into_iter().map(|(_, n, add)| (n, add)).collect();
        assert_eq!(e, vec![("A", true), ("B", false), ("C", false)]);
    }

    #[test]
    fn path_entries_are_symlinks_or_files() {
        let dir = tempdir();
        std::os::unix::fs::symlink("/srv/guests", dir.join("l")).unwrap();
        fs::write(dir.join("f"), "/srv/other\n").unwrap();
        fs::write(dir.join("rel"), "relative\n").unwrap();
        assert_eq!(read_path_entry(&dir.join("l")).unwrap(), Some("/srv/guests".into()));
        assert_eq!(read_path_entry(&dir.join("f")).unwrap(), Some("/srv/other".into()));
        assert_eq!(read_path_entry(&dir.join("none")).unwrap(), None);
        assert!(read_path_entry(&dir.join("rel")).is_err());
    }

    /// A fresh directory for one unit test. They all live under one
    /// directory per test process, removed when the process exits (also
    /// after failed tests: the harness exits normally), since fixture
    /// helpers hand out plain paths.
    pub(crate) fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = parent().join(N.fetch_add(1, Ordering::Relaxed).to_string());
        fs::create_dir_all(&d).unwrap();
        d
    }

    static PARENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

    fn parent() -> &'static PathBuf {
        PARENT.get_or_init(|| {
            let p = std::env::temp_dir().join(format!("vserver-core-tests-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            crate::sys::process::at_exit(remove_parent).expect("atexit");
            p
        })
    }

    extern "C" fn remove_parent() {
        if let Some(p) = PARENT.get() {
            let _ = fs::remove_dir_all(p);
        }
    }
}
