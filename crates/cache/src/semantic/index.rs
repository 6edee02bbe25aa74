//! The in-memory HNSW index and its bookkeeping.

use super::group::{new_graph, Group, EXACT_SCAN_MAX};
use super::saved::Persisted;
use deja_api::{CacheKey, ContextFingerprint};
use deja_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Changes kept for replay while a rebuild runs. Past this many, the rebuild
/// is abandoned (the current index has every change) and another is asked for.
const PENDING_LIMIT: usize = 20_000;
/// HNSW's `ef` at search time unless configured (`cache.semantic.search_breadth`).
pub const DEFAULT_SEARCH_BREADTH: usize = 64;

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

/// Groups and where each live id is, as a rebuild or a restore builds them.
#[derive(Default)]
pub(super) struct Built {
    pub groups: HashMap<[u8; 32], Group>,
    pub located: HashMap<CacheKey, [u8; 32]>,
}

impl Built {
    /// Applies one change; returns how many slots became tombstones.
    pub fn insert(&mut self, store: &Store, id: CacheKey, fp: [u8; 32], v: &[f32]) -> Result<usize, StoreError> {
        let mut dead = 0;
        if let Some(previous) = self.located.insert(id, fp).filter(|p| *p != fp) {
            dead += usize::from(self.groups.get_mut(&previous).is_some_and(|g| g.remove(&id)));
        }
        dead += usize::from(self.groups.entry(fp).or_default().insert(store, id, v)?);
        Ok(dead)
    }

    pub fn remove(&mut self, id: &CacheKey) -> usize {
        match self.located.remove(id) {
            Some(fp) => usize::from(self.groups.get_mut(&fp).is_some_and(|g| g.remove(id))),
            None => 0,
        }
    }
}

pub(super) type Groups = HashMap<[u8; 32], Arc<RwLock<Group>>>;

/// The semantic index: one [`Group`] per context fingerprint, each behind its
/// own lock, so building or searching one context's graph never waits on
/// another's. The map of groups is locked only to look a group up or add one.
pub struct SemanticIndex {
    pub(super) groups: RwLock<Groups>,
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
    /// One rebuild, restore or save at a time.
    pub(super) rebuilding: Mutex<()>,
    /// Inserts and removals since the last save.
    pub(super) changed: AtomicU64,
    /// What was saved, and the counters behind [`SemanticIndex::stats`].
    pub(super) persisted: Mutex<Persisted>,
    /// How many graph nodes a search keeps in view (HNSW's `ef`); see
    /// [`SemanticIndex::set_search_breadth`].
    search_breadth: AtomicUsize,
}

impl Default for SemanticIndex {
    fn default() -> Self {
        Self::new()
    }
}

pub(super) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            changed: AtomicU64::new(0),
            search_breadth: AtomicUsize::new(DEFAULT_SEARCH_BREADTH),
            persisted: Mutex::default(),
        }
    }

    fn log(&self, change: Change) {
        self.changed.fetch_add(1, Ordering::Relaxed);
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

    #[cfg(test)]
    pub(super) fn group_for_tests(&self, fp: &ContextFingerprint) -> Arc<RwLock<Group>> {
        self.group(&fp.0).unwrap_or_default()
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
            g.is_empty()
        };
        if emptied {
            // An empty group leaves the map, unless someone is using it right now.
            let mut groups = write(&self.groups);
            let retire = groups.get(fp).is_some_and(|g| {
                g.try_write().is_ok_and(|mut g| {
                    g.retired = g.is_empty();
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

    /// Sets how many graph nodes a search keeps in view: wider finds the true
    /// nearest entry more often in large groups, at a cost in latency.
    /// Small groups are scanned exactly whatever it is.
    pub fn set_search_breadth(&self, ef: usize) {
        self.search_breadth.store(ef.max(1), Ordering::Relaxed);
    }

    pub fn search_breadth(&self) -> usize {
        self.search_breadth.load(Ordering::Relaxed)
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
        let found = read(&group).search(store, vector, k, self.search_breadth())?;
        let mut out: Vec<Candidate> = found.into_iter().map(|(id, similarity)| Candidate { id, similarity }).collect();
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
        // Every change numbered up to here is in what the scan reads.
        let seq = store.vector_seq();
        let live = self.replace(store, || Self::build(store, |_| true))?;
        if let Some(live) = live {
            self.rebuilt(seq);
            return Ok(live);
        }
        Ok(self.len())
    }

    /// Swaps in what `build` makes, replaying the changes made meanwhile.
    /// `None` when too much changed and the current index was kept. The
    /// caller holds `rebuilding`.
    pub(super) fn replace<E: From<StoreError>>(
        &self,
        store: &Store,
        build: impl FnOnce() -> Result<Built, E>,
    ) -> Result<Option<usize>, E> {
        *lock(&self.pending) = Some(ChangeLog::default());
        let built = build();
        let _changes = write(&self.changes);
        let log = lock(&self.pending).take().unwrap_or_default();
        let mut built = built?;
        if log.overflowed {
            self.rebuild_wanted.store(true, Ordering::Relaxed);
            tracing::warn!(
                limit = self.pending_limit,
                "the semantic index changed too much while rebuilding; keeping the current one"
            );
            return Ok(None);
        }
        for change in log.changes {
            match change {
                Change::Insert(id, fp, v) => {
                    built.insert(store, id, fp, &v)?;
                }
                Change::Remove(id) => {
                    built.remove(&id);
                }
            }
        }
        built.groups.retain(|_, g| !g.is_empty());
        let dead = built.groups.values().map(Group::dead).sum();
        let live = built.located.len();
        *write(&self.groups) = built.groups.into_iter().map(|(fp, g)| (fp, Arc::new(RwLock::new(g)))).collect();
        *lock(&self.located) = built.located;
        self.tombstones.store(dead, Ordering::Relaxed);
        self.rebuild_wanted.store(false, Ordering::Relaxed);
        Ok(Some(live))
    }

    /// Groups for the store's vectors whose fingerprint `wanted` accepts.
    pub(super) fn build(store: &Store, wanted: impl Fn(&[u8; 32]) -> bool) -> Result<Built, StoreError> {
        // Quantized as read: a large store's vectors never sit here as f32.
        let mut by_fp: HashMap<[u8; 32], Vec<(CacheKey, Vec<i8>)>> = HashMap::new();
        for v in store.vectors() {
            let v = v?;
            if wanted(&v.fingerprint) {
                by_fp.entry(v.fingerprint).or_default().push((v.id, super::group::quantize(&v.vector)));
            }
        }
        let mut built = Built { groups: HashMap::with_capacity(by_fp.len()), located: HashMap::new() };
        for (fp, members) in by_fp {
            let mut group = Group::default();
            for (slot, (id, _)) in members.iter().enumerate() {
                group.ids.push(*id);
                group.slot_of.insert(*id, slot);
                built.located.insert(*id, fp);
            }
            if members.len() > EXACT_SCAN_MAX {
                let graph = new_graph(members.len() * 2);
                let data: Vec<(&Vec<i8>, usize)> = members.iter().enumerate().map(|(s, (_, v))| (v, s)).collect();
                graph.parallel_insert(&data);
                group.graph = Some(Arc::new(graph));
                group.stamp = super::group::next_stamp();
            }
            built.groups.insert(fp, group);
        }
        Ok(built)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
