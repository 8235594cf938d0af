//! The start order without root: `setup_guest` (the guest's first process)
//! and `boot` (the monitor) run against a recorder that logs each step's
//! name and fails where it is told to. No system call is made.

use super::error::{Result, StepResult};

use super::pid1::{self, HostSteps};
use super::setup::{self, SetupSteps};
use super::userns;
use crate::config::Guest;

/// Logs each step it is asked for; fails at `fail_at`, if given.
#[derive(Default)]
struct Recorder {
    log: Vec<&'static str>,
    fail_at: Option<&'static str>,
    /// The ids `give_console_to` was called with.
    console_owner: Option<(u32, u32)>,
}

impl Recorder {
    fn failing_at(step: &'static str) -> Recorder {
        Recorder { fail_at: Some(step), ..Recorder::default() }
    }

    fn step(&mut self, name: &'static str) -> Result<()> {
        self.log.push(name);
        if self.fail_at == Some(name) {
            return Err(std::io::Error::other("forced by the test")).step(format!("{name} failed"));
        }
        Ok(())
    }
}

impl SetupSteps for Recorder {
    fn tie_to_monitor(&mut self) -> Result<()> {
        self.step("tie_to_monitor")
    }
    fn wait_for_go(&mut self) -> Result<()> {
        self.step("wait_for_go")
    }
    fn join_v1_cgroups(&mut self) -> Result<()> {
        self.step("join_v1_cgroups")
    }
    fn new_session(&mut self) -> Result<()> {
        self.step("new_session")
    }
    fn allow_ping(&mut self) -> Result<()> {
        self.step("allow_ping")
    }
    fn apply_settings(&mut self) -> Result<()> {
        self.step("apply_settings")
    }
    fn enter_cgroup_namespace(&mut self) -> Result<()> {
        self.step("enter_cgroup_namespace")
    }
    fn stop_propagation(&mut self) -> Result<()> {
        self.step("stop_propagation")
    }
    fn bind_root(&mut self) -> Result<()> {
        self.step("bind_root")
    }
    fn apply_fstab(&mut self) -> Result<()> {
        self.step("apply_fstab")
    }
    fn mount_fresh_tmpfs(&mut self) -> Result<()> {
        self.step("mount_fresh_tmpfs")
    }
    fn mount_proc(&mut self) -> Result<()> {
        self.step("mount_proc")
    }
    fn populate_dev(&mut self) -> Result<()> {
        self.step("populate_dev")
    }
    fn mount_sys_readonly(&mut self) -> Result<()> {
        self.step("mount_sys_readonly")
    }
    fn mount_delegated_cgroupfs(&mut self) -> Result<()> {
        self.step("mount_delegated_cgroupfs")
    }
    fn pivot_root(&mut self) -> Result<()> {
        self.step("pivot_root")
    }
    fn mask_proc(&mut self) -> Result<()> {
        self.step("mask_proc")
    }
    fn attach_console(&mut self) -> Result<()> {
        self.step("attach_console")
    }
    fn give_console_to(&mut self, uid: u32, gid: u32) -> Result<()> {
        self.console_owner = Some((uid, gid));
        self.step("give_console_to")
    }
    fn console_as_stdio(&mut self) -> Result<()> {
        self.step("console_as_stdio")
    }
    fn bind_notify_socket(&mut self) -> Result<()> {
        self.step("bind_notify_socket")
    }
    fn hand_over_fds(&mut self) -> Result<()> {
        self.step("hand_over_fds")
    }
    fn set_uts(&mut self) -> Result<()> {
        self.step("set_uts")
    }
    fn apply_limits(&mut self) -> Result<()> {
        self.step("apply_limits")
    }
    fn enter_user_namespace(&mut self) -> Result<()> {
        self.step("enter_user_namespace")
    }
    fn apply_confinement(&mut self) -> Result<()> {
        self.step("apply_confinement")
    }
}

