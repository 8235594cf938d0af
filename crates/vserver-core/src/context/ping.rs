//! ccapability RAW_ICMP: ping through ICMP datagram sockets instead of raw
//! sockets (which would bypass the IP set). The seccomp filter refuses those
//! sockets to every other guest; the kernel also requires the guest's gid to
//! be in `net.ipv4.ping_group_range`, a setting of the network namespace:
//! host-wide for a guest that shares the host network (checked, never
//! changed), the guest's own otherwise (set at start).

use std::fs;

use crate::context::error::{ContextError, Result, StepResult};

use crate::config::{ContextCap, ExtraNamespace, Guest};

const SYSCTL: &str = "/proc/sys/net/ipv4/ping_group_range";

/// The host gids of the guest's group 0 .. its last mapped group.
fn guest_gids(guest: &Guest) -> (u64, u64) {
    if guest.wants_namespace(ExtraNamespace::User) {
        let base = super::userns::base(guest.xid) as u64;
        (base, base + super::userns::RANGE as u64 - 1)
    } else {
        (0, 0)
    }
}

/// Before anything changes: a guest sharing the host network needs the
/// host's range to cover its root group.
pub(super) fn check_host_range(guest: &Guest) -> Result<()> {
    if !guest.ccaps.contains(&ContextCap::RawIcmp) || guest.wants_namespace(ExtraNamespace::Net) {
        return Ok(());
    }
    let text = fs::read_to_string(SYSCTL).with_step(|| format!("reading {SYSCTL}"))?;
    let mut it = text.split_whitespace().filter_map(|v| v.parse::<u64>().ok());
    let (lo, hi) = (it.next().unwrap_or(1), it.next().unwrap_or(0));
    let (gid, _) = guest_gids(guest);
    if !(lo..=hi).contains(&gid) {
        return Err(ContextError::Unstartable(format!(
            "guest {:?}: ccapabilities RAW_ICMP needs ping sockets for gid {gid}, but the host's \
             net.ipv4.ping_group_range is \"{lo} {hi}\" (a host-wide setting: sysctl -w net.ipv4.ping_group_range=\"0 {}\")",
            guest.name,
            hi.max(gid)
        )));
    }
    Ok(())
}

/// In the guest's first process, in its own network namespace: let its
/// groups open ping sockets there.
pub(super) fn allow_in_own_namespace(guest: &Guest) -> Result<()> {
    if !guest.ccaps.contains(&ContextCap::RawIcmp) || !guest.wants_namespace(ExtraNamespace::Net) {
        return Ok(());
    }
    let (lo, hi) = guest_gids(guest);
    let hi = if guest.wants_namespace(ExtraNamespace::User) { hi } else { i32::MAX as u64 };
    fs::write(SYSCTL, format!("{lo} {hi}")).with_step(|| format!("setting {SYSCTL} in the guest's network namespace"))
}
