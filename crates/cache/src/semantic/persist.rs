//! Saving the index next to the store, and loading it back at start-up
//! instead of rebuilding every graph from the `vectors` tree.
//!
//! A save writes each changed graph with hnsw_rs's own dump format, then a
//! [`Manifest`] naming the files (with their hashes), every group's slots,
//! and the store's change number the save reflects. A restore checks all of
//! it, loads the graphs, and looks again only at the ids the store's change
//! log lists after that number. A group whose files do not match the record
//! is rebuilt from the store; a record that cannot be trusted makes the
//! caller rebuild everything. sled stays the source of truth: every candidate
//! a search suggests is still re-read from `entries` and checked.
//!
//! Which change number a save may claim: the store's stable number `seq` is
//! read before any group is copied, so every change at or below it is in the
//! store. Callers update the index just after the store, so a few of those
//! changes may not have reached the copy yet; the save looks at every id the
//! log lists since the previous save and, for any whose stored vector is not
//! live under its fingerprint in the copy, claims a lower number, so the
//! next restore looks at it again. Ids the store no longer has a vector for
//! need nothing: a stale slot can only suggest an entry that the re-read
//! then refuses.

use super::group::{next_stamp, Graph, Group, QuantizedCosine};
use super::index::{lock, read, write, Built, SemanticIndex};
use super::manifest::{digest, GraphFiles, Manifest, SavedGroup};
use deja_api::CacheKey;
use deja_store::{Store, StoreError};
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// `IndexStats` lives in `saved.rs` with the record the index holds, so the
// index need not import this module; its public path here stays.
pub use super::saved::IndexStats;

/// Save once this many inserts and removals have piled up...
const SAVE_AFTER_CHANGES: u64 = 1_000;
/// ...or when any change is this old.
const SAVE_AT_LEAST_EVERY: Duration = Duration::from_secs(300);
/// Replaying more changes than this (and than half the saved entries) at
/// start-up costs about what a rebuild does: rebuild instead.
const REPLAY_MAX: usize = 20_000;

/// Where a store's saved index lives.
pub fn graphs_dir(store: &Store) -> Option<PathBuf> {
    store.path().map(|p| p.join("graphs"))
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("no saved index")]
    NoRecord,
    #[error("saved index: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("saved index: {0}")]
    Invalid(String),
    #[error("{0} entries changed since the index was saved: rebuilding is as fast")]
    TooManyChanges(usize),
    #[error("the index changed too much while it was being restored")]
    Busy,
}

/// What one save did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    pub seq: u64,
    pub graphs_written: usize,
    pub graphs_kept: usize,
    pub bytes: u64,
}

/// What one restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub entries: usize,
    pub graphs_loaded: usize,
    pub contexts_rebuilt: usize,
    pub replayed: usize,
}

enum ToSave {
    Nothing,
    Keep(u64, GraphFiles),
    Dump(u64, std::sync::Arc<Graph>),
}

impl SemanticIndex {
    /// Counters and sizes for operators.
    pub fn stats(&self) -> IndexStats {
        let groups: Vec<_> = read(&self.groups).values().cloned().collect();
        let (mut graphs, mut approx) = (0, 0u64);
        for g in &groups {
            let g = read(g);
            approx += g.ids.len() as u64 * 40 + g.slot_of.len() as u64 * 48;
            if let Some(graph) = &g.graph {
                graphs += 1;
                let dim = graph.get_point_indexation().get_data_dimension() as u64;
                // Each point: its quantized vector, about two layers' worth of links, bookkeeping.
                approx += graph.get_nb_point() as u64 * (dim + 2 * 16 * 24 + 96);
            }
        }
        let p = lock(&self.persisted);
        IndexStats {
            entries: self.len(),
            tombstones: self.tombstones(),
            contexts: groups.len(),
            graphs,
            unsaved_changes: self.changed.load(Ordering::Relaxed),
            approx_bytes: approx,
            ..p.stats.clone()
        }
    }

    /// Called after a full rebuild that read the store from change `seq` on.
    pub(super) fn rebuilt(&self, seq: u64) {
        let mut p = lock(&self.persisted);
        p.base = seq;
        p.saved.clear();
        // Every graph is new and unsaved: the next check saves them.
        p.last_save = None;
        p.stats.rebuilt += 1;
    }