impl HostSteps for Recorder {
    fn restrict_devices(&mut self) -> Result<()> {
        self.step("restrict_devices")
    }
    fn attach_device_filter(&mut self) -> Result<()> {
        self.step("attach_device_filter")
    }
    fn apply_context_limits(&mut self) -> Result<()> {
        self.step("apply_context_limits")
    }
    fn set_up_network(&mut self) -> Result<()> {
        self.step("set_up_network")
    }
    fn create_children(&mut self) -> Result<()> {
        self.step("create_children")
    }
    fn delegate_payload(&mut self) -> Result<()> {
        self.step("delegate_payload")
    }
    fn enter_supervisor(&mut self) -> Result<()> {
        self.step("enter_supervisor")
    }
    fn scope_abstract_sockets(&mut self) -> Result<()> {
        self.step("scope_abstract_sockets")
    }
    fn enter_time_namespace(&mut self) -> Result<()> {
        self.step("enter_time_namespace")
    }
    fn compile_restrictions(&mut self) -> Result<()> {
        self.step("compile_restrictions")
    }
    fn open_channels(&mut self) -> Result<()> {
        self.step("open_channels")
    }
    fn clone_pid1(&mut self) -> Result<()> {
        self.step("clone_pid1")
    }
    fn kill_pid1(&mut self) {
        self.log.push("kill_pid1");
    }
    fn move_pid1_into_payload(&mut self) -> Result<()> {
        self.step("move_pid1_into_payload")
    }
    fn set_oom_score(&mut self) -> Result<()> {
        self.step("set_oom_score")
    }
    fn connect_network(&mut self) -> Result<()> {
        self.step("connect_network")
    }
    fn run_pre_start(&mut self) -> Result<()> {
        self.step("run_pre_start")
    }
    fn send_go(&mut self) -> Result<()> {
        self.step("send_go")
    }
    fn wait_for_user_namespace(&mut self) -> Result<()> {
        self.step("wait_for_user_namespace")
    }
    fn write_id_maps(&mut self) -> Result<()> {
        self.step("write_id_maps")
    }
    fn send_maps_written(&mut self) -> Result<()> {
        self.step("send_maps_written")
    }
}

// ---- guests ----

use crate::config::testutil::guest_with_files as guest;

fn plain_guest() -> Guest {
    guest(&[("apps/init/style", "plain\n")])
}

/// Style `sysv` is the default.
fn sysv_guest() -> Guest {
    guest(&[])
}

fn systemd_guest() -> Guest {
    guest(&[("apps/init/style", "systemd\n")])
}

fn userns_guest() -> Guest {
    guest(&[("namespaces", "user\n")])
}

fn cgroupns_guest() -> Guest {
    guest(&[("namespaces", "cgroup\n")])
}

fn systemd_userns_guest() -> Guest {
    guest(&[("apps/init/style", "systemd\n"), ("namespaces", "user\n")])
}

fn timens_guest() -> Guest {
    guest(&[("namespaces", "time\n")])
}

/// Every kind of guest the tests look at, with a name for messages.
fn all_guests() -> Vec<(&'static str, Guest)> {
    vec![
        ("plain", plain_guest()),
        ("sysv", sysv_guest()),
        ("systemd", systemd_guest()),
        ("user namespace", userns_guest()),
        ("cgroup namespace", cgroupns_guest()),
        ("systemd with user namespace", systemd_userns_guest()),
        ("time namespace", timens_guest()),
    ]
}

// ---- running the orders ----

fn setup_order(guest: &Guest) -> Vec<&'static str> {
    let mut steps = Recorder::default();
    setup::setup_guest(guest, &mut steps).unwrap();
    steps.log
}

fn boot_order(guest: &Guest) -> Vec<&'static str> {
    let mut steps = Recorder::default();
    pid1::boot(guest, &mut steps).unwrap();
    steps.log
}

fn position(log: &[&str], step: &str) -> usize {
    log.iter().position(|s| *s == step).unwrap_or_else(|| panic!("{step} is not in {log:?}"))
}

fn assert_before(log: &[&str], first: &str, then: &str) {
    assert!(position(log, first) < position(log, then), "{first} must come before {then}: {log:?}");
}

// ---- the guest's first process ----

