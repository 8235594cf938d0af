//! The monitor's report to `vserver start`, over a pipe (sync point S4 of
//! monitor.rs, in two steps):
//!   first one byte STATE_SAVED once the run state is written: the guest
//!       counts as running, `vserver start` may let other starts go on;
//!   then "OK" once the guest is up (a systemd guest: its READY=1),
//!       or the error text; EOF without either means the monitor died.

use std::fs::File;
use std::io::{self, Read, Write};

const STATE_SAVED: u8 = 1;
const OK: &[u8] = b"OK";

/// The monitor's end.
pub(super) struct StartReport(File);

impl StartReport {
    pub(super) fn new(f: File) -> StartReport {
        StartReport(f)
    }

    pub(super) fn state_saved(&mut self) {
        let _ = self.0.write_all(&[STATE_SAVED]);
    }

    pub(super) fn ok(mut self) {
        let _ = self.0.write_all(OK);
    }

    pub(super) fn failed(mut self, msg: &str) {
        let _ = self.0.write_all(msg.as_bytes());
    }
}

/// What `vserver start` learnt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Up,
    Failed(String),
    /// The monitor ended without a word.
    Silent,
}

/// Reads the report to its end, calling `on_state_saved` as soon as the
/// run state exists.
pub(super) fn read(mut r: File, on_state_saved: impl FnOnce()) -> io::Result<Outcome> {
    let mut first = [0u8; 1];
    let n = loop {
        match r.read(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(Outcome::Silent);
    }
    let mut rest = Vec::new();
    if first[0] == STATE_SAVED {
        on_state_saved();
    } else {
        rest.push(first[0]);
    }
    r.read_to_end(&mut rest)?;
    Ok(match rest.as_slice() {
        OK => Outcome::Up,
        [] => Outcome::Silent,
        text => Outcome::Failed(String::from_utf8_lossy(text).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn state_then_ok_then_failure_and_silence() {
        let (r, w) = pipe();
        let mut rep = StartReport::new(w);
        rep.state_saved();
        rep.ok();
        let mut saved = false;
        assert_eq!(read(r, || saved = true).unwrap(), Outcome::Up);
        assert!(saved);

        let (r, w) = pipe();
        StartReport::new(w).failed("pid 1 exited");
        assert_eq!(read(r, || panic!("no state was saved")).unwrap(), Outcome::Failed("pid 1 exited".into()));

        let (r, w) = pipe();
        drop(w);
        assert_eq!(read(r, || {}).unwrap(), Outcome::Silent);
    }
}