    /// Whether enough changed, or long enough ago, to be worth a save.
    pub fn should_save(&self) -> bool {
        let changed = self.changed.load(Ordering::Relaxed);
        let p = lock(&self.persisted);
        match p.last_save {
            // Never saved by this process: save what a rebuild made, so the next start need not.
            None => changed > 0 || !self.is_empty(),
            Some(at) => changed >= SAVE_AFTER_CHANGES || (changed > 0 && at.elapsed() >= SAVE_AT_LEAST_EVERY),
        }
    }

    /// Whether anything changed since the last save, or this process never saved.
    pub fn has_unsaved(&self) -> bool {
        let changed = self.changed.load(Ordering::Relaxed);
        changed > 0 || (lock(&self.persisted).last_save.is_none() && !self.is_empty())
    }

    /// Saves the index in `dir`. Searches go on meanwhile; a graph being
    /// written takes no insertions (they wait beside it, searched exactly).
    pub fn save(&self, store: &Store, dir: &Path) -> Result<SaveReport, PersistError> {
        let _one = lock(&self.rebuilding);
        let started = Instant::now();
        let result = self.save_locked(store, dir);
        let mut p = lock(&self.persisted);
        match &result {
            Ok(report) => {
                p.stats.saves += 1;
                p.stats.last_save_ms = started.elapsed().as_millis() as u64;
                p.stats.saved_bytes = report.bytes;
            }
            Err(_) => p.stats.save_failures += 1,
        }
        // Even a failed save waits a while before the next try.
        p.last_save = Some(Instant::now());
        result
    }

    fn save_locked(&self, store: &Store, dir: &Path) -> Result<SaveReport, PersistError> {
        std::fs::create_dir_all(dir)?;
        let changed = self.changed.load(Ordering::Relaxed);
        let seq = store.vector_seq();
        let (base, previous) = {
            let p = lock(&self.persisted);
            (p.base, p.saved.clone())
        };
        let groups: Vec<_> = read(&self.groups).iter().map(|(fp, g)| (*fp, g.clone())).collect();
        let mut report = SaveReport::default();
        let mut saved_groups = Vec::with_capacity(groups.len());
        let mut now_saved = HashMap::new();
        let mut live_at: HashMap<CacheKey, [u8; 32]> = HashMap::new();
        for (fp, group) in groups {
            let (ids, live, to_save) = {
                let mut g = write(&group);
                if g.retired {
                    continue;
                }
                let kept = previous.get(&fp).filter(|(stamp, _)| g.graph.is_some() && *stamp == g.stamp);
                let to_save = match kept {
                    Some((stamp, files)) => ToSave::Keep(*stamp, files.clone()),
                    None => {
                        let stamp = g.stamp;
                        g.freeze().map_or(ToSave::Nothing, |graph| ToSave::Dump(stamp, graph))
                    }
                };
                (g.ids.clone(), g.live_flags(), to_save)
            };
            let graph = match to_save {
                ToSave::Nothing => None,
                ToSave::Keep(stamp, files) => {
                    report.graphs_kept += 1;
                    now_saved.insert(fp, (stamp, files.clone()));
                    Some(files)
                }
                ToSave::Dump(stamp, graph) => {
                    let basename = self.fresh_name(dir, &fp);
                    let dumped = dump_graph(&graph, dir, &basename);
                    write(&group).thaw(store)?;
                    let files = dumped?;
                    report.graphs_written += 1;
                    now_saved.insert(fp, (stamp, files.clone()));
                    Some(files)
                }
            };
            for (id, _) in ids.iter().zip(&live).filter(|(_, l)| **l) {
                live_at.insert(*id, fp);
            }
            saved_groups.push(SavedGroup { fingerprint: fp, ids, live, graph });
        }
        report.seq = self.claimable_seq(store, base, seq, &live_at)?;
        // What the record claims must be on disk in sled before the record is.
        store.flush()?;
        let manifest = Manifest { instance: store.instance(), seq: report.seq, groups: saved_groups };
        manifest.write(dir)?;
        report.bytes = collect_garbage(dir, &manifest)?;
        store.forget_vector_changes(report.seq)?;
        let mut p = lock(&self.persisted);
        p.base = report.seq;
        p.saved = now_saved;
        drop(p);
        self.changed.fetch_sub(changed, Ordering::Relaxed);
        Ok(report)
    }