/// The order of a guest with no option: styles `plain` and `sysv` differ
/// only after the setup (exec or the built-in init).
const PLAIN_SETUP: &[&str] = &[
    "tie_to_monitor",
    "wait_for_go",
    "join_v1_cgroups",
    "new_session",
    "allow_ping",
    "apply_settings",
    "stop_propagation",
    "bind_root",
    "apply_fstab",
    "mount_fresh_tmpfs",
    "mount_proc",
    "populate_dev",
    "mount_sys_readonly",
    "pivot_root",
    "mask_proc",
    "attach_console",
    "console_as_stdio",
    "hand_over_fds",
    "set_uts",
    "apply_limits",
    "apply_confinement",
];

const SYSTEMD_SETUP: &[&str] = &[
    "tie_to_monitor",
    "wait_for_go",
    "join_v1_cgroups",
    "new_session",
    "allow_ping",
    "apply_settings",
    "enter_cgroup_namespace",
    "stop_propagation",
    "bind_root",
    "apply_fstab",
    "mount_fresh_tmpfs",
    "mount_proc",
    "populate_dev",
    "mount_sys_readonly",
    "mount_delegated_cgroupfs",
    "pivot_root",
    "mask_proc",
    "attach_console",
    "console_as_stdio",
    "bind_notify_socket",
    "hand_over_fds",
    "set_uts",
    "apply_limits",
    "apply_confinement",
];

const USERNS_SETUP: &[&str] = &[
    "tie_to_monitor",
    "wait_for_go",
    "join_v1_cgroups",
    "new_session",
    "allow_ping",
    "apply_settings",
    "stop_propagation",
    "bind_root",
    "apply_fstab",
    "mount_fresh_tmpfs",
    "mount_proc",
    "populate_dev",
    "mount_sys_readonly",
    "pivot_root",
    "mask_proc",
    "attach_console",
    "give_console_to",
    "console_as_stdio",
    "hand_over_fds",
    "set_uts",
    "apply_limits",
    "enter_user_namespace",
    "apply_confinement",
];

/// Steps that mount, unmount or pivot: none may run before the propagation stops.
const MOUNT_STEPS: &[&str] = &[
    "bind_root",
    "apply_fstab",
    "mount_fresh_tmpfs",
    "mount_proc",
    "populate_dev",
    "mount_sys_readonly",
    "mount_delegated_cgroupfs",
    "pivot_root",
    "mask_proc",
    "attach_console",
];

#[test]
fn plain_guest_setup_order() {
    assert_eq!(setup_order(&plain_guest()), PLAIN_SETUP);
}

#[test]
fn sysv_guest_setup_order() {
    assert_eq!(setup_order(&sysv_guest()), PLAIN_SETUP);
}

#[test]
fn systemd_guest_setup_order() {
    assert_eq!(setup_order(&systemd_guest()), SYSTEMD_SETUP);
}

#[test]
fn user_namespace_guest_setup_order() {
    assert_eq!(setup_order(&userns_guest()), USERNS_SETUP);
}

#[test]
fn the_console_goes_to_guest_root_of_the_user_namespace() {
    let guest = userns_guest();
    let mut steps = Recorder::default();
    setup::setup_guest(&guest, &mut steps).unwrap();
    let base = userns::base(guest.xid);
    assert_eq!(steps.console_owner, Some((base, base)));
}

#[test]
fn v1_cgroups_are_joined_right_after_go_before_any_other_step() {
    for (kind, guest) in all_guests() {
        let log = setup_order(&guest);
        assert_eq!(log[..3], ["tie_to_monitor", "wait_for_go", "join_v1_cgroups"], "{kind}");
    }
}

#[test]
fn nothing_is_mounted_before_propagation_stops() {
    for (_, guest) in all_guests() {
        let log = setup_order(&guest);
        for step in MOUNT_STEPS.iter().filter(|s| log.contains(s)) {
            assert_before(&log, "stop_propagation", step);
        }
    }
}

