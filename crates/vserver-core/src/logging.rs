//! How the library's warnings and notes reach the admin: the library logs
//! through the `log` facade and never prints itself; each binary installs
//! this logger first thing, with its name as the prefix, and a process
//! that takes on another role after a fork (the monitor, the built-in init)
//! changes the prefix. Lines go to stderr as `PREFIX: message`, the way
//! util-vserver's tools print, so the monitor's end up in its monitor.log
//! and the built-in init's on the guest's console.
//!
//! `VSERVER_LOG` (error, warn, info, debug, trace) sets how much is shown;
//! the default is info.

use std::io::Write;
use std::sync::RwLock;

static PREFIX: RwLock<String> = RwLock::new(String::new());

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = PREFIX.read().map(|p| p.clone()).unwrap_or_default();
        // One write per line, so lines of processes sharing the file stay whole.
        let line = format!("{prefix}: {}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger for a binary called `prefix` (once per process; a
/// second call only changes the prefix).
pub fn init(prefix: &str) {
    set_prefix(prefix);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level_from(std::env::var("VSERVER_LOG").ok().as_deref()));
    }
}

/// What this process's lines start with from now on.
pub fn set_prefix(prefix: &str) {
    if let Ok(mut p) = PREFIX.write() {
        *p = prefix.to_string();
    }
}

fn level_from(text: Option<&str>) -> log::LevelFilter {
    match text.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        Some("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_vserver_log() {
        assert_eq!(level_from(None), log::LevelFilter::Info);
        assert_eq!(level_from(Some("WARN")), log::LevelFilter::Warn);
        assert_eq!(level_from(Some("debug ")), log::LevelFilter::Debug);
        assert_eq!(level_from(Some("nonsense")), log::LevelFilter::Info);
    }
}
