//! Namespaces: unshare(2) and setns(2) by descriptor.