#[test]
fn mounts_come_in_their_order() {
    for (_, guest) in all_guests() {
        let log = setup_order(&guest);
        assert_before(&log, "bind_root", "apply_fstab");
        assert_before(&log, "apply_fstab", "mount_fresh_tmpfs");
        assert_before(&log, "mount_proc", "pivot_root");
        assert_before(&log, "populate_dev", "pivot_root");
        assert_before(&log, "pivot_root", "mask_proc");
        assert_before(&log, "mask_proc", "attach_console");
    }
}

#[test]
fn settings_are_applied_before_the_mounts() {
    for (_, guest) in all_guests() {
        let log = setup_order(&guest);
        assert_before(&log, "allow_ping", "stop_propagation");
        assert_before(&log, "apply_settings", "stop_propagation");
    }
}

#[test]
fn the_fds_are_handed_over_before_uts_and_limits() {
    for (_, guest) in all_guests() {
        let log = setup_order(&guest);
        assert_before(&log, "attach_console", "hand_over_fds");
        assert_before(&log, "hand_over_fds", "set_uts");
        assert_before(&log, "hand_over_fds", "apply_limits");
    }
}

#[test]
fn the_user_namespace_comes_after_the_limits_and_before_confinement() {
    for guest in [userns_guest(), systemd_userns_guest()] {
        let log = setup_order(&guest);
        assert_before(&log, "set_uts", "enter_user_namespace");
        assert_before(&log, "apply_limits", "enter_user_namespace");
        assert_before(&log, "enter_user_namespace", "apply_confinement");
    }
}

#[test]
fn confinement_is_the_last_step() {
    for (kind, guest) in all_guests() {
        assert_eq!(setup_order(&guest).last(), Some(&"apply_confinement"), "{kind}");
    }
}

#[test]
fn cgroup_namespace_only_for_systemd_or_when_asked() {
    for (kind, guest) in all_guests() {
        let log = setup_order(&guest);
        let systemd = kind.starts_with("systemd");
        let asked = kind == "cgroup namespace";
        assert_eq!(log.contains(&"enter_cgroup_namespace"), systemd || asked, "{kind}");
        assert_eq!(log.contains(&"mount_delegated_cgroupfs"), systemd, "{kind}");
        assert_eq!(log.contains(&"bind_notify_socket"), systemd, "{kind}");
    }
}

#[test]
fn user_namespace_steps_only_when_asked() {
    for (kind, guest) in all_guests() {
        let log = setup_order(&guest);
        let asked = kind.contains("user namespace");
        assert_eq!(log.contains(&"enter_user_namespace"), asked, "{kind}");
        assert_eq!(log.contains(&"give_console_to"), asked, "{kind}");
    }
}

#[test]
fn a_failing_setup_step_is_the_last_one() {
    for (kind, guest) in all_guests() {
        let full = setup_order(&guest);
        for (i, step) in full.iter().enumerate() {
            let mut steps = Recorder::failing_at(step);
            let result = setup::setup_guest(&guest, &mut steps);
            assert!(result.is_err(), "{kind}: a failure at {step} must fail the setup");
            assert_eq!(steps.log, full[..=i], "{kind}: nothing may run after {step} failed");
        }
    }
}

// ---- the monitor ----

const PLAIN_BOOT: &[&str] = &[
    "restrict_devices",
    "attach_device_filter",
    "apply_context_limits",
    "set_up_network",
    "create_children",
    "enter_supervisor",
    "scope_abstract_sockets",
    "compile_restrictions",
    "open_channels",
    "clone_pid1",
    "move_pid1_into_payload",
    "set_oom_score",
    "connect_network",
    "run_pre_start",
    "send_go",
];

const SYSTEMD_USERNS_BOOT: &[&str] = &[
    "restrict_devices",
    "attach_device_filter",
    "apply_context_limits",
    "set_up_network",
    "create_children",
    "delegate_payload",
    "enter_supervisor",
    "scope_abstract_sockets",
    "compile_restrictions",
    "open_channels",
    "clone_pid1",
    "move_pid1_into_payload",
    "set_oom_score",
    "connect_network",
    "run_pre_start",
    "send_go",
    "wait_for_user_namespace",
    "write_id_maps",
    "send_maps_written",
];

