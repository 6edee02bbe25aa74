//! The record of a saved index: which store it belongs to, the change
//! number it reflects, every group's slots, and each graph's files with
//! their lengths and blake3 hashes. Written last, to a temporary name,
//! synced, then renamed over the previous one: a crash leaves the old record
//! or the new one, never a mix. The whole record is hashed too, so a torn or
//! edited one is refused rather than half-read.

use deja_api::CacheKey;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Version 02: graphs hold `i8` vectors. A record of another version is
/// refused, and the index rebuilt from the store.
const MAGIC: &[u8; 8] = b"DEJAIX02";
pub(super) const FILE: &str = "manifest";
const TEMP: &str = "manifest.tmp";

/// The files hnsw_rs wrote for one graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GraphFiles {
    /// hnsw_rs's basename: `{basename}.hnsw.graph` and `{basename}.hnsw.data`.
    pub basename: String,
    /// Points in the graph (slots whose vector was missing have none).
    pub points: u64,
    pub graph: FileDigest,
    pub data: FileDigest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileDigest {
    pub len: u64,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SavedGroup {
    pub fingerprint: [u8; 32],
    /// Every slot's id, dead ones included (they are still in the graph).
    pub ids: Vec<CacheKey>,
    pub live: Vec<bool>,
    pub graph: Option<GraphFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Manifest {
    pub instance: [u8; 16],
    /// Every vector change numbered at or below this is reflected.
    pub seq: u64,
    pub groups: Vec<SavedGroup>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.instance);
        put_u64(&mut out, self.seq);
        put_u64(&mut out, self.groups.len() as u64);
        for g in &self.groups {
            out.extend_from_slice(&g.fingerprint);
            put_u64(&mut out, g.ids.len() as u64);
            for (id, live) in g.ids.iter().zip(&g.live) {
                out.extend_from_slice(&id.0);
                out.push(u8::from(*live));
            }
            match &g.graph {
                None => out.push(0),
                Some(files) => {
                    out.push(1);
                    put_u64(&mut out, files.basename.len() as u64);
                    out.extend_from_slice(files.basename.as_bytes());
                    put_u64(&mut out, files.points);
                    for d in [&files.graph, &files.data] {
                        put_u64(&mut out, d.len);
                        out.extend_from_slice(&d.hash);
                    }
                }
            }
        }
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    /// `None` for anything but a whole, untouched record.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, hash) = bytes.split_last_chunk::<32>()?;
        if blake3::hash(body).as_bytes() != hash {
            return None;
        }
        let mut r = Reader(body);
        if r.take::<8>()? != *MAGIC {
            return None;
        }
        let instance = r.take::<16>()?;
        let seq = r.u64()?;
        let n_groups = r.count(32 + 8 + 1)?;
        let mut groups = Vec::with_capacity(n_groups);
        for _ in 0..n_groups {
            let fingerprint = r.take::<32>()?;
            let n = r.count(33)?;
            let mut ids = Vec::with_capacity(n);
            let mut live = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(CacheKey(r.take::<32>()?));
                live.push(r.take::<1>()? != [0]);
            }
            let graph = match r.take::<1>()? {
                [0] => None,
                [1] => {
                    let len = r.count(1)?;
                    let basename = String::from_utf8(r.bytes(len)?.to_vec()).ok()?;
                    let points = r.u64()?;
                    let graph = FileDigest { len: r.u64()?, hash: r.take::<32>()? };
                    let data = FileDigest { len: r.u64()?, hash: r.take::<32>()? };
                    Some(GraphFiles { basename, points, graph, data })
                }
                _ => return None,
            };
            groups.push(SavedGroup { fingerprint, ids, live, graph });
        }
        r.0.is_empty().then_some(Self { instance, seq, groups })
    }

    /// Writes the record durably: temporary file, sync, rename, sync the directory.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let temp = dir.join(TEMP);
        let mut f = File::create(&temp)?;
        f.write_all(&self.encode())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&temp, dir.join(FILE))?;
        sync_dir(dir)
    }

    /// `Ok(None)` when there is no record; `Err` for one that cannot be trusted.
    pub fn read(dir: &Path) -> std::io::Result<Option<Self>> {
        let bytes = match std::fs::read(dir.join(FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Self::decode(&bytes)
            .map(Some)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "the index record is damaged"))
    }
}

/// Makes a rename in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs a file hnsw_rs wrote and returns its length and hash.
pub(super) fn digest(path: &Path, sync: bool) -> std::io::Result<FileDigest> {
    let mut f = File::open(path)?;
    if sync {
        f.sync_all()?;
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
    Ok(FileDigest { len, hash: *hasher.finalize().as_bytes() })
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    /// A count of items at least `each` bytes long: refused if the rest of
    /// the record could not hold them, so a bad count never allocates.
    fn count(&mut self, each: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(each)? <= self.0.len()).then_some(n)
    }
}
