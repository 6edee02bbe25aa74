//! Hit counts, access times and counter increments held in memory and
//! written to sled in batches, so a cache hit never writes to sled.
//!
//! Reads add what is pending to what sled holds. A flush moves deltas into
//! sled while holding `gate` for writing, and reads hold it for reading, so a
//! read never sees a delta twice or not at all. Hits and increments do not
//! take the gate: they land in the next batch while a flush runs.
//!
//! A crash loses what is pending: at most one flush interval of hit counts,
//! access times and counter increments. Entries are not buffered.

use crate::counters::{Counter, SPENT_BY_MODEL_PREFIX};
use crate::entry::HitStats;
use crate::error::StoreError;
use crate::index_keys::index_key;
use deja_api::CacheKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// Hits on one entry since the last flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PendingHit {
    pub hits: u64,
    pub last_access_ms: u64,
}

#[derive(Default)]
pub(crate) struct Pending {
    counters: [AtomicU64; Counter::ALL.len()],
    spent_by_model: Mutex<HashMap<String, u64>>,
    /// Counters under a key of their own (`verifications/<namespace>`, ...).
    keyed: Mutex<HashMap<String, u64>>,
    hits: Mutex<HashMap<CacheKey, PendingHit>>,
    gate: RwLock<()>,
}

/// The trees a flush writes to.
#[derive(Clone)]
pub(crate) struct FlushTrees {
    pub hit_stats: sled::Tree,
    pub by_access: sled::Tree,
    pub counters: sled::Tree,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pending {
    pub fn add(&self, counter: Counter, delta: u64) {
        if let Some(c) = self.counters.get(counter as usize) {
            c.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub fn add_spent_by_model(&self, model: &str, nano: u64) {
        let mut map = lock(&self.spent_by_model);
        match map.get_mut(model) {
            Some(n) => *n = n.saturating_add(nano),
            None => {
                map.insert(model.to_string(), nano);
            }
        }
    }

    pub fn add_keyed(&self, key: String, delta: u64) {
        let mut map = lock(&self.keyed);
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(delta);
    }

    /// The pending delta of one keyed counter.
    pub fn keyed(&self, key: &str) -> u64 {
        lock(&self.keyed).get(key).copied().unwrap_or(0)
    }

    /// Pending keyed counters whose key starts with `prefix`.
    pub fn keyed_with_prefix(&self, prefix: &str) -> Vec<(String, u64)> {
        lock(&self.keyed).iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn hit(&self, id: &CacheKey, now_ms: u64) {
        let mut map = lock(&self.hits);
        let p = map.entry(*id).or_default();
        p.hits += 1;
        p.last_access_ms = p.last_access_ms.max(now_ms);
    }

    /// Drops the pending hits of an entry that was removed or replaced.
    pub fn forget(&self, id: &CacheKey) {
        lock(&self.hits).remove(id);
    }

    /// Held while reading sled and the pending deltas together.
    pub fn read(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters.get(counter as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn spent_by_model(&self) -> HashMap<String, u64> {
        lock(&self.spent_by_model).clone()
    }

    pub fn hits_of(&self, id: &CacheKey) -> Option<PendingHit> {
        lock(&self.hits).get(id).copied()
    }

    /// Writes every pending delta to sled. Hits on entries removed meanwhile
    /// are dropped: a flush never brings back an entry's stats.
    pub fn flush(&self, trees: &FlushTrees) -> Result<(), StoreError> {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let hits = std::mem::take(&mut *lock(&self.hits));
        let spent = std::mem::take(&mut *lock(&self.spent_by_model));
        let keyed = std::mem::take(&mut *lock(&self.keyed));
        let mut batch = sled::Batch::default();
        let mut touched = false;
        for counter in Counter::ALL {
            let delta = self.counters.get(counter as usize).map_or(0, |c| c.swap(0, Ordering::Relaxed));
            if delta > 0 {
                trees.counters.merge(counter.key(), delta.to_le_bytes())?;
                touched = true;
            }
        }
        for (model, nano) in spent {
            trees.counters.merge(format!("{SPENT_BY_MODEL_PREFIX}{model}"), nano.to_le_bytes())?;
        }
        for (key, n) in keyed {
            trees.counters.merge(key, n.to_le_bytes())?;
        }
        for (id, p) in hits {
            let mut previous = None;
            let updated = trees.hit_stats.update_and_fetch(&id.0[..], |old| {
                let old = HitStats::decode(old?);
                previous = Some(old);
                let last_access_ms = old.last_access_ms.max(p.last_access_ms);
                Some(HitStats { hits: old.hits + p.hits, last_access_ms }.encode().to_vec())
            })?;
            let Some(new) = updated.map(|b| HitStats::decode(&b)) else { continue };
            if let Some(old) = previous.filter(|old| old.last_access_ms != new.last_access_ms) {
                batch.insert(&index_key(new.last_access_ms, &id)[..], &[]);
                batch.remove(&index_key(old.last_access_ms, &id)[..]);
                touched = true;
            }
        }
        if touched {
            trees.by_access.apply_batch(batch)?;
        }
        Ok(())
    }
}
