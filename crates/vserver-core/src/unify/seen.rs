//! The keys of files a run hashed but left private (no other guest had
//! them), kept in `<store>/.vhashify/seen` so the next run needs only a
//! stat for them, not a read; with --reflink also the files a run made
//! clones of an entry (`cloned`), which the next run leaves alone. A file's ctime changes with every write,
//! chmod, chown and xattr change and nobody can set it back (that would take
//! setting the clock), so the same device, inode, size, mtime and ctime mean
//! the same content and metadata, hence the same key. A stale record costs
//! nothing: the linking step checks every file again before it touches it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::hash::Key;
use super::scan::FileId;

const MAGIC: &[u8; 8] = b"vhseen1\n";
const RECORD: usize = 8 * 3 + 16 * 2 + 32;

/// Keys by (device, inode), with the identity they were computed for.
#[derive(Debug, Default)]
pub struct Seen {
    map: HashMap<(u64, u64), (FileId, Key)>,
}

impl Seen {
    pub fn file(meta_dir: &Path, respect_mtime: bool) -> PathBuf {
        // The key differs with --respect-mtime: one cache per kind.
        meta_dir.join(if respect_mtime { "seen-mtime" } else { "seen" })
    }

    pub fn cloned_file(meta_dir: &Path, respect_mtime: bool) -> PathBuf {
        meta_dir.join(if respect_mtime { "cloned-mtime" } else { "cloned" })
    }

    /// Keeps only the records whose key passes (entries that still exist).
    pub fn retain_keys(&mut self, keep: impl Fn(&Key) -> bool) {
        self.map.retain(|_, (_, k)| keep(k));
    }

    /// The cache, or an empty one when it is missing or unreadable.
    pub fn load(path: &Path) -> Seen {
        let mut data = Vec::new();
        let ok = std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut data)).is_ok();
        if !ok || !data.starts_with(MAGIC) {
            return Seen::default();
        }
        let map = data[MAGIC.len()..].chunks_exact(RECORD).map(decode).map(|(id, k)| ((id.dev, id.ino), (id, k))).collect();
        Seen { map }
    }

    pub fn lookup(&self, id: &FileId) -> Option<Key> {
        self.map.get(&(id.dev, id.ino)).filter(|(known, _)| known == id).map(|(_, k)| *k)
    }

    /// Writes the records given (a run's private files), replacing the cache.
    pub fn save(path: &Path, records: impl Iterator<Item = (FileId, Key)>) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut out = io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(MAGIC)?;
        for (id, key) in records {
            out.write_all(&encode(&id, &key))?;
        }
        out.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
    }
}

fn encode(id: &FileId, key: &Key) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    let fields = [id.dev, id.ino, id.size, id.mtime.0 as u64, id.mtime.1 as u64, id.ctime.0 as u64, id.ctime.1 as u64];
    for (i, v) in fields.iter().enumerate() {
        r[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    r[56..].copy_from_slice(&key.0);
    r
}

fn decode(r: &[u8]) -> (FileId, Key) {
    let v = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().expect("eight bytes"));
    let id = FileId { dev: v(0), ino: v(1), size: v(2), mtime: (v(3) as i64, v(4) as i64), ctime: (v(5) as i64, v(6) as i64) };
    (id, Key(r[56..].try_into().expect("32 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_only_an_identical_identity_matches() {
        let dir = std::env::temp_dir().join(format!("vs-seen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = FileId { dev: 1, ino: 2, size: 3, mtime: (4, 5), ctime: (6, -7) };
        let key = Key([9; 32]);
        let path = Seen::file(&dir, false);
        Seen::save(&path, [(id, key)].into_iter()).unwrap();
        let seen = Seen::load(&path);
        assert_eq!(seen.lookup(&id), Some(key));
        assert_eq!(seen.lookup(&FileId { ctime: (6, 8), ..id }), None, "a changed ctime is another file");
        assert_eq!(Seen::load(&dir.join("missing")).lookup(&id), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
