//! The in-memory HNSW index and its bookkeeping.

use deja_api::{CacheKey, ContextFingerprint};
use deja_embed::cosine;
use deja_store::{Store, StoreError};
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

/// Groups this small are scanned exactly; larger ones get their own graph.
const EXACT_SCAN_MAX: usize = 128;
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 64;

/// Cosine distance for unit vectors: `1 - dot`, clamped at 0 so rounding on
/// identical vectors never goes negative.
#[derive(Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - cosine(va, vb)).max(0.0)
    }
}

type Graph = Hnsw<'static, f32, UnitCosine>;

fn new_graph(capacity: usize) -> Graph {
    Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: CacheKey,
    pub similarity: f32,
}

enum Pending {
    Insert(CacheKey, [u8; 32], Vec<f32>),
    Remove(CacheKey),
}

/// The entries one context fingerprint may match: a list while small, with
/// an HNSW graph of their own once large. A graph per fingerprint means a
/// search never wades through other tenants' or other contexts' vectors.
#[derive(Default)]
struct Group {
    members: Vec<usize>,
    graph: Option<Graph>,
}

/// Slots are HNSW data ids. A slot is live while `slot_of[ids[slot]] == slot`;
/// replaced and removed slots stay in their graph as tombstones until a rebuild.
#[derive(Default)]
struct Inner {
    ids: Vec<CacheKey>,
    fingerprints: Vec<[u8; 32]>,
    groups: HashMap<[u8; 32], Group>,
    slot_of: HashMap<CacheKey, usize>,
}

impl Inner {
    fn is_live(&self, slot: usize) -> bool {
        self.slot_of.get(&self.ids[slot]) == Some(&slot)
    }

    /// Returns whether an older slot of the same id became a tombstone.
    fn insert(&mut self, store: &Store, id: CacheKey, fp: [u8; 32], vector: &[f32]) -> Result<bool, StoreError> {
        let replaced = self.remove(&id);
        let slot = self.ids.len();
        self.ids.push(id);
        self.fingerprints.push(fp);
        self.slot_of.insert(id, slot);
        let group = self.groups.entry(fp).or_default();
        group.members.push(slot);
        match &group.graph {
            Some(graph) => graph.insert_slice((vector, slot)),
            None if group.members.len() > EXACT_SCAN_MAX => {
                let graph = new_graph(group.members.len() * 2);
                for &m in &group.members {
                    if m == slot {
                        graph.insert_slice((vector, slot));
                    } else if let Some(v) = store.vector(&self.ids[m])? {
                        graph.insert_slice((&v, m));
                    }
                }
                group.graph = Some(graph);
            }
            None => {}
        }
        Ok(replaced)
    }

    fn remove(&mut self, id: &CacheKey) -> bool {
        let Some(slot) = self.slot_of.remove(id) else { return false };
        let fp = self.fingerprints[slot];
        if let Some(group) = self.groups.get_mut(&fp) {
            group.members.retain(|s| *s != slot);
            if group.members.is_empty() {
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
        Self { inner: RwLock::new(Inner::default()), tombstones: Default::default(), pending: Mutex::new(None) }
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

    /// Indexes `vector` for `id`. The store is read when a group grows large
    /// enough to get its own graph.
    pub fn insert(
        &self,
        store: &Store,
        id: CacheKey,
        fingerprint: &ContextFingerprint,
        vector: &[f32],
    ) -> Result<(), StoreError> {
        if self.write().insert(store, id, fingerprint.0, vector)? {
            self.tombstones.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.log(Pending::Insert(id, fingerprint.0, vector.to_vec()));
        Ok(())
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
        match &group.graph {
            None => {
                for &slot in &group.members {
                    let id = inner.ids[slot];
                    if let Some(v) = store.vector(&id)? {
                        out.push(Candidate { id, similarity: cosine(vector, &v) });
                    }
                }
            }
            Some(graph) => {
                // Ask for a few extra: tombstones are dropped after the search.
                let want = k * 2 + 4;
                for n in graph.search(vector, want, want.max(64)) {
                    if inner.is_live(n.d_id) {
                        out.push(Candidate { id: inner.ids[n.d_id], similarity: 1.0 - n.distance });
                    }
                }
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
                    fresh.insert(store, id, fp, &v)?;
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
        let mut inner = Inner::default();
        for (slot, v) in vectors.iter().enumerate() {
            inner.ids.push(v.id);
            inner.fingerprints.push(v.fingerprint);
            inner.groups.entry(v.fingerprint).or_default().members.push(slot);
            inner.slot_of.insert(v.id, slot);
        }
        for group in inner.groups.values_mut().filter(|g| g.members.len() > EXACT_SCAN_MAX) {
            let graph = new_graph(group.members.len() * 2);
            let data: Vec<(&Vec<f32>, usize)> = group.members.iter().map(|&s| (&vectors[s].vector, s)).collect();
            graph.parallel_insert(&data);
            group.graph = Some(graph);
        }
        Ok(inner)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
