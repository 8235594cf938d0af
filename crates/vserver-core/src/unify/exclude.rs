//! Which guest paths vhashify leaves alone. util-vserver's exclude lists: one
//! path per line, relative to the guest root (a leading `/` is optional),
//! excluding the path and everything below it; `+PATH` includes it again. The
//! most specific (longest) matching rule decides; on a tie the later one wins.
//! Rules come from the built-in default, `.defaults/apps/vunify/exclude`, the
//! guest's `apps/vunify/exclude` and `--exclude-from`, in that order.

use std::path::Path;

use crate::config::parse::{read_lines, ConfigError};

/// Directories whose content is per guest, changes all the time, or is not a
/// real file tree: never worth sharing.
pub const DEFAULT_EXCLUDES: &[&str] =
    &["/etc", "/var", "/tmp", "/dev", "/proc", "/sys", "/run", "/home", "/root", "/boot", "/lost+found", "/mnt", "/media", "/srv"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Normalised: no leading or trailing slash; "" is the whole guest.
    path: String,
    include: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeList {
    rules: Vec<Rule>,
}

impl ExcludeList {
    pub fn builtin() -> Self {
        let mut list = ExcludeList::default();
        for p in DEFAULT_EXCLUDES {
            list.push(p);
        }
        list
    }

    /// Adds one rule in exclude-file syntax (`PATH` or `+PATH`).
    pub fn push(&mut self, text: &str) {
        let (include, path) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('-').unwrap_or(text)),
        };
        self.rules.push(Rule { path: normalise(path), include });
    }

    /// Appends the rules of an exclude file; a missing file adds nothing.
    pub fn add_file(&mut self, file: &Path) -> Result<(), ConfigError> {
        for line in read_lines(file)?.unwrap_or_default() {
            if line.text.contains('\0') {
                return Err(ConfigError::bad_value(file, line.number, &line.text, "contains a NUL byte"));
            }
            self.push(&line.text);
        }
        Ok(())
    }

    /// Whether the file or directory at `rel` (relative to the guest root,
    /// without a leading slash) is excluded.
    pub fn is_excluded(&self, rel: &[u8]) -> bool {
        self.deciding_rule(rel).is_some_and(|r| !r.include)
    }

    /// Whether the walk must enter directory `rel`: it is not excluded, or
    /// some `+PATH` rule re-includes something below it.
    pub fn must_enter(&self, rel: &[u8]) -> bool {
        !self.is_excluded(rel) || self.rules.iter().any(|r| r.include && is_below(r.path.as_bytes(), rel))
    }

    fn deciding_rule(&self, rel: &[u8]) -> Option<&Rule> {
        let mut best: Option<&Rule> = None;
        for rule in self.rules.iter().filter(|r| covers(r.path.as_bytes(), rel)) {
            let better = match best {
                None => true,
                Some(b) => rule.path.len() >= b.path.len(),
            };
            if better {
                best = Some(rule);
            }
        }
        best
    }
}

fn normalise(path: &str) -> String {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

/// `rule` is `rel` itself or one of its ancestors.
fn covers(rule: &[u8], rel: &[u8]) -> bool {
    rule.is_empty() || rel == rule || (rel.starts_with(rule) && rel[rule.len()] == b'/')
}

/// `path` lies strictly below directory `dir`.
fn is_below(path: &[u8], dir: &[u8]) -> bool {
    path != dir && covers(dir, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_excludes_etc_but_not_usr() {
        let l = ExcludeList::builtin();
        assert!(l.is_excluded(b"etc"));
        assert!(l.is_excluded(b"etc/passwd"));
        assert!(!l.is_excluded(b"etcetera/x"));
        assert!(!l.is_excluded(b"usr/bin/ls"));
    }

    #[test]
    fn plus_reincludes_and_longest_rule_wins() {
        let mut l = ExcludeList::builtin();
        l.push("+/etc/alternatives");
        l.push("/etc/alternatives/private");
        assert!(l.is_excluded(b"etc/passwd"));
        assert!(!l.is_excluded(b"etc/alternatives/vi"));
        assert!(l.is_excluded(b"etc/alternatives/private/x"));
        assert!(l.must_enter(b"etc"));
        assert!(!l.must_enter(b"var"));
    }

    #[test]
    fn later_rule_wins_a_tie_and_slashes_do_not_matter() {
        let mut l = ExcludeList::default();
        l.push("usr/share/doc/");
        assert!(l.is_excluded(b"usr/share/doc/a"));
        l.push("+/usr//share/doc");
        assert!(!l.is_excluded(b"usr/share/doc/a"));
    }
}
