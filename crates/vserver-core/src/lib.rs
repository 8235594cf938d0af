//! vserver-rs core: Linux-VServer security contexts on a stock mainline kernel.
//!
//! The modules mirror the concepts of the design's concept map: `config` reads
//! `/etc/vservers`, `context` starts, enters and stops a guest, `rootfs`,
//! `caps`, `seccomp`, `limits`, `cgroup` and `net` are the pieces a context is
//! made of, `unify` shares files between guests, `stat` reports on them and
//! `runstate` records what runs.
//!
//! No `unsafe` here: every raw system call is a safe function of the
//! `vserver-sys` crate, seen here as [`sys`].

#![forbid(unsafe_code)]

pub mod builder;
pub mod caps;
pub mod cgroup;
pub mod cli;
pub mod columns;
pub mod conffile;
pub mod config;
pub mod context;
pub mod dlimit;
pub mod hostinfo;
pub mod limits;
pub mod logging;
pub mod net;
pub mod paths;
pub mod procfs;
pub mod rootfs;
pub mod running;
pub mod runstate;
pub mod seccomp;
pub mod stat;
pub use vserver_sys as sys;
pub mod unify;

pub use conffile::ConfigError;
pub use paths::{PathOverrides, Paths};
