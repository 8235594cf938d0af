//! Test hooks, compiled into debug builds only, so the integration tests can
//! stop a run at an exact step (`VHASHIFY_TEST_CRASH=POINT:N` sends SIGKILL to
//! ourselves the N-th time POINT is reached) or race it deterministically
//! (`VHASHIFY_TEST_HOOK=PROGRAM` runs `PROGRAM POINT RELPATH` and waits).

use std::sync::atomic::{AtomicU64, Ordering};

static HITS: AtomicU64 = AtomicU64::new(0);

pub fn point(name: &str, rel: &[u8]) {
    if !cfg!(debug_assertions) {
        return;
    }
    if let Ok(spec) = std::env::var("VHASHIFY_TEST_CRASH") {
        if let Some((p, n)) = spec.split_once(':') {
            if p == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == n.parse::<u64>().unwrap_or(0) {
                // SAFETY: kill on our own pid; this is the point of the hook.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }
    }
    if let Some(prog) = std::env::var_os("VHASHIFY_TEST_HOOK") {
        let rel = std::ffi::OsStr::new(std::str::from_utf8(rel).unwrap_or("?"));
        let _ = std::process::Command::new(prog).arg(name).arg(rel).status();
    }
}
