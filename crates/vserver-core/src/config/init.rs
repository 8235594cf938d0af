//! The parts of `apps/init/` beyond the init style and its commands:
//! the init's environment, the stop kill sequence, marks and dependencies
//! for `--all-marked`, the stop runlevel, the output tty, util-vserver's
//! prepare and sync commands, and the initial `/etc/mtab`.

use std::path::{Path, PathBuf};

use super::parse::{read_lines, read_optional, ConfigError};

/// One step of `apps/init/killseq`: wait (since the previous signal; 0
/// for the first), then send the signal to every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillStep {
    pub wait_ms: u64,
    pub signal: i32,
}

/// `VAR=VALUE` lines of `apps/init/environment`.
pub fn parse_environment(file: &Path) -> Result<Option<Vec<(String, String)>>, ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok(None) };
    lines
        .iter()
        .map(|l| {
            let bad = |why: &str| ConfigError::bad_value(file, l.number, &l.text, why);
            let (name, value) = l.text.split_once('=').ok_or_else(|| bad("is not VAR=VALUE"))?;
            let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(bad("does not start with a variable name (letters, digits and _)"));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `apps/init/killseq`: `SIGNAL [WAIT SIGNAL]...`, on one line or one item
/// per line (util-vserver reads it one item per line); signals by number
/// or name.
pub fn parse_killseq(file: &Path) -> Result<Option<Vec<KillStep>>, ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok(None) };
    let items: Vec<(usize, &str)> = lines.iter().flat_map(|l| l.text.split_whitespace().map(move |w| (l.number, w))).collect();
    if items.is_empty() || items.len().is_multiple_of(2) {
        return Err(ConfigError::new(file, 0, "is not a kill sequence SIGNAL [WAIT SIGNAL]... (e.g. 15 5 9)"));
    }
    let mut steps = Vec::new();
    let mut wait = 0;
    for (i, (line, word)) in items.iter().enumerate() {
        if i % 2 == 1 {
            wait = word
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0 && *w <= 3600.0)
                .map(|w| (w * 1000.0).round() as u64)
                .ok_or_else(|| ConfigError::bad_value(file, *line, word, "is not a wait in seconds"))?;
        } else {
            let signal = parse_signal(word).ok_or_else(|| ConfigError::bad_value(file, *line, word, "is not a signal"))?;
            steps.push(KillStep { wait_ms: wait, signal });
        }
    }
    Ok(Some(steps))
}

/// A signal by number (1–64) or name (`TERM`, `SIGKILL`, `hup`).
pub fn parse_signal(word: &str) -> Option<i32> {
    if let Ok(n) = word.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = word.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "PWR" => libc::SIGPWR,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        _ => return None,
    })
}

/// `apps/init/depends`: guest names, one per line.
pub fn parse_depends(file: &Path) -> Result<Vec<String>, ConfigError> {
    let Some(lines) = read_lines(file)? else { return Ok(Vec::new()) };
    lines
        .into_iter()
        .map(|l| {
            crate::paths::validate_guest_name(&l.text).map_err(|e| ConfigError::new(file, l.number, e))?;
            Ok(l.text)
        })
        .collect()
}

/// `apps/init/mark`: one mark per line (util-vserver matches whole lines).
pub fn parse_marks(file: &Path) -> Result<Vec<String>, ConfigError> {
    Ok(read_lines(file)?.unwrap_or_default().into_iter().map(|l| l.text).collect())
}

/// An argument vector, one argument per line (`cmd.prepare`, `cmd.*-sync`).
pub fn parse_argv(file: &Path) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(text) = read_optional(file)? else { return Ok(None) };
    let argv: Vec<String> = text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.is_empty()).map(str::to_string).collect();
    if argv.is_empty() {
        return Err(ConfigError::new(file, 0, "is empty; remove the file or give it a command"));
    }
    Ok(Some(argv))
}

/// A path entry that may be a symlink (to a tty) or a plain file: the path
/// itself, if it exists.
pub fn existing(file: PathBuf) -> Option<PathBuf> {
    file.symlink_metadata().is_ok().then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::tests::tempdir;
    use std::fs;

    #[test]
    fn killseq_on_one_line_or_one_item_per_line() {
        let d = tempdir();
        let f = d.join("killseq");
        fs::write(&f, "15 5 9\n").unwrap();
        let one = parse_killseq(&f).unwrap().unwrap();
        fs::write(&f, "TERM\n0.5\nSIGKILL\n").unwrap();
        let per_line = parse_killseq(&f).unwrap().unwrap();
        assert_eq!(one, vec![KillStep { wait_ms: 0, signal: 15 }, KillStep { wait_ms: 5000, signal: 9 }]);
        assert_eq!(per_line[1], KillStep { wait_ms: 500, signal: 9 });
        for bad in ["15 5", "FLY", "15 x 9", ""] {
            fs::write(&f, bad).unwrap();
            assert!(parse_killseq(&f).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn environment_and_depends() {
        let d = tempdir();
        fs::write(d.join("environment"), "# comment\nLANG=C.UTF-8\nEMPTY=\n").unwrap();
        let env = parse_environment(&d.join("environment")).unwrap().unwrap();
        assert_eq!(env, vec![("LANG".into(), "C.UTF-8".into()), ("EMPTY".into(), String::new())]);
        fs::write(d.join("environment"), "JUSTTEXT\n").unwrap();
        assert_eq!(parse_environment(&d.join("environment")).unwrap_err().line, 1);
        fs::write(d.join("depends"), "db1\nweb-2\n").unwrap();
        assert_eq!(parse_depends(&d.join("depends")).unwrap(), ["db1", "web-2"]);
        fs::write(d.join("depends"), "../x\n").unwrap();
        assert!(parse_depends(&d.join("depends")).is_err());
    }
}
