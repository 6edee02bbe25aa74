//! The in-memory HNSW index and its bookkeeping.

use deja_api::{CacheKey, ContextFingerprint};
use deja_embed::cosine;
use deja_store::{Store, StoreError};
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Groups this small are scanned exactly; larger ones get their own graph.
const EXACT_SCAN_MAX: usize = 128;
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 64;
/// Changes kept for replay while a rebuild runs. Past this many, the rebuild
/// is abandoned (the current index has every change) and another is asked for.
const PENDING_LIMIT: usize = 20_000;

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

enum Change {
    Insert(CacheKey, [u8; 32], Vec<f32>),
    Remove(CacheKey),
}

/// Changes made while a rebuild runs, replayed on the new index.
#[derive(Default)]
struct ChangeLog {
    changes: Vec<Change>,
    overflowed: bool,
}

/// The entries one context fingerprint may match: a list while small, with
/// an HNSW graph of their own once large. A graph per fingerprint means a
/// search never wades through other tenants' or other contexts' vectors.
///
/// Slots are HNSW data ids. A slot is live while `slot_of[ids[slot]] == slot`;
/// replaced and removed slots stay in the graph as tombstones until a
/// rebuild. Without a graph there are no tombstones: `ids` holds live ids only.
#[derive(Default)]
struct Group {
    ids: Vec<CacheKey>,
    slot_of: HashMap<CacheKey, usize>,
    graph: Option<Graph>,
    /// Taken out of the index while empty: whoever still holds it must look again.
    retired: bool,
}

impl Group {
    fn is_live(&self, slot: usize) -> bool {
        self.ids.get(slot).is_some_and(|id| self.slot_of.get(id) == Some(&slot))
    }

    /// Returns whether an older slot of the same id became a tombstone.
    fn insert(&mut self, store: &Store, id: CacheKey, vector: &[f32]) -> Result<bool, StoreError> {
        let replaced = self.remove(&id);
        let slot = self.ids.len();
        self.ids.push(id);
        self.slot_of.insert(id, slot);
        match &self.graph {
            Some(graph) => graph.insert_slice((vector, slot)),
            None if self.slot_of.len() > EXACT_SCAN_MAX => {
                let graph = new_graph(self.slot_of.len() * 2);
                for (m, member) in self.ids.iter().enumerate() {
                    if m == slot {
                        graph.insert_slice((vector, slot));
                    } else if let Some(v) = store.vector(member)? {
                        graph.insert_slice((&v, m));
                    }
                }
                self.graph = Some(graph);
            }
            None => {}
        }
        Ok(replaced)
    }

