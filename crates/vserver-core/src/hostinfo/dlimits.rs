//! Disk limits (`dlimits/`): kernel support for project quotas, and whether
//! the guest base's filesystem enforces them.

use std::path::PathBuf;

use super::{Check, Host, Status};
use crate::dlimit::probe::{self, Support};

const KERNEL_NEEDED_FOR: &str = "disk limits (dlimits/): project quotas need quota support in the kernel";
const FS_NEEDED_FOR: &str = "disk limits (dlimits/) for guests under the guest base: a guest with dlimits/ \
                             does not start where they cannot be enforced";

pub fn checks(host: &Host) -> Vec<Check> {
    let release = std::fs::read_to_string(host.proc("sys/kernel/osrelease")).unwrap_or_default();
    let modules = PathBuf::from("/lib/modules").join(release.trim());
    let kernel = probe::kernel_support(&host.proc_root, &modules);
    let mut out = vec![check("dlimits.kernel", kernel, KERNEL_NEEDED_FOR)];
    if host.live {
        out.push(check("dlimits.vdirbase", probe::filesystem_support(&host.vdirbase), FS_NEEDED_FOR));
    }
    out
}

fn check(id: &str, support: Support, needed_for: &str) -> Check {
    let (status, detail) = match support {
        Support::Yes(d) => (Status::Ok, d),
        Support::No(d) => (Status::Missing, d),
        Support::Unknown(d) => (Status::Limited, format!("cannot tell: {d}")),
    };
    Check::new(id, status, detail, needed_for, false)
}
