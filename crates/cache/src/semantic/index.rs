//! The in-memory HNSW index and its bookkeeping.

use deja_api::{CacheKey, ContextFingerprint};
use deja_store::{Store, StoreError};
use hnsw_rs::prelude::{DistCosine, Hnsw};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// Groups this small are scanned exactly: cheaper than a filtered graph walk,
/// and a filtered HNSW search can miss members of a small group.
const EXACT_SCAN_MAX: usize = 128;
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: CacheKey,
    pub similarity: f32,
}

enum Pending {
    Insert(CacheKey, [u8; 32], Vec<f32>),
    Remove(CacheKey),
}

/// Slots are HNSW data ids. A slot is live while `slot_of[ids[slot]] == slot`;
/// replaced and removed slots stay in the graph as tombstones until a rebuild.
struct Inner {
    hnsw: Hnsw<'static, f32, DistCosine>,
    ids: Vec<CacheKey>,
    fingerprints: Vec<[u8; 32]>,
    groups: HashMap<[u8; 32], Vec<usize>>,
    slot_of: HashMap<CacheKey, usize>,
}

impl Inner {
    fn new(capacity: usize) -> Self {
        Self {
            hnsw: Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, DistCosine),
            ids: Vec::new(),
            fingerprints: Vec::new(),
            groups: HashMap::new(),
            slot_of: HashMap::new(),
        }
    }

    /// Returns whether an older slot of the same id became a tombstone.
    fn insert(&mut self, id: CacheKey, fp: [u8; 32], vector: &[f32]) -> bool {
        let replaced = self.remove(&id);
        let slot = self.ids.len();
        self.ids.push(id);
        self.fingerprints.push(fp);
        self.groups.entry(fp).or_default().push(slot);
        self.slot_of.insert(id, slot);
        self.hnsw.insert_slice((vector, slot));
        replaced
    }

    fn remove(&mut self, id: &CacheKey) -> bool {
        let Some(slot) = self.slot_of.remove(id) else { return false };
        let fp = self.fingerprints[slot];
        if let Some(group) = self.groups.get_mut(&fp) {
            group.retain(|s| *s != slot);
            if group.is_empty() {
                self.groups.remove(&fp);
            }
        }
        true
    }
}

pub struct SemanticIndex {
    inner: RwLock<Inner>,
    tombstones: std::sync::atomic::AtomicUsize,
    /// `Some` while a rebuild runs: changes to replay on the new index.
    pending: Mutex<Option<Vec<Pending>>>,
}

impl Default for SemanticIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl SemanticIndex {
    pub fn new() -> Self {
        Self { inner: RwLock::new(Inner::new(1024)), tombstones: Default::default(), pending: Mutex::new(None) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, op: Pending) {
        if let Some(ops) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            ops.push(op);
        }
    }

    pub fn insert(&self, id: CacheKey, fingerprint: &ContextFingerprint, vector: &[f32]) {
        if self.write().insert(id, fingerprint.0, vector) {
            self.tombstones.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.log(Pending::Insert(id, fingerprint.0, vector.to_vec()));
    }

    pub fn remove(&self, id: &CacheKey) {
        if self.write().remove(id) {
            self.tombstones.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.log(Pending::Remove(*id));
    }

    /// Live entries in the index.
    pub fn len(&self) -> usize {
        self.read().slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn tombstones(&self) -> usize {
        self.tombstones.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// True when dead slots are a quarter of the graph (and more than a few).
    pub fn needs_rebuild(&self) -> bool {
        let dead = self.tombstones();
        dead > 1024 && dead * 4 > self.len()
    }

    /// Nearest live slots with this fingerprint, most similar first.
    pub fn search(
        &self,
        store: &Store,
        fingerprint: &ContextFingerprint,
        vector: &[f32],
        k: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let inner = self.read();
        let Some(group) = inner.groups.get(&fingerprint.0) else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(k);
        if group.len() <= EXACT_SCAN_MAX {
            for &slot in group {
                let id = inner.ids[slot];
                if let Some(v) = store.vector(&id)? {
                    out.push(Candidate { id, similarity: deja_embed::cosine(vector, &v) });
                }
            }
        } else {
            let fp = fingerprint.0;
            let filter =
                |slot: &usize| inner.fingerprints[*slot] == fp && inner.slot_of.get(&inner.ids[*slot]) == Some(slot);
            let ef = (k * 8).max(64);
            for n in inner.hnsw.search_filter(vector, k, ef, Some(&filter)) {
                out.push(Candidate { id: inner.ids[n.d_id], similarity: 1.0 - n.distance });
            }
        }
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.truncate(k);
        Ok(out)
    }

    /// Replaces the index with one built from the store's vectors, replaying
    /// whatever changed while it was being built. Returns the live size.
    pub fn rebuild_from(&self, store: &Store) -> Result<usize, StoreError> {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        let built = Self::build(store);
        let ops = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        let mut fresh = built?;
        for op in ops {
            match op {
                Pending::Insert(id, fp, v) => {
                    fresh.insert(id, fp, &v);
                }
                Pending::Remove(id) => {
                    fresh.remove(&id);
                }
            }
        }
        let live = fresh.slot_of.len();
        *self.write() = fresh;
        self.tombstones.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(live)
    }

    fn build(store: &Store) -> Result<Inner, StoreError> {
        let vectors: Vec<_> = store.vectors().collect::<Result<_, _>>()?;
        let mut inner = Inner::new(vectors.len());
        for (slot, v) in vectors.iter().enumerate() {
            inner.ids.push(v.id);
            inner.fingerprints.push(v.fingerprint);
            inner.groups.entry(v.fingerprint).or_default().push(slot);
            inner.slot_of.insert(v.id, slot);
        }
        let data: Vec<(&Vec<f32>, usize)> = vectors.iter().enumerate().map(|(slot, v)| (&v.vector, slot)).collect();
        inner.hnsw.parallel_insert(&data);
        Ok(inner)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
