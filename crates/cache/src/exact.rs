//! Exact lookup: the entry stored under the key, if it is still fresh.

use deja_api::CacheKey;
use deja_store::{Entry, HitStats, Store, StoreError};

/// Returns the live entry for `key` and counts the hit. Expired entries are
/// never served; an entry that cannot be decoded is removed and treated as a miss.
pub fn lookup(store: &Store, key: &CacheKey, now_ms: u64) -> Result<Option<(Entry, HitStats)>, StoreError> {
    let entry = match store.get(key) {
        Ok(Some(e)) => e,
        Ok(None) => return Ok(None),
        Err(StoreError::Corrupt(id)) => {
            tracing::warn!(entry = %id, "dropping an undecodable cache entry");
            store.remove(key)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if entry.is_expired(now_ms) {
        return Ok(None);
    }
    let stats = store.record_hit(key, now_ms)?;
    Ok(Some((entry, stats)))
}
