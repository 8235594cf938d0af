//! Per-process resource limits applied to a process (setrlimit before exec;
//! prlimit on a running context is `limits::live`). The resources and the
//! value syntax are configuration: `config::rlimit`.

use crate::sys::rlimit;

pub use crate::config::rlimit::{LimitValue, Resource, RlimitSetting, ALL_RESOURCES};

/// Applies the per-process limits to the calling process. Runs before the
/// capability drop: raising a hard limit needs CAP_SYS_RESOURCE.
pub fn apply_to_self(settings: &[RlimitSetting]) -> Result<(), String> {
    for s in settings {
        let Some(id) = s.resource.rlimit_id() else { continue };
        let cur = rlimit::get(rlimit::SELF, id).map_err(|e| format!("reading the {} limit: {e}", s.resource))?;
        let hard = s.hard.map(LimitValue::as_rlim).unwrap_or(cur.hard);
        let soft = s.soft.map(LimitValue::as_rlim).unwrap_or(cur.soft.min(hard));
        if let Err(e) = rlimit::set(rlimit::SELF, id, rlimit::Pair { soft: soft.min(hard), hard }) {
            return Err(format!(
                "setting the {} limit to {}/{}: {e}",
                s.resource,
                s.soft.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                s.hard.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            ));
        }
    }
    Ok(())
}