    /// `seq`, lowered below any change since `base` that the copy missed.
    fn claimable_seq(
        &self,
        store: &Store,
        base: u64,
        seq: u64,
        live_at: &HashMap<CacheKey, [u8; 32]>,
    ) -> Result<u64, StoreError> {
        let mut latest: HashMap<CacheKey, u64> = HashMap::new();
        for change in store.vector_changes_after(base) {
            let (s, id) = change?;
            if s > seq {
                break;
            }
            latest.insert(id, s);
        }
        let mut claim = seq;
        for (id, s) in latest {
            if let Some(v) = store.stored_vector(&id)? {
                if live_at.get(&id) != Some(&v.fingerprint) {
                    claim = claim.min(s.saturating_sub(1));
                }
            }
        }
        Ok(claim)
    }

    /// A basename no file in `dir` has yet.
    fn fresh_name(&self, dir: &Path, fp: &[u8; 32]) -> String {
        let prefix: String = fp.iter().take(6).map(|b| format!("{b:02x}")).collect();
        loop {
            let n = {
                let mut p = lock(&self.persisted);
                p.names += 1;
                p.names
            };
            let name = format!("g-{prefix}-{:x}-{n}", crate::now_ms());
            if !dir.join(format!("{name}.hnsw.data")).exists() && !dir.join(format!("{name}.hnsw.graph")).exists() {
                return name;
            }
        }
    }

