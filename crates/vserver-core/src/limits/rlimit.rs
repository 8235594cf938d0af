//! Per-process resource limits applied to a process (setrlimit before exec;
//! prlimit on a running context is `limits::live`). The resources and the
//! value syntax are configuration: `config::rlimit`.

use crate::sys::rlimit;

pub use crate::config::rlimit::{LimitValue, Resource, RlimitSetting, ALL_RESOURCES};

/// Applies the per-process limits to the calling process. Runs before the
/// capability drop: raising a hard limit needs CAP_SYS_RESOURCE.
pub fn apply_to_self(settings: &[RlimitSetting]) -> Result<(), RlimitError> {
    for s in settings {
        let Some(id) = s.resource.rlimit_id() else { continue };
        let cur = rlimit::get(rlimit::SELF, id).map_err(|err| RlimitError::Read { resource: s.resource, err })?;
        let hard = s.hard.map(LimitValue::as_rlim).unwrap_or(cur.hard);
        let soft = s.soft.map(LimitValue::as_rlim).unwrap_or(cur.soft.min(hard));
        rlimit::set(rlimit::SELF, id, rlimit::Pair { soft: soft.min(hard), hard }).map_err(|err| RlimitError::Set {
            resource: s.resource,
            soft: s.soft.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            hard: s.hard.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            err,
        })?;
    }
    Ok(())
}

/// A per-process limit that could not be read or set, with the errno.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("reading the {resource} limit: {err}")]
    Read { resource: Resource, err: std::io::Error },
    #[error("setting the {resource} limit to {soft}/{hard}: {err}")]
    Set { resource: Resource, soft: String, hard: String, err: std::io::Error },
}
