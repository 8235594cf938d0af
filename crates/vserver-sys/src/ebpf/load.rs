//! The raw bpf(2) commands the network context needs. libc has the syscall
//! number but no wrappers; each command fills the part of `union bpf_attr`
//! it uses (a zeroed, 8-byte aligned buffer the size the kernel checks).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::asm::Insn;

// enum bpf_cmd
const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_GET_NEXT_KEY: i32 = 4;
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_PROG_DETACH: i32 = 9;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_MAP_GET_FD_BY_ID: i32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
const BPF_PROG_QUERY: i32 = 16;

pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// `union bpf_attr` is 8-byte aligned; the kernel accepts any size up to its
/// own as long as the bytes past what it knows are zero.
#[repr(C, align(8))]
struct Attr([u8; 160]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 160])
    }
    fn put_u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn put_u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn put_bytes(&mut self, off: usize, v: &[u8]) -> &mut Self {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
}

fn bpf(cmd: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: attr is a live, writable buffer of the stated size laid out as
    // the kernel's union bpf_attr for `cmd`; pointers inside it point to
    // buffers the caller keeps alive for the duration of this call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from(r: i64) -> OwnedFd {
    // SAFETY: the bpf commands that return a value >= 0 here return a new
    // file descriptor that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// BPF_MAP_CREATE; `inner` is the template map of a map-in-map.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    inner: Option<&OwnedFd>,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, map_type).put_u32(4, key_size).put_u32(8, value_size).put_u32(12, max_entries);
    a.put_u32(16, flags).put_u32(20, inner.map_or(0, |m| m.as_raw_fd() as u32));
    a.put_bytes(28, &object_name(name)); // map_name after map_flags, inner_map_fd, numa_node
    bpf(BPF_MAP_CREATE, &mut a).map(fd_from)
}

/// BPF_MAP_LOOKUP_ELEM into `value` (its length must be the map's value size).
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, map.as_raw_fd() as u32).put_u64(8, key.as_ptr() as u64).put_u64(16, value.as_mut_ptr() as u64);
    bpf(BPF_MAP_LOOKUP_ELEM, &mut a).map(drop)
}

/// BPF_MAP_UPDATE_ELEM with BPF_ANY.
pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, map.as_raw_fd() as u32).put_u64(8, key.as_ptr() as u64).put_u64(16, value.as_ptr() as u64).put_u64(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// BPF_MAP_DELETE_ELEM.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, map.as_raw_fd() as u32).put_u64(8, key.as_ptr() as u64);
    bpf(BPF_MAP_DELETE_ELEM, &mut a).map(drop)
}

/// Every key of a map (`key_size` bytes each), by BPF_MAP_GET_NEXT_KEY.
pub fn map_keys(map: &OwnedFd, key_size: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut next = vec![0u8; key_size];
        let mut a = Attr::new();
        // No key (NULL) asks for the first one.
        let prev = keys.last().map_or(0, |k| k.as_ptr() as u64);
        a.put_u32(0, map.as_raw_fd() as u32).put_u64(8, prev).put_u64(16, next.as_mut_ptr() as u64);
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
            Ok(_) => keys.push(next),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
    }
}

/// What BPF_PROG_LOAD needs besides the instructions.
pub struct ProgSpec<'a> {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// BTF id of the kernel function an LSM program hooks; 0 otherwise.
    pub attach_btf_id: u32,
    pub name: &'a str,
}

/// A program the kernel refused: its errno and the last lines of the
/// verifier's log (empty when the verifier did not get to speak).
#[derive(Debug)]
pub struct LoadError {
    pub errno: io::Error,
    pub verifier: Vec<String>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.errno)?;
        if !self.verifier.is_empty() {
            write!(f, "; verifier: {}", self.verifier.join(" | "))?;
        }
        Ok(())
    }
}

/// The errno is in the message, so not also the `source()`: a chain of
/// errors would print it twice.
impl std::error::Error for LoadError {}

/// BPF_PROG_LOAD. On a rejection the error carries the verifier log.
pub fn prog_load(spec: &ProgSpec, insns: &[Insn]) -> Result<OwnedFd, LoadError> {
    load_with_log(spec, insns, &mut []).map_err(|errno| {
        // Load again with the verifier log on, only to explain the failure.
        let mut log = vec![0u8; 1 << 16];
        let _ = load_with_log(spec, insns, &mut log);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let mut tail: Vec<String> = text.lines().rev().take(6).map(str::to_string).collect();
        tail.reverse();
        LoadError { errno, verifier: tail }
    })
}