    /// Returns whether a slot became a tombstone.
    fn remove(&mut self, id: &CacheKey) -> bool {
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
}

type Groups = HashMap<[u8; 32], Arc<RwLock<Group>>>;

/// The semantic index: one [`Group`] per context fingerprint, each behind its
/// own lock, so building or searching one context's graph never waits on
/// another's. The map of groups is locked only to look a group up or add one.
pub struct SemanticIndex {
    groups: RwLock<Groups>,
    /// The fingerprint each live id is indexed under, to remove it by id.
    located: Mutex<HashMap<CacheKey, [u8; 32]>>,
    tombstones: AtomicUsize,
    /// Held for reading by each change while it is applied and logged, and
    /// for writing by a rebuild while it replays the log and swaps the
    /// groups: a change lands in the old index and the log, or in the new
    /// index, never in neither. Searches do not take it.
    changes: RwLock<()>,
    /// `Some` while a rebuild runs.
    pending: Mutex<Option<ChangeLog>>,
    pending_limit: usize,
    /// Set when a rebuild was abandoned.
    rebuild_wanted: AtomicBool,
    /// One rebuild at a time.
    rebuilding: Mutex<()>,
}

impl Default for SemanticIndex {
    fn default() -> Self {
        Self::new()
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SemanticIndex {
    pub fn new() -> Self {
        Self::with_pending_limit(PENDING_LIMIT)
    }

    /// An index that keeps at most `limit` changes for replay during a rebuild.
    pub fn with_pending_limit(limit: usize) -> Self {
        Self {
            groups: RwLock::default(),
            located: Mutex::default(),
            tombstones: AtomicUsize::new(0),
            changes: RwLock::new(()),
            pending: Mutex::new(None),
            pending_limit: limit,
            rebuild_wanted: AtomicBool::new(false),
            rebuilding: Mutex::new(()),
        }
    }

    fn log(&self, change: Change) {
        let mut pending = lock(&self.pending);
        let Some(log) = pending.as_mut() else { return };
        if log.overflowed {
            return;
        }
        if log.changes.len() >= self.pending_limit {
            log.overflowed = true;
            log.changes = Vec::new();
        } else {
            log.changes.push(change);
        }
    }

    fn group(&self, fp: &[u8; 32]) -> Option<Arc<RwLock<Group>>> {
        read(&self.groups).get(fp).cloned()
    }

    fn group_or_new(&self, fp: [u8; 32]) -> Arc<RwLock<Group>> {
        if let Some(g) = self.group(&fp) {
            return g;
        }
        write(&self.groups).entry(fp).or_default().clone()
    }

    fn tombstone(&self, dead: bool) {
        if dead {
            self.tombstones.fetch_add(1, Ordering::Relaxed);
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
        let _change = read(&self.changes);
        self.log(Change::Insert(id, fingerprint.0, vector.to_vec()));
        let previous = lock(&self.located).insert(id, fingerprint.0);
        if let Some(previous) = previous.filter(|p| *p != fingerprint.0) {
            self.remove_from_group(&previous, &id);
        }
        loop {
            let group = self.group_or_new(fingerprint.0);
            let mut g = write(&group);
            if g.retired {
                continue;
            }
            let dead = g.insert(store, id, vector)?;
            self.tombstone(dead);
            return Ok(());
        }
    }

    pub fn remove(&self, id: &CacheKey) {
        let _change = read(&self.changes);
        self.log(Change::Remove(*id));
        let Some(fp) = lock(&self.located).remove(id) else { return };
        self.remove_from_group(&fp, id);
    }

    fn remove_from_group(&self, fp: &[u8; 32], id: &CacheKey) {
        let Some(group) = self.group(fp) else { return };
        let emptied = {
            let mut g = write(&group);
            let dead = g.remove(id);
            self.tombstone(dead);
            g.slot_of.is_empty()
        };
        if emptied {
            // An empty group leaves the map, unless someone is using it right now.
            let mut groups = write(&self.groups);
            let retire = groups.get(fp).is_some_and(|g| {
                g.try_write().is_ok_and(|mut g| {
                    g.retired = g.slot_of.is_empty();
                    g.retired
                })
            });
            if retire {
                groups.remove(fp);
            }
        }
    }

    /// Live entries in the index.
    pub fn len(&self) -> usize {
        lock(&self.located).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn tombstones(&self) -> usize {
        self.tombstones.load(Ordering::Relaxed)
    }

    /// True when dead slots are a quarter of the graph (and more than a few),
    /// or when the last rebuild had to be abandoned.
    pub fn needs_rebuild(&self) -> bool {
        let dead = self.tombstones();
        self.rebuild_wanted.load(Ordering::Relaxed) || (dead > 1024 && dead * 4 > self.len())
    }

    /// Nearest live slots with this fingerprint, most similar first.
    pub fn search(
        &self,
        store: &Store,
        fingerprint: &ContextFingerprint,
        vector: &[f32],
        k: usize,
    ) -> Result<Vec<Candidate>, StoreError> {
        let Some(group) = self.group(&fingerprint.0) else { return Ok(Vec::new()) };
        let g = read(&group);
        let mut out = Vec::with_capacity(k);
        match &g.graph {
            None => {
                for id in &g.ids {
                    if let Some(v) = store.vector(id)? {
                        out.push(Candidate { id: *id, similarity: cosine(vector, &v) });
                    }
                }
            }
            Some(graph) => {
                // Ask for a few extra: tombstones are dropped after the search.
                let want = k * 2 + 4;
                for n in graph.search(vector, want, want.max(64)) {
                    if let Some(&id) = g.ids.get(n.d_id).filter(|_| g.is_live(n.d_id)) {
                        out.push(Candidate { id, similarity: 1.0 - n.distance });
                    }
                }
            }
        }
        out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        out.truncate(k);
        Ok(out)
    }

    /// Replaces the index with one built from the store's vectors, replaying
    /// whatever changed while it was being built. Lookups go on meanwhile;
    /// changes wait only for the replay and the swap. If more changed than
    /// can be kept for replay, the current index (which has every change) is
    /// kept and [`SemanticIndex::needs_rebuild`] asks for another. Returns the
    /// live size.
    pub fn rebuild_from(&self, store: &Store) -> Result<usize, StoreError> {
        let _one = lock(&self.rebuilding);
        *lock(&self.pending) = Some(ChangeLog::default());
        let built = Self::build(store);
        let _changes = write(&self.changes);
        let log = lock(&self.pending).take().unwrap_or_default();
        let (mut groups, mut located) = built?;
        if log.overflowed {
            self.rebuild_wanted.store(true, Ordering::Relaxed);
            tracing::warn!(
                limit = self.pending_limit,
                "the semantic index changed too much while rebuilding; keeping the current one"
            );
            return Ok(self.len());
        }
        let mut dead = 0;
        for change in log.changes {
            match change {
                Change::Insert(id, fp, v) => {
                    if let Some(previous) = located.insert(id, fp).filter(|p| *p != fp) {
                        dead += usize::from(groups.get_mut(&previous).is_some_and(|g| g.remove(&id)));
                    }
                    dead += usize::from(groups.entry(fp).or_default().insert(store, id, &v)?);
                }
                Change::Remove(id) => {
                    if let Some(fp) = located.remove(&id) {
                        dead += usize::from(groups.get_mut(&fp).is_some_and(|g| g.remove(&id)));
                    }
                }
            }
        }
        groups.retain(|_, g| !g.slot_of.is_empty());
        let live = located.len();
        *write(&self.groups) = groups.into_iter().map(|(fp, g)| (fp, Arc::new(RwLock::new(g)))).collect();
        *lock(&self.located) = located;
        self.tombstones.store(dead, Ordering::Relaxed);
        self.rebuild_wanted.store(false, Ordering::Relaxed);
        Ok(live)
    }

    #[allow(clippy::type_complexity)]
    fn build(store: &Store) -> Result<(HashMap<[u8; 32], Group>, HashMap<CacheKey, [u8; 32]>), StoreError> {
        let mut by_fp: HashMap<[u8; 32], Vec<(CacheKey, Vec<f32>)>> = HashMap::new();
        for v in store.vectors() {
            let v = v?;
            by_fp.entry(v.fingerprint).or_default().push((v.id, v.vector));
        }
        let mut groups = HashMap::with_capacity(by_fp.len());
        let mut located = HashMap::new();
        for (fp, members) in by_fp {
            let mut group = Group::default();
            for (slot, (id, _)) in members.iter().enumerate() {
                group.ids.push(*id);
                group.slot_of.insert(*id, slot);
                located.insert(*id, fp);
            }
            if members.len() > EXACT_SCAN_MAX {
                let graph = new_graph(members.len() * 2);
                let data: Vec<(&Vec<f32>, usize)> = members.iter().enumerate().map(|(s, (_, v))| (v, s)).collect();
                graph.parallel_insert(&data);
                group.graph = Some(graph);
            }
            groups.insert(fp, group);
        }
        Ok((groups, located))
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
