//! Exact lookup: the entry stored under the key, if it is still fresh.

use crate::Freshness;
use deja_api::CacheKey;
use deja_store::{Entry, HitStats, Store, StoreError};

/// Returns the live entry for `key` and counts the hit. Expired entries are
/// never served; an entry that cannot be decoded is a miss (the answer
/// stored for it replaces it; sweeps drop it otherwise).
pub fn lookup(store: &Store, key: &CacheKey, now_ms: u64) -> Result<Option<(Entry, HitStats)>, StoreError> {
    lookup_fresh(store, key, &Freshness::default(), now_ms)
}

/// [`lookup`], serving only an entry `fresh` accepts (the request's `max-age`, `min-fresh`).
pub fn lookup_fresh(
    store: &Store,
    key: &CacheKey,
    fresh: &Freshness,
    now_ms: u64,
) -> Result<Option<(Entry, HitStats)>, StoreError> {
    let entry = match store.get(key) {
        Ok(Some(e)) => e,
        Ok(None) => return Ok(None),
        Err(StoreError::Corrupt(id)) => {
            // A miss: the answer stored for it replaces the entry, and sweeps
            // drop it otherwise. No transaction here, on the request path.
            tracing::warn!(entry = %id, "an undecodable cache entry; treating it as a miss");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !fresh.accepts(&entry, now_ms) {
        return Ok(None);
    }
    let stats = store.record_hit(key, now_ms)?;
    Ok(Some((entry, stats)))
}

/// How an exact hit was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Via {
    /// The entry stored under the request's own key.
    Key,
    /// A learned alias: a paraphrase the verifier accepted, pointing at its
    /// entry, with the similarity it was learned at.
    Alias { similarity: f32 },
}

/// [`lookup`], then, on a miss, the entry the key is a learned alias of, if
/// that entry still exists, is unexpired, belongs to `namespace` and the
/// alias was learned at a similarity of at least `alias_floor` (a client's
/// floor applies to aliases as to every semantic route; at 1.0 none is served).
pub fn lookup_or_alias(
    store: &Store,
    key: &CacheKey,
    namespace: &str,
    alias_floor: Option<f32>,
    fresh: &Freshness,
    now_ms: u64,
) -> Result<Option<(Entry, HitStats, Via)>, StoreError> {
    if let Some((entry, stats)) = lookup_fresh(store, key, fresh, now_ms)? {
        return Ok(Some((entry, stats, Via::Key)));
    }
    let Some((id, similarity)) = store.alias_learned(key)? else { return Ok(None) };
    if alias_floor.is_some_and(|floor| floor >= 1.0 || similarity < floor) {
        return Ok(None);
    }
    let entry = match store.get(&id) {
        Ok(Some(e)) => e,
        Ok(None) | Err(StoreError::Corrupt(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !fresh.accepts(&entry, now_ms) || entry.namespace != namespace {
        return Ok(None);
    }
    let stats = store.record_hit(&id, now_ms)?;
    Ok(Some((entry, stats, Via::Alias { similarity })))
}