/// BPF_PROG_LOAD with the kernel's errno (for probes that tell EPERM from
/// a missing feature).
pub fn try_prog_load(spec: &ProgSpec, insns: &[Insn]) -> io::Result<OwnedFd> {
    load_with_log(spec, insns, &mut [])
}

/// One BPF_PROG_LOAD; an empty `log` leaves the verifier log off.
fn load_with_log(spec: &ProgSpec, insns: &[Insn], log: &mut [u8]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let log_level = u32::from(!log.is_empty());
    let mut a = Attr::new();
    a.put_u32(0, spec.prog_type)
        .put_u32(4, insns.len() as u32)
        .put_u64(8, insns.as_ptr() as u64)
        .put_u64(16, license.as_ptr() as u64)
        .put_u32(24, log_level)
        .put_u32(28, log.len() as u32)
        .put_u64(32, if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 })
        .put_bytes(48, &object_name(spec.name))
        .put_u32(68, spec.expected_attach_type)
        .put_u32(108, spec.attach_btf_id);
    bpf(BPF_PROG_LOAD, &mut a).map(fd_from)
}

/// BPF_PROG_ATTACH of `prog` to the cgroup open as `cgroup`.
pub fn prog_attach(cgroup: &OwnedFd, prog: &OwnedFd, attach_type: u32, flags: u32) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, cgroup.as_raw_fd() as u32).put_u32(4, prog.as_raw_fd() as u32).put_u32(8, attach_type).put_u32(12, flags);
    bpf(BPF_PROG_ATTACH, &mut a).map(drop)
}

/// BPF_PROG_DETACH of one program attached with BPF_F_ALLOW_MULTI.
pub fn prog_detach(cgroup: &OwnedFd, prog: &OwnedFd, attach_type: u32) -> io::Result<()> {
    let mut a = Attr::new();
    a.put_u32(0, cgroup.as_raw_fd() as u32).put_u32(4, prog.as_raw_fd() as u32).put_u32(8, attach_type);
    bpf(BPF_PROG_DETACH, &mut a).map(drop)
}

/// BPF_PROG_QUERY: the ids of the programs attached directly to the cgroup
/// (not inherited ones) for one attach type.
pub fn prog_query(cgroup: &OwnedFd, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.put_u32(0, cgroup.as_raw_fd() as u32).put_u32(4, attach_type).put_u64(16, ids.as_mut_ptr() as u64).put_u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a)?;
    ids.truncate(a.get_u32(24) as usize);
    Ok(ids)
}

/// BPF_PROG_GET_FD_BY_ID.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, id);
    bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(fd_from)
}

/// The name a program was loaded with and the ids of the maps it uses
/// (BPF_OBJ_GET_INFO_BY_FD on struct bpf_prog_info: nr_map_ids at byte 52,
/// map_ids at 56, name at 64).
pub fn prog_info(prog: &OwnedFd) -> io::Result<(String, Vec<u32>)> {
    let mut map_ids = vec![0u32; 16];
    let mut info = [0u64; 10];
    info[6] = u64::from(map_ids.len() as u32) << 32; // nr_map_ids (bytes 52..56)
    info[7] = map_ids.as_mut_ptr() as u64;
    let mut a = Attr::new();
    a.put_u32(0, prog.as_raw_fd() as u32).put_u32(4, 80).put_u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let bytes: Vec<u8> = info[8..10].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let n = ((info[6] >> 32) as usize).min(map_ids.len());
    map_ids.truncate(n);
    Ok((String::from_utf8_lossy(&bytes[..end]).into_owned(), map_ids))
}

/// The name a program was loaded with.
pub fn prog_name(prog: &OwnedFd) -> io::Result<String> {
    prog_info(prog).map(|(name, _)| name)
}

/// BPF_MAP_GET_FD_BY_ID.
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.put_u32(0, id);
    bpf(BPF_MAP_GET_FD_BY_ID, &mut a).map(fd_from)
}

/// The name a map was created with (struct bpf_map_info: name at byte 24).
pub fn map_name(map: &OwnedFd) -> io::Result<String> {
    let mut info = [0u64; 6];
    let mut a = Attr::new();
    a.put_u32(0, map.as_raw_fd() as u32).put_u32(4, 48).put_u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    let bytes: Vec<u8> = info[3..5].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// BPF_OBJ_NAME_LEN is 16 with the terminating NUL; the kernel accepts
/// [A-Za-z0-9_.] only.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_').take(15)) {
        *o = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_truncated_and_filtered() {
        assert_eq!(&object_name("vs_bind4")[..9], b"vs_bind4\0");
        assert_eq!(object_name("a-very-long-program-name")[15], 0);
        assert_eq!(&object_name("a-b")[..3], b"ab\0");
    }
}
