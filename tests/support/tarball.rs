//! A tar writer for hostile-archive tests: it writes whatever member names,
//! link targets and types it is told (absolute paths, `..`, symlinks and
//! hard links pointing anywhere, device nodes), which tar(1) and the `tar`
//! crate's builder refuse to produce.

/// One ustar archive being written.
#[derive(Default)]
pub struct Tar {
    out: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Tar {
        self.member(name, b'5', mode, (0, 0), b"", "", (0, 0));
        self
    }

    pub fn file(mut self, name: &str, content: &[u8], mode: u32, owner: (u32, u32)) -> Tar {
        self.member(name, b'0', mode, owner, content, "", (0, 0));
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Tar {
        self.member(name, b'2', 0o777, (0, 0), b"", target, (0, 0));
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Tar {
        self.member(name, b'1', 0o644, (0, 0), b"", target, (0, 0));
        self
    }

    /// A character (`b'3'`) or block (`b'4'`) device node.
    pub fn device(mut self, name: &str, kind: u8, major: u32, minor: u32) -> Tar {
        self.member(name, kind, 0o660, (0, 0), b"", "", (major, minor));
        self
    }

    pub fn fifo(mut self, name: &str) -> Tar {
        self.member(name, b'6', 0o644, (0, 0), b"", "", (0, 0));
        self
    }

    /// The archive, with its two zero blocks at the end.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }

    #[allow(clippy::too_many_arguments)]
    fn member(&mut self, name: &str, kind: u8, mode: u32, owner: (u32, u32), content: &[u8], link: &str, dev: (u32, u32)) {
        assert!(name.len() <= 100 && link.len() <= 100, "names up to 100 bytes");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], owner.0 as u64);
        octal(&mut h[116..124], owner.1 as u64);
        octal(&mut h[124..136], content.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], dev.0 as u64);
        octal(&mut h[337..345], dev.1 as u64);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        octal(&mut h[148..155], sum as u64);
        h[155] = b' ';
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.out.resize(self.out.len() + pad, 0);
    }
}

/// A zero-padded octal field with its terminating NUL.
fn octal(field: &mut [u8], value: u64) {
    let s = format!("{value:0width$o}", width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}