    /// Loads the index saved in `dir`, replacing this one's contents, and
    /// brings it up to date with the store. Any doubt about the record is an
    /// error, after which the caller rebuilds.
    pub fn restore(&self, store: &Store, dir: &Path) -> Result<RestoreReport, PersistError> {
        let _one = lock(&self.rebuilding);
        let started = Instant::now();
        let manifest = Manifest::read(dir)?.ok_or(PersistError::NoRecord)?;
        if manifest.instance != store.instance() {
            return Err(PersistError::Invalid("it was saved for another store".into()));
        }
        if store.vector_changes_forgotten()? > manifest.seq {
            return Err(PersistError::Invalid("the store's change log no longer reaches back to it".into()));
        }
        let mut changed = Vec::new();
        let mut seen = HashSet::new();
        for change in store.vector_changes_after(manifest.seq) {
            let (_, id) = change?;
            if seen.insert(id) {
                changed.push(id);
            }
        }
        let saved_live = manifest.groups.iter().map(|g| g.live.iter().filter(|l| **l).count()).sum::<usize>();
        if changed.len() > REPLAY_MAX.max(saved_live / 2) {
            return Err(PersistError::TooManyChanges(changed.len()));
        }
        let mut report = RestoreReport { replayed: changed.len(), ..Default::default() };
        let mut stamps = HashMap::new();
        let seq = manifest.seq;
        let live = self.replace(store, || {
            let mut built = Built::default();
            let mut refused = HashSet::new();
            for saved in manifest.groups {
                let fp = saved.fingerprint;
                match load_group(dir, &saved) {
                    Ok(group) => {
                        if let Some(files) = saved.graph {
                            stamps.insert(fp, (group.stamp, files));
                            report.graphs_loaded += 1;
                        }
                        for id in group.slot_of.keys() {
                            built.located.insert(*id, fp);
                        }
                        built.groups.insert(fp, group);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a saved semantic graph was refused; rebuilding its context");
                        refused.insert(fp);
                    }
                }
            }
            if !refused.is_empty() {
                report.contexts_rebuilt = refused.len();
                let rebuilt = Self::build(store, |fp| refused.contains(fp))?;
                built.groups.extend(rebuilt.groups);
                built.located.extend(rebuilt.located);
            }
            for id in &changed {
                match store.stored_vector(id)? {
                    Some(v) if built.located.get(id) != Some(&v.fingerprint) => {
                        built.insert(store, *id, v.fingerprint, &v.vector)?;
                    }
                    // Live under its fingerprint already: the same key is the same question, the same vector.
                    Some(_) => {}
                    None => {
                        built.remove(id);
                    }
                }
            }
            Ok::<_, PersistError>(built)
        })?;
        report.entries = live.ok_or(PersistError::Busy)?;
        let mut p = lock(&self.persisted);
        p.base = seq;
        p.saved = stamps;
        p.last_save = Some(Instant::now());
        p.stats.loaded_from_dump = true;
        p.stats.contexts_rebuilt += report.contexts_rebuilt as u64;
        p.stats.replayed += report.replayed as u64;
        p.stats.restore_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}

fn dump_graph(graph: &Graph, dir: &Path, basename: &str) -> Result<GraphFiles, PersistError> {
    let points = graph.get_nb_point() as u64;
    let name = catch_unwind(AssertUnwindSafe(|| graph.file_dump(dir, basename)))
        .map_err(|_| PersistError::Invalid("hnsw_rs failed while writing a graph".into()))?
        .map_err(|e| PersistError::Invalid(format!("writing a graph: {e}")))?;
    let graph = digest(&dir.join(format!("{name}.hnsw.graph")), true)?;
    let data = digest(&dir.join(format!("{name}.hnsw.data")), true)?;
    Ok(GraphFiles { basename: name, points, graph, data })
}

/// A saved group, checked against its record.
fn load_group(dir: &Path, saved: &SavedGroup) -> Result<Group, PersistError> {
    let bad = |why: &str| PersistError::Invalid(format!("group {}: {why}", hex_prefix(&saved.fingerprint)));
    if saved.ids.len() != saved.live.len() {
        return Err(bad("slot count"));
    }
    let mut group = Group { ids: saved.ids.clone(), ..Default::default() };
    for (slot, (id, live)) in saved.ids.iter().zip(&saved.live).enumerate() {
        if *live && group.slot_of.insert(*id, slot).is_some() {
            return Err(bad("an id is live twice"));
        }
    }
    match &saved.graph {
        None if group.slot_of.len() != group.ids.len() => return Err(bad("dead slots without a graph")),
        None => {}
        Some(files) => {
            group.graph = Some(std::sync::Arc::new(load_graph(dir, files, saved.ids.len())?));
            group.stamp = next_stamp();
        }
    }
    Ok(group)
}

/// One graph, after its files matched their recorded lengths and hashes
/// (hnsw_rs's loader trusts its input: it asserts, and exits on a short read).
fn load_graph(dir: &Path, files: &GraphFiles, slots: usize) -> Result<Graph, PersistError> {
    for (suffix, want) in [("graph", files.graph), ("data", files.data)] {
        let got = digest(&dir.join(format!("{}.hnsw.{suffix}", files.basename)), false)?;
        if got != want {
            return Err(PersistError::Invalid(format!("{}.hnsw.{suffix} does not match its record", files.basename)));
        }
    }
    // hnsw_rs ties a reloaded graph's lifetime to its loader (for a memory-
    // mapped mode not used here): the loader, a few hundred bytes, is kept
    // for the life of the process, once per graph loaded.
    let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &files.basename)));
    let graph: Graph = catch_unwind(AssertUnwindSafe(move || {
        let io = io;
        io.load_hnsw::<i8, QuantizedCosine>()
    }))
    .map_err(|_| PersistError::Invalid(format!("hnsw_rs could not read {}", files.basename)))?
    .map_err(|e| PersistError::Invalid(format!("reading {}: {e}", files.basename)))?;
    if graph.get_nb_point() as u64 != files.points {
        return Err(PersistError::Invalid(format!("{} holds another number of points", files.basename)));
    }
    if graph.get_point_indexation().into_iter().any(|p| p.get_origin_id() >= slots) {
        return Err(PersistError::Invalid(format!("{} names slots its record does not have", files.basename)));
    }
    Ok(graph)
}

/// Removes graph files the record does not name; returns the size of those it does.
fn collect_garbage(dir: &Path, manifest: &Manifest) -> std::io::Result<u64> {
    let kept: HashSet<String> = manifest
        .groups
        .iter()
        .filter_map(|g| g.graph.as_ref())
        .flat_map(|f| [format!("{}.hnsw.graph", f.basename), format!("{}.hnsw.data", f.basename)])
        .collect();
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kept.contains(&name) || name == super::manifest::FILE {
            bytes += entry.metadata()?.len();
        } else if name.ends_with(".hnsw.graph") || name.ends_with(".hnsw.data") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(bytes)
}

fn hex_prefix(fp: &[u8; 32]) -> String {
    fp.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
