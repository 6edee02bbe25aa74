//! Reading an entry another replica shared: from Redis, checked, copied
//! into this replica's store.

use super::{Fleet, Query};
use deja_api::CacheKey;
use deja_gateway::state::AppState;
use deja_store::Entry;

/// [`lookup`]; `count_corrupt` false when this request may already have
/// refused (and counted) the same value.
pub(super) async fn fetch(
    state: &AppState,
    fleet: &Fleet,
    key: &CacheKey,
    namespace: &str,
    now_ms: u64,
    count_corrupt: bool,
) -> Option<Entry> {
    if !fleet.is_connected() {
        return None;
    }
    let redis_key = fleet.entry_key(namespace, key);
    let bytes: Option<Vec<u8>> = match fleet.run(Query::Cmd(redis::cmd("GET").arg(&redis_key))).await {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(error = %e, "shared lookup failed; treating as a miss");
            return None;
        }
    };
    let entry = verify(fleet, &bytes?, key, namespace, count_corrupt)?;
    if entry.is_expired(now_ms) || fleet.buried(&entry) {
        return None;
    }
    // The copy is a sled transaction: on a blocking thread, not a worker.
    let (store, copy) = (state.store.clone(), entry.clone());
    let put = tokio::task::spawn_blocking(move || store.put(&copy, None)).await;
    match put {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not copy a shared entry into the store");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "the copy of a shared entry did not finish");
            return None;
        }
    }
    // A delete applied while the copy was being written: it must not stay.
    if fleet.buried(&entry) {
        let _ = state.store.remove(&entry.id);
        return None;
    }
    let _ = state.store.record_hit(key, now_ms);
    fleet.redis_hits.inc();
    state.metrics.entries.set(state.store.len() as i64);
    if state.config().cache.bounds().exceeded_by(&state.store) {
        state.sweep_now.notify_one();
    }
    Some(entry)
}

/// Decodes a value read from Redis and checks it is the entry asked for:
/// its id is the key and its namespace the request's. Anything else is a
/// corrupt value: counted, logged, never served.
pub(super) fn verify(fleet: &Fleet, bytes: &[u8], key: &CacheKey, namespace: &str, count: bool) -> Option<Entry> {
    match serde_json::from_slice::<Entry>(bytes) {
        Ok(e) if e.id == *key && e.namespace == namespace => Some(e),
        Ok(_) | Err(_) if !count => None,
        Ok(_) | Err(_) => {
            fleet.corrupt_values.inc();
            tracing::warn!(entry = %key.to_hex(), "a value in Redis is not the entry its key names; ignored");
            None
        }
    }
}