/// Steps that need pid 1 to exist.
const AFTER_CLONE: &[&str] = &[
    "move_pid1_into_payload",
    "set_oom_score",
    "connect_network",
    "run_pre_start",
    "send_go",
    "wait_for_user_namespace",
    "write_id_maps",
    "send_maps_written",
];

#[test]
fn plain_sysv_and_systemd_guests_boot_alike() {
    for guest in [plain_guest(), sysv_guest(), systemd_guest(), cgroupns_guest()] {
        assert_eq!(boot_order(&guest), PLAIN_BOOT);
    }
}

#[test]
fn a_systemd_guest_with_user_namespace_gets_its_payload_delegated() {
    assert_eq!(boot_order(&systemd_userns_guest()), SYSTEMD_USERNS_BOOT);
}

#[test]
fn user_namespace_guest_boot_order() {
    let log = boot_order(&userns_guest());
    let expected: Vec<&str> = PLAIN_BOOT.iter().copied().chain(["wait_for_user_namespace", "write_id_maps", "send_maps_written"]).collect();
    assert_eq!(log, expected);
}

#[test]
fn the_time_namespace_is_entered_before_the_clone() {
    let log = boot_order(&timens_guest());
    assert_before(&log, "enter_supervisor", "enter_time_namespace");
    assert_before(&log, "enter_time_namespace", "clone_pid1");
    assert!(!boot_order(&plain_guest()).contains(&"enter_time_namespace"));
}

#[test]
fn the_cgroup_is_ready_before_pid_1_exists() {
    for (kind, guest) in all_guests() {
        let log = boot_order(&guest);
        assert_eq!(log[0], "restrict_devices", "{kind}: device rules come before any child cgroup");
        assert_before(&log, "attach_device_filter", "create_children");
        assert_before(&log, "apply_context_limits", "clone_pid1");
        assert_before(&log, "set_up_network", "clone_pid1");
        assert_before(&log, "create_children", "enter_supervisor");
        assert_before(&log, "enter_supervisor", "scope_abstract_sockets");
        assert_before(&log, "scope_abstract_sockets", "clone_pid1");
        assert_before(&log, "compile_restrictions", "clone_pid1");
        for step in AFTER_CLONE.iter().filter(|s| log.contains(s)) {
            assert_before(&log, "clone_pid1", step);
        }
    }
}

#[test]
fn go_is_the_last_word_before_the_user_namespace() {
    for (kind, guest) in all_guests() {
        let log = boot_order(&guest);
        assert_before(&log, "set_oom_score", "send_go");
        assert_before(&log, "connect_network", "send_go");
        assert_before(&log, "run_pre_start", "send_go");
        let after_go = &log[position(&log, "send_go") + 1..];
        assert!(after_go.iter().all(|s| ["wait_for_user_namespace", "write_id_maps", "send_maps_written"].contains(s)), "{kind}: {log:?}");
    }
}

#[test]
fn a_failing_boot_step_is_the_last_one_and_pid_1_is_killed() {
    for (kind, guest) in all_guests() {
        let full = boot_order(&guest);
        let cloned = position(&full, "clone_pid1");
        for (i, step) in full.iter().enumerate().filter(|(_, s)| **s != "wait_for_user_namespace") {
            let mut steps = Recorder::failing_at(step);
            let result = pid1::boot(&guest, &mut steps);
            assert!(result.is_err(), "{kind}: a failure at {step} must fail the boot");
            let mut expected = full[..=i].to_vec();
            if i > cloned {
                expected.push("kill_pid1");
            }
            assert_eq!(steps.log, expected, "{kind}: after {step} failed");
        }
    }
}

/// A pid 1 that ends instead of asking for its maps reports why itself; the
/// monitor writes no maps and says nothing more.
#[test]
fn no_maps_for_a_pid_1_that_never_asks() {
    let guest = userns_guest();
    let mut steps = Recorder::failing_at("wait_for_user_namespace");
    pid1::boot(&guest, &mut steps).unwrap();
    assert_eq!(steps.log.last(), Some(&"wait_for_user_namespace"));
}
