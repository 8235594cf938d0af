//! Resource limits, scheduling priority, I/O priority and the OOM score of processes.
