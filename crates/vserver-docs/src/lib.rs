//! The documentation side of vserver-rs: man pages and shell completions
//! for every binary, made from the binaries' own clap definitions (their
//! `src/cli.rs`, compiled in here by build.rs) plus the hand-written parts
//! in `pages/`, and the completer the shells call (`vserver-complete`).

#![forbid(unsafe_code)]

// `Cli::command()` of the derived command lines.
#[allow(unused_imports)]
use clap::CommandFactory;

include!(concat!(env!("OUT_DIR"), "/clis.rs"));

pub mod complete;
pub mod man;

/// A binary's command line by name (`vserver`, `vlimit`, ...).
pub fn command(name: &str) -> Option<clap::Command> {
    commands().into_iter().find(|c| c.get_name() == name)
}
