//! Shell completion that knows the guests. The installed bash, zsh and
//! fish scripts are clap_complete's small registration stubs: on Tab the
//! shell runs `vserver-complete` (with `COMPLETE=<shell>` and the words of
//! the line), which completes with the very clap definitions of the binary
//! being typed, plus the values clap cannot know: guest names (read from
//! the configuration root at that moment), build methods, resources.
//!
//! The tools themselves are never run for a Tab press: a completion request
//! cannot turn into `vserver web1 stop`.

use std::ffi::{OsStr, OsString};
use std::io::Write;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use clap_complete::env::Shells;
use vserver_core::paths::{PathOverrides, Paths};

/// The environment variable the registration scripts set.
pub const VAR: &str = "COMPLETE";

/// What an argument's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    Guests,
    BuildMethods,
}

/// (binary, subcommand path, argument id, values). `tests/completions.rs`
/// checks that every entry still names an argument, so a rename cannot
/// silently drop a completion.
pub const COMPLETERS: &[(&str, &[&str], &str, Values)] = &[
    ("vserver", &[], "name", Values::Guests),
    ("vserver", &["build"], "method", Values::BuildMethods),
    ("vlimit", &[], "context", Values::Guests),
    ("vhashify", &[], "names", Values::Guests),
    ("vkill", &[], "xid", Values::Guests),
    ("vwait", &[], "guest", Values::Guests),
    ("vuname", &[], "xid", Values::Guests),
    ("vdlimit", &[], "xid", Values::Guests),
    ("vapt-get", &[], "guests", Values::Guests),
    ("vserver-info", &[], "target", Values::Guests),
];

/// `vserver NAME build -m` (crates/vserver/src/main.rs, parse_method).
pub const BUILD_METHODS: &[&str] = &["skeleton", "busybox", "debootstrap", "clone"];

/// The guests of the configuration root (`VSERVER_CONFDIR` or /etc/vservers).
pub fn guest_names() -> Vec<String> {
    Paths::resolve(&PathOverrides::default()).ok().and_then(|p| vserver_core::config::list_guests(&p).ok()).unwrap_or_default()
}

fn candidates(values: Values, current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let all: Vec<String> = match values {
        Values::Guests => guest_names(),
        Values::BuildMethods => BUILD_METHODS.iter().map(|m| m.to_string()).collect(),
    };
    all.into_iter().filter(|v| v.starts_with(current.as_ref())).map(CompletionCandidate::new).collect()
}

/// The command `name` with the completers of [`COMPLETERS`] attached.
pub fn decorated(name: &str) -> Option<clap::Command> {
    let mut cmd = crate::command(name)?.disable_help_subcommand(true);
    for (bin, path, arg, values) in COMPLETERS.iter().filter(|(b, ..)| *b == name) {
        let values = *values;
        cmd = attach(cmd, path, arg, values).unwrap_or_else(|| panic!("{bin} {}: no argument {arg:?}", path.join(" ")));
    }
    Some(cmd)
}

fn attach(cmd: clap::Command, path: &[&str], arg: &str, values: Values) -> Option<clap::Command> {
    match path.split_first() {
        None => {
            cmd.get_arguments().any(|a| a.get_id() == arg).then_some(())?;
            let cmd = pin_positional_order(cmd);
            Some(cmd.mut_arg(arg, |a| a.add(ArgValueCompleter::new(move |c: &OsStr| candidates(values, c)))))
        }
        Some((sub, rest)) => {
            let inner = cmd.find_subcommand(sub)?.clone();
            let inner = attach(inner, rest, arg, values)?;
            Some(cmd.mut_subcommand(*sub, |_| inner))
        }
    }
}

/// `mut_arg` moves the argument to the end of the list, and positionals
/// without an explicit index are numbered in list order: pin their order
/// first, or `vapt-get GUEST... -- ARGS` would swap its two positionals.
fn pin_positional_order(mut cmd: clap::Command) -> clap::Command {
    let ids: Vec<clap::Id> = cmd.get_positionals().map(|a| a.get_id().clone()).collect();
    for (i, id) in ids.iter().enumerate() {
        cmd = cmd.mut_arg(id, |a| if a.get_index().is_some() { a } else { a.index(i + 1) });
    }
    cmd
}

/// `vserver-complete`: answers `COMPLETE=<shell> vserver-complete -- WORDS`
/// on stdout. Exit 1 when asked wrongly (no shell, unknown binary).
pub fn answer(args: Vec<OsString>, out: &mut dyn Write) -> Result<(), String> {
    let shell_name = std::env::var(VAR).map_err(|_| format!("{VAR} is not set: this is run by the completion scripts"))?;
    let shells = Shells::builtins();
    let shell = shells.completer(&shell_name).ok_or_else(|| format!("{VAR}={shell_name}: unknown shell"))?;
    let words: Vec<OsString> = args.into_iter().skip_while(|a| a != "--").skip(1).collect();
    let first = words.first().ok_or("no words after --")?;
    let name = std::path::Path::new(first).file_name().unwrap_or(first).to_string_lossy().into_owned();
    let mut cmd = decorated(&name).ok_or_else(|| format!("{name:?} is not a vserver-rs binary"))?;
    cmd.build();
    let cwd = std::env::current_dir().ok();
    shell.write_complete(&mut cmd, words, cwd.as_deref(), out).map_err(|e| e.to_string())
}

/// The registration script of one binary for one shell.
pub fn registration(shell: &str, name: &str, completer: &str) -> Result<Vec<u8>, String> {
    let shells = Shells::builtins();
    let s = shells.completer(shell).ok_or_else(|| format!("unknown shell {shell}"))?;
    let mut buf = Vec::new();
    s.write_registration(VAR, name, name, completer, &mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_completer_names_an_argument() {
        let mut bins: Vec<&str> = COMPLETERS.iter().map(|(b, ..)| *b).collect();
        bins.dedup();
        for b in bins {
            let mut cmd = decorated(b).unwrap_or_else(|| panic!("{b} is not a vserver-rs binary"));
            cmd.build();
        }
    }
}
