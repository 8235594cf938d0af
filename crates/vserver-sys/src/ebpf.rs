//! eBPF: the assembler of the programs (`asm`) and the bpf(2) calls that load,
//! attach, query and detach them and their maps (`load`). Used by the IP
//! set's socket hooks, the cgroup v2 device filter and the host probes.

pub mod asm;
pub mod load;
