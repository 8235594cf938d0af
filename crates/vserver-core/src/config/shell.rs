//! `shell` (util-vserver's name): the command `vserver NAME enter` starts,
//! one line of words (`/bin/zsh -l`), the guest's file before
//! `.defaults/shell`. Without it `enter` picks bash, sh or csh inside the
//! guest as a login shell.

use super::parse::{read_single, ConfigError};
use crate::paths::Paths;

pub fn enter_shell(paths: &Paths, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
    for file in [paths.guest_confdir(name).join("shell"), paths.defaults_dir().join("shell")] {
        if let Some(line) = read_single(&file)? {
            let words: Vec<String> = line.text.split_whitespace().map(str::to_string).collect();
            if !words[0].starts_with('/') {
                return Err(ConfigError::bad_value(&file, line.number, &line.text, "must start with an absolute path inside the guest"));
            }
            return Ok(Some(words));
        }
    }
    Ok(None)
}
