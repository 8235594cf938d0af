pub mod rlimit;
