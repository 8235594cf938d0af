//! Can this host enforce disk limits? The kernel needs quota support
//! (CONFIG_QUOTA: `/proc/sys/fs/quota`) and, for ext4, the v2 quota format
//! (CONFIG_QFMT_V2: the quota_v2 module or its functions in the kernel);
//! then the guests' filesystem has to enforce project quotas.

use std::path::Path;

use super::fs::{quota_state, Filesystem, QuotaState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Yes(String),
    No(String),
    /// Cannot tell from here (kallsyms unreadable, no module list).
    Unknown(String),
}

/// Kernel support for project quotas on ext4 (the format behind them).
/// `proc_root` is `/proc` or a fixture; `modules` the module directory of
/// the running kernel (`/lib/modules/RELEASE`).
pub fn kernel_support(proc_root: &Path, modules: &Path) -> Support {
    if !proc_root.join("sys/fs/quota").is_dir() {
        return Support::No(format!(
            "{} does not exist: the kernel was built without CONFIG_QUOTA",
            proc_root.join("sys/fs/quota").display()
        ));
    }
    let kallsyms = std::fs::read_to_string(proc_root.join("kallsyms")).unwrap_or_default();
    if kallsyms.lines().any(|l| l.split_whitespace().nth(2) == Some("v2_read_file_info")) {
        return Support::Yes("quota support with the v2 format (ext4 and XFS project quotas)".into());
    }
    let listed = |file: &str| std::fs::read_to_string(modules.join(file)).map(|t| t.contains("quota_v2.ko"));
    match (listed("modules.builtin"), listed("modules.dep")) {
        (Ok(true), _) | (_, Ok(true)) => Support::Yes(format!(
            "quota support; the v2 format is the quota_v2 module of {} (ext4 loads it when mounting with prjquota)",
            modules.display()
        )),
        (Err(_), Err(_)) if kallsyms.is_empty() => {
            Support::Unknown(format!("neither {}/kallsyms nor {} can be read", proc_root.display(), modules.display()))
        }
        _ => Support::No(
            "the kernel has quota support but not the v2 quota format (CONFIG_QFMT_V2): ext4 with the quota \
             feature cannot be mounted; XFS project quotas need CONFIG_XFS_QUOTA"
                .into(),
        ),
    }
}

/// Whether guests under `dir` (the guest base) can get disk limits.
pub fn filesystem_support(dir: &Path) -> Support {
    let existing = dir.ancestors().find(|p| p.is_dir()).unwrap_or(Path::new("/"));
    let fs = match Filesystem::of(existing) {
        Ok(fs) => fs,
        Err(e) => return Support::Unknown(format!("{}: {e}", existing.display())),
    };
    match quota_state(existing) {
        Ok(QuotaState::Enforced) => Support::Yes(format!("{} enforces project quotas", fs.describe())),
        Ok(QuotaState::AccountingOnly) => {
            Support::No(format!("{} counts project quotas but does not enforce them: mount it with prjquota", fs.describe()))
        }
        Ok(QuotaState::Off) => Support::No(format!("{} has no project quota: {}", fs.describe(), fs.how_to_enable())),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            Support::Unknown(format!("asking {} for its quota state was refused ({e}): run as root", fs.describe()))
        }
        Err(e) => Support::Unknown(format!("{}: {e}", fs.describe())),
    }
}
