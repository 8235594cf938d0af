//! Operations on a running guest from the host, for the admin tools:
//! naming it by xid or name (`select`), signalling its processes by their
//! guest pids (`signal`, vkill), waiting until it is gone (`wait`, vwait)
//! and reading or changing its uts names (`uts`, vuname).
//!
//! Everything starts from the run state (written by the guest's monitor in
//! the run dir, which no guest can see) and from pidfds checked against the
//! recorded start times, so a reused pid is never mistaken for the guest.

pub mod select;
pub mod signal;
pub mod uts;
pub mod wait;

pub use select::{find_running, Selector};
