//! Installing seccomp filters and their user-notification listener.
