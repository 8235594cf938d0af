//! Project quotas and the project id attributes of files (FS_IOC_FSGETXATTR).
