//! Seccomp user notifications as their supervisor sees them: receive, answer, check, and the notifying task's memory.
