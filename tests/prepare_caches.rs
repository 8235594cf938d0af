//! Not a test of the product: fills `target/test-cache` (the Debian
//! templates and the .debs the tests install) on a host with the mirror, for
//! a test run where there is none (util/vm-suite.sh runs this first, with
//! `--ignored`, then carries the cache into the VM).

use vserver_rs_tests::debian::{downloaded_deb, downloaded_deb_version, installed_version, template, DebianInit};

/// Every .deb a test fetches with `debian::downloaded_deb`.
const DEBS: &[&str] = &["sysvinit-core"];

#[test]
#[ignore = "run by util/vm-suite.sh before it boots the VM"]
fn fill_the_test_cache() {
    for init in [DebianInit::Systemd, DebianInit::Sysv] {
        assert!(template(init).is_some(), "the Debian {} template", init.name());
    }
    for deb in DEBS {
        assert!(downloaded_deb(deb).is_some(), "{deb}");
    }
    // tests/cow_debian.rs reinstalls these at the versions its guests have.
    let sysv = template(DebianInit::Sysv).unwrap();
    for pkg in ["less", "procps", "cron"] {
        assert!(downloaded_deb_version(pkg, Some(&installed_version(&sysv, pkg))).is_some(), "{pkg}");
    }
}
