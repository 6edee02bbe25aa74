//! One context fingerprint's candidates: a list while small, with an HNSW
//! graph of their own once large.
//!
//! A graph holds its vectors quantized to `i8` (a unit vector's components
//! times 127): a quarter of the memory of `f32`, and a faster distance. The
//! graph only proposes candidates; their similarity is computed exactly
//! from the stored `f32` vectors, so every serve decision is made on the
//! exact cosine, as without quantization.

use deja_api::CacheKey;
use deja_embed::cosine;
use deja_store::{Store, StoreError};
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Groups this small are scanned exactly; larger ones get their own graph.
pub(super) const EXACT_SCAN_MAX: usize = 128;
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 64;

/// The scale of a quantized component: `x` in [-1, 1] is stored as `round(127·x)`.
const QUANT_SCALE: f32 = 127.0;

/// A unit vector as a graph holds it.
pub(super) fn quantize(v: &[f32]) -> Vec<i8> {
    v.iter().map(|x| (x * QUANT_SCALE).round().clamp(-QUANT_SCALE, QUANT_SCALE) as i8).collect()
}

/// Cosine distance between quantized unit vectors: `1 - dot / 127²`,
/// clamped at 0 since rounding can push a vector's norm past 1.
#[derive(Default, Clone, Copy)]
pub struct QuantizedCosine;

impl Distance<i8> for QuantizedCosine {
    fn eval(&self, va: &[i8], vb: &[i8]) -> f32 {
        let dot: i32 = va.iter().zip(vb).map(|(a, b)| i32::from(*a) * i32::from(*b)).sum();
        (1.0 - dot as f32 / (QUANT_SCALE * QUANT_SCALE)).max(0.0)
    }
}

pub(super) type Graph = Hnsw<'static, i8, QuantizedCosine>;

pub(super) fn new_graph(capacity: usize) -> Graph {
    Hnsw::new(MAX_CONNECTIONS, capacity.max(1024), MAX_LAYERS, EF_CONSTRUCTION, QuantizedCosine)
}

/// Stamps every state a graph goes through, process-wide: a graph whose
/// stamp is the one it was saved with is unchanged since.
static STAMPS: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_stamp() -> u64 {
    STAMPS.fetch_add(1, Ordering::Relaxed)
}

/// The entries one context fingerprint may match. A graph per fingerprint
/// means a search never wades through other tenants' or other contexts'
/// vectors.
///
/// Slots are HNSW data ids. A slot is live while `slot_of[ids[slot]] == slot`;
/// replaced and removed slots stay in the graph as tombstones until a
/// rebuild. Without a graph there are no tombstones: `ids` holds live ids only.
#[derive(Default)]
pub(super) struct Group {
    pub ids: Vec<CacheKey>,
    pub slot_of: HashMap<CacheKey, usize>,
    pub graph: Option<Arc<Graph>>,
    /// Taken out of the index while empty: whoever still holds it must look again.
    pub retired: bool,
    /// `Some` while the graph is being saved: the graph must not change, so
    /// vectors added meanwhile wait here, and searches scan them exactly.
    pub deferred: Option<Vec<(CacheKey, Vec<f32>)>>,
    /// Changes with every graph insertion (see [`next_stamp`]).
    pub stamp: u64,
}

impl Group {
    pub fn is_live(&self, slot: usize) -> bool {
        self.ids.get(slot).is_some_and(|id| self.slot_of.get(id) == Some(&slot))
    }

    /// No live entry, not even one waiting for a save to finish.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty() && self.deferred.as_ref().is_none_or(Vec::is_empty)
    }

    /// Returns whether an older slot of the same id became a tombstone.
    pub fn insert(&mut self, store: &Store, id: CacheKey, vector: &[f32]) -> Result<bool, StoreError> {
        let replaced = self.remove(&id);
        if let Some(deferred) = &mut self.deferred {
            deferred.push((id, vector.to_vec()));
            return Ok(replaced);
        }
        let slot = self.ids.len();
        self.ids.push(id);
        self.slot_of.insert(id, slot);
        match &self.graph {
            Some(graph) => {
                graph.insert_slice((&quantize(vector), slot));
                self.stamp = next_stamp();
            }
            None if self.slot_of.len() > EXACT_SCAN_MAX => {
                let graph = new_graph(self.slot_of.len() * 2);
                for (m, member) in self.ids.iter().enumerate() {
                    if m == slot {
                        graph.insert_slice((&quantize(vector), slot));
                    } else if let Some(v) = store.vector(member)? {
                        graph.insert_slice((&quantize(&v), m));
                    }
                }
                self.graph = Some(Arc::new(graph));
                self.stamp = next_stamp();
            }
            None => {}
        }
        Ok(replaced)
    }

    /// Returns whether a slot became a tombstone.
    pub fn remove(&mut self, id: &CacheKey) -> bool {
        if let Some(deferred) = &mut self.deferred {
            deferred.retain(|(d, _)| d != id);
        }
        let Some(slot) = self.slot_of.remove(id) else { return false };
        if self.graph.is_some() {
            return true;
        }
        self.ids.swap_remove(slot);
        if let Some(moved) = self.ids.get(slot) {
            self.slot_of.insert(*moved, slot);
        }
        false
    }

    /// Stops the graph from changing (for a save) and returns it.
    pub fn freeze(&mut self) -> Option<Arc<Graph>> {
        let graph = self.graph.clone()?;
        self.deferred.get_or_insert_with(Vec::new);
        Some(graph)
    }

    /// Lets the graph change again, adding what waited meanwhile.
    pub fn thaw(&mut self, store: &Store) -> Result<(), StoreError> {
        let Some(deferred) = self.deferred.take() else { return Ok(()) };
        for (id, v) in deferred {
            self.insert(store, id, &v)?;
        }
        Ok(())
    }

    /// Whether each slot is live, for a save.
    pub fn live_flags(&self) -> Vec<bool> {
        (0..self.ids.len()).map(|slot| self.is_live(slot)).collect()
    }

    /// Dead slots still in the graph.
    pub fn dead(&self) -> usize {
        if self.graph.is_some() {
            self.ids.len().saturating_sub(self.slot_of.len())
        } else {
            0
        }
    }

    /// The `k`-ish nearest live entries, unsorted; a graph search keeps `ef`
    /// nodes in view.
    pub fn search(
        &self,
        store: &Store,
        vector: &[f32],
        k: usize,
        ef: usize,
    ) -> Result<Vec<(CacheKey, f32)>, StoreError> {
        let mut out = Vec::with_capacity(k);
        match &self.graph {
            None => {
                for id in &self.ids {
                    if let Some(v) = store.vector(id)? {
                        out.push((*id, cosine(vector, &v)));
                    }
                }
            }
            Some(graph) => {
                // Ask for a few extra: tombstones are dropped after the search.
                // The nearest `k` live ones, nearest first, are scored exactly.
                let want = k * 2 + 4;
                let live = graph
                    .search(&quantize(vector), want, want.max(ef))
                    .into_iter()
                    .filter_map(|n| self.ids.get(n.d_id).filter(|_| self.is_live(n.d_id)).copied());
                for id in live.take(k) {
                    if let Some(v) = store.vector(&id)? {
                        out.push((id, cosine(vector, &v)));
                    }
                }
                for (id, v) in self.deferred.iter().flatten() {
                    out.push((*id, cosine(vector, v)));
                }
            }
        }
        Ok(out)
    }
}
