//! Test hooks, so the integration tests can stop a run at an exact step
//! (`VHASHIFY_TEST_CRASH=POINT:N` sends SIGKILL to ourselves the N-th time
//! POINT is reached) or race it deterministically (`VHASHIFY_TEST_HOOK=PROGRAM`
//! runs `PROGRAM POINT RELPATH` and waits). They are in every build, release
//! ones too, so the tests test what is shipped: unset, they cost one load of
//! a cached flag. Only root runs the code that reaches them, with root's
//! own environment, so they open nothing to anybody else.

use std::ffi::OsString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static HITS: AtomicU64 = AtomicU64::new(0);

struct Hooks {
    crash: Option<(String, u64)>,
    program: Option<OsString>,
}

fn hooks() -> &'static Hooks {
    static HOOKS: OnceLock<Hooks> = OnceLock::new();
    HOOKS.get_or_init(|| Hooks {
        crash: std::env::var("VHASHIFY_TEST_CRASH")
            .ok()
            .and_then(|spec| spec.split_once(':').map(|(p, n)| (p.to_string(), n.parse().unwrap_or(0)))),
        program: std::env::var_os("VHASHIFY_TEST_HOOK"),
    })
}

pub fn point(name: &str, rel: &[u8]) {
    let h = hooks();
    if let Some((p, n)) = &h.crash {
        if p == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // Kill on our own pid; this is the point of the hook.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
    }
    if let Some(prog) = &h.program {
        let rel = std::ffi::OsStr::new(std::str::from_utf8(rel).unwrap_or("?"));
        let _ = std::process::Command::new(prog).arg(name).arg(rel).status();
    }
}
