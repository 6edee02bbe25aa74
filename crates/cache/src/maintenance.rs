//! Keeps the store within its bounds: expired entries are swept, and past
//! `max_entries` or `max_bytes` the least recently used go first.

use crate::semantic::SemanticIndex;
use deja_store::{Store, StoreError};

const BATCH: usize = 1_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    pub evicted: usize,
}

/// How much the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_entries: u64,
    /// Bytes of entries and vectors as stored ([`Store::bytes`]); `None`: no cap.
    pub max_bytes: Option<u64>,
}

impl Bounds {
    pub fn entries(max_entries: u64) -> Self {
        Self { max_entries, max_bytes: None }
    }

    pub fn exceeded_by(&self, store: &Store) -> bool {
        store.len() > self.max_entries || self.max_bytes.is_some_and(|b| store.bytes() > b)
    }

    /// How many least recently used entries to evict next: the entries over
    /// the cap, or enough entries of average size to shed the bytes over it.
    fn excess(&self, store: &Store) -> usize {
        let over_count = store.len().saturating_sub(self.max_entries);
        let over_bytes = match self.max_bytes {
            Some(max) if store.bytes() > max => {
                let average = (store.bytes() / store.len().max(1)).max(1);
                (store.bytes() - max).div_ceil(average)
            }
            _ => 0,
        };
        over_count.max(over_bytes).max(1) as usize
    }
}

/// One pass: sweep what expired by `now_ms`, then evict within `bounds`.
pub fn sweep(
    store: &Store,
    index: Option<&SemanticIndex>,
    now_ms: u64,
    bounds: Bounds,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    // Every batch deletes the expiry keys it visits, so this ends.
    loop {
        let batch = store.sweep_expired(now_ms, BATCH)?;
        report.expired += batch.removed.len();
        if let Some(ix) = index {
            batch.removed.iter().chain(&batch.dangling).for_each(|id| ix.remove(id));
        }
        if batch.visited < BATCH {
            break;
        }
    }
    while bounds.exceeded_by(store) {
        let evicted = store.evict_least_recently_used(bounds.excess(store).min(BATCH))?;
        if evicted.is_empty() {
            break;
        }
        report.evicted += evicted.len();
        if let Some(ix) = index {
            evicted.iter().for_each(|id| ix.remove(id));
        }
    }
    Ok(report)
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
