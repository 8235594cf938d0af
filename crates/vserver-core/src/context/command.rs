//! Starting a program inside a guest, from a process already inside it: the
//! program is looked up in the guest's PATH (in the guest's own tree, which
//! is our root by then) and runs with an environment built from nothing, so
//! no variable of the host ever reaches the guest.

use crate::context::error::ContextError;
use std::ffi::CString;
use std::path::Path;

use super::GUEST_PATH;

/// The environment every program started in a guest gets, plus `extra`
/// (`NAME=value` entries; a later entry for the same name wins).
pub fn guest_environment(extra: &[String]) -> Vec<String> {
    let mut env = vec![format!("PATH={GUEST_PATH}"), "container=vserver".to_string()];
    for entry in extra {
        let name = entry.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(entry.clone());
    }
    env
}

/// A value for TERM that is safe to pass into a guest (the admin's, when it
/// is a plain terminal name), else `linux`.
pub fn sanitized_term(term: Option<&str>) -> String {
    match term {
        Some(t) if !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b)) => t.to_string(),
        _ => "linux".to_string(),
    }
}

/// Replaces this process with `argv` and exactly `env`. Returns only on
/// failure. A bare command name is searched in the guest's PATH.
pub fn exec(argv: &[String], env: &[String]) -> ContextError {
    let Some(first) = argv.first() else { return ContextError::NoCommand };
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_str())).collect();
    let cenv: Result<Vec<CString>, _> = env.iter().map(|e| CString::new(e.as_str())).collect();
    let (Ok(cargs), Ok(cenv)) = (cargs, cenv) else {
        return ContextError::NulByte("a command argument or variable");
    };
    let path = if first.contains('/') {
        first.clone()
    } else {
        match GUEST_PATH.split(':').map(|d| format!("{d}/{first}")).find(|p| is_executable(p)) {
            Some(p) => p,
            None => return ContextError::CommandNotFound { command: first.clone() },
        }
    };
    let Ok(cpath) = CString::new(path) else { return ContextError::NulByte("a command argument") };
    match nix::unistd::execve(&cpath, &cargs, &cenv) {
        Err(err) => ContextError::Exec { command: first.clone(), err },
        Ok(never) => match never {},
    }
}

fn is_executable(path: &str) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && Path::new(path).metadata().map(|m| m.is_file()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_starts_from_nothing_and_later_entries_win() {
        let env = guest_environment(&["HOME=/root".into(), "PATH=/bin".into()]);
        assert_eq!(env, vec!["container=vserver", "HOME=/root", "PATH=/bin"]);
    }

    #[test]
    fn only_plain_terminal_names_pass() {
        assert_eq!(sanitized_term(Some("xterm-256color")), "xterm-256color");
        assert_eq!(sanitized_term(Some("x\x1b]0;evil")), "linux");
        assert_eq!(sanitized_term(None), "linux");
    }
}
