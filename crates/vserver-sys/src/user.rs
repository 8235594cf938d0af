//! Users and groups: switching the ids of this process, supplementary groups.
