//! Keeps the store within its bounds: expired entries are swept, and past
//! `max_entries` the least recently used go first.

use crate::semantic::SemanticIndex;
use deja_store::{Store, StoreError};

const BATCH: usize = 1_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    pub evicted: usize,
}

/// One pass: sweep what expired by `now_ms`, then evict down to `max_entries`.
pub fn sweep(
    store: &Store,
    index: Option<&SemanticIndex>,
    now_ms: u64,
    max_entries: u64,
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
    while store.len() > max_entries {
        let excess = (store.len() - max_entries) as usize;
        let evicted = store.evict_least_recently_used(excess.min(BATCH))?;
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
