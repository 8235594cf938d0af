//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to find one
//! bit: `skc_ipv6only` in `struct sock_common`, the IPV6_V6ONLY flag of a
//! socket. bpf_getsockopt() does not serve IPV6_V6ONLY (6.1 to 6.18 serve
//! only IPV6_TCLASS and IPV6_AUTOFLOWLABEL at SOL_IPV6), but a bind program
//! can turn its socket into a BTF pointer (bpf_skc_to_tcp6_sock,
//! bpf_skc_to_udp6_sock, kernel >= 5.9) and read the bit there; its place
//! is read from the running kernel, never assumed.

use std::path::Path;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;

/// Where a one-bit field sits: the byte to load and the bit inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitField {
    pub byte: u16,
    pub mask: u8,
}

/// The running kernel's BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// `skc_ipv6only` of the running kernel, if it has BTF.
pub fn ipv6only_bit() -> Option<BitField> {
    read_ipv6only_bit().ok().flatten()
}

/// `skc_ipv6only` of the running kernel: None where its BTF has no such
/// member, the errno where there is no BTF to read.
pub fn read_ipv6only_bit() -> std::io::Result<Option<BitField>> {
    let data = std::fs::read(Path::new(KERNEL_BTF))?;
    Ok(find_bitfield(&data, "sock_common", "skc_ipv6only"))
}

/// [`ipv6only_bit`], remembered in the file `cache` for the rest of this
/// boot: the kernel hands its BTF (5 MB) out a page per read, which costs a
/// guest start about 8 ms of CPU, and the answer cannot change before the
/// next boot (the cache names the boot id it was read in). The file is
/// written under the run directory, which only root can write.
pub fn ipv6only_bit_cached(cache: &Path) -> Option<BitField> {
    let Ok(boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else { return ipv6only_bit() };
    let boot = boot.trim();
    if let Some(known) = std::fs::read_to_string(cache).ok().and_then(|t| parse_cache(&t, boot)) {
        return known;
    }
    let bit = ipv6only_bit();
    let answer = bit.map_or("none".to_string(), |b| format!("{} {}", b.byte, b.mask));
    let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
    // Best effort: without the file the next start reads the BTF again.
    if std::fs::write(&tmp, format!("{boot} {answer}\n")).is_ok() && std::fs::rename(&tmp, cache).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    bit
}

/// "BOOT_ID BYTE MASK" or "BOOT_ID none"; None unless it is of this boot.
fn parse_cache(text: &str, boot: &str) -> Option<Option<BitField>> {
    let mut words = text.split_whitespace();
    if words.next()? != boot {
        return None;
    }
    match (words.next()?, words.next(), words.next()) {
        ("none", None, _) => Some(None),
        (byte, Some(mask), None) => Some(Some(BitField { byte: byte.parse().ok()?, mask: mask.parse().ok()? })),
        _ => None,
    }
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}

fn name_at(strings: &[u8], off: u32) -> &[u8] {
    let s = strings.get(off as usize..).unwrap_or_default();
    &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
}

/// Walks the type section for `struct <strukt>` and returns where its
/// one-bit member `<member>` lives (little-endian bit numbering, as on
/// every architecture this runs on).
pub fn find_bitfield(data: &[u8], strukt: &str, member: &str) -> Option<BitField> {
    if u16_at(data, 0)? != BTF_MAGIC || cfg!(target_endian = "big") {
        return None;
    }
    let hdr_len = u32_at(data, 4)? as usize;
    let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
    let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
    let types = data.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strings = data.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let mut off = 0;
    while off + 12 <= types.len() {
        let name = u32_at(types, off)?;
        let info = u32_at(types, off + 4)?;
        let (kind, vlen, kind_flag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31 == 1);
        let body = off + 12;
        if kind == KIND_STRUCT && name_at(strings, name) == strukt.as_bytes() {
            for i in 0..vlen {
                let m = body + i * 12;
                if name_at(strings, u32_at(types, m)?) != member.as_bytes() {
                    continue;
                }
                let raw = u32_at(types, m + 8)?;
                // With kind_flag the offset word carries the bitfield size
                // in its top byte; a one-bit field is what we read.
                let (bit, size) = if kind_flag { (raw & 0xff_ffff, raw >> 24) } else { (raw, 0) };
                if kind_flag && size != 1 {
                    return None;
                }
                return Some(BitField { byte: (bit / 8) as u16, mask: 1 << (bit % 8) });
            }
            return None;
        }
        off = body + extra_len(kind, vlen)?;
    }
    None
}

/// Bytes that follow `struct btf_type` for each kind.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 => 4,                    // INT
        3 => 12,                   // ARRAY
        4 | 5 => 12 * vlen,        // STRUCT, UNION
        6 => 8 * vlen,             // ENUM
        13 => 8 * vlen,            // FUNC_PROTO
        14 => 4,                   // VAR
        15 => 12 * vlen,           // DATASEC
        17 => 4,                   // DECL_TAG
        19 => 12 * vlen,           // ENUM64
        2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v6only_bit_of_this_kernel() {
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            assert!(std::env::var_os("CI").is_none(), "CI: this kernel should have BTF");
            return;
        }
        // struct sock_common: skc_family (u16), skc_state (u8), then
        // skc_reuse:4, skc_reuseport:1, skc_ipv6only:1 in the next byte,
        // after the 16 bytes of address and hash unions on 64-bit kernels.
        assert_eq!(ipv6only_bit(), Some(BitField { byte: 19, mask: 1 << 5 }));
        let data = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
        assert_eq!(find_bitfield(&data, "sock_common", "skc_family"), None, "not a one-bit field");
        assert_eq!(find_bitfield(&data, "no_such_struct", "x"), None);
        assert_eq!(find_bitfield(b"not btf", "sock_common", "skc_ipv6only"), None);
    }

    #[test]
    fn the_cache_answers_only_for_its_boot() {
        assert_eq!(parse_cache("abc 19 32\n", "abc"), Some(Some(BitField { byte: 19, mask: 32 })));
        assert_eq!(parse_cache("abc none\n", "abc"), Some(None));
        assert_eq!(parse_cache("abc 19 32\n", "def"), None, "another boot");
        assert_eq!(parse_cache("abc 19\n", "abc"), None);
        assert_eq!(parse_cache("abc 19 999\n", "abc"), None, "not a byte mask");
        let dir = std::env::temp_dir().join(format!("vserver-btf-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("kernel-btf");
        let first = ipv6only_bit_cached(&cache);
        assert_eq!(first, ipv6only_bit());
        assert!(std::fs::read_to_string(&cache)
            .unwrap()
            .starts_with(std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim()));
        assert_eq!(ipv6only_bit_cached(&cache), first, "read back from the cache");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
