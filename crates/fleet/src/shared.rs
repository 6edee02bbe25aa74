//! The shared exact tier: an entry missing from this replica's sled is
//! looked for in Redis, checked, copied into sled and served; an answer
//! stored here is written to Redis too, with the entry's remaining TTL.

use super::{replicate, Fleet, Query};
use deja_api::CacheKey;
use deja_gateway::state::AppState;
use deja_store::{Entry, EntryKind, Store};
use std::sync::Arc;

/// The entry stored under `key` by any replica, if Redis has a valid, live
/// one for this namespace. It is written to the local store first, so the
/// next identical request is a local hit. Any failure is a miss.
pub async fn lookup(state: &AppState, fleet: &Fleet, key: &CacheKey, namespace: &str, now_ms: u64) -> Option<Entry> {
    super::fetch::fetch(state, fleet, key, namespace, now_ms, true).await
}

/// Writes a newly stored chat entry to Redis with its remaining TTL, on a
/// spawned task bounded by `cluster.timeout`. A semantic entry's `vector`
/// goes with it, and its `stored` event in the same atomic pipeline, so the
/// other replicas index it ([`super::replicate`]). At most a fixed number of
/// writes are in flight; past it (or while degraded) the write is skipped.
pub fn share(state: &AppState, fleet: &Arc<Fleet>, entry: &Entry, vector: Option<&[f32]>) {
    let fleet = fleet.clone();
    if entry.kind != EntryKind::Chat || !fleet.is_connected() {
        return;
    }
    let ttl_ms = entry.expires_ms.saturating_sub(deja_cache::now_ms());
    let (Ok(handle), Ok(bytes)) = (tokio::runtime::Handle::try_current(), serde_json::to_vec(entry)) else {
        return;
    };
    if ttl_ms == 0 {
        return;
    }
    let Ok(permit) = fleet.writes.clone().try_acquire_owned() else {
        fleet.writes_skipped.inc();
        return;
    };
    let semantic = match (vector, replicate::model_identity(state)) {
        (Some(v), Some(model)) if fleet.settings.replicate_semantic && entry.semantic.is_some() => {
            Some((replicate::encode_vector(v), model))
        }
        _ => None,
    };
    let lock = super::coalesce::release_with_write(&fleet, &entry.namespace, &entry.id);
    let write = Write { store: state.store.clone(), entry: entry.clone(), bytes, semantic, ttl_ms, lock };
    handle.spawn(write.run(fleet, permit));
}

/// One entry on its way to Redis.
struct Write {
    store: Arc<Store>,
    entry: Entry,
    bytes: Vec<u8>,
    /// The encoded vector and the model that made it.
    semantic: Option<(Vec<u8>, String)>,
    ttl_ms: u64,
    /// Gives up this replica's fleet-wide coalescing lock on the key.
    lock: Option<redis::Cmd>,
}

impl Write {
    async fn run(self, fleet: Arc<Fleet>, _permit: tokio::sync::OwnedSemaphorePermit) {
        let Write { store, entry, bytes, semantic, ttl_ms, lock } = self;
        // Deleted (or replaced) here before its turn came: publishing it now
        // would put it behind its own tombstone in the stream.
        if store.get(&entry.id).ok().flatten().is_none_or(|held| held.created_ms != entry.created_ms) {
            if let Some(lock) = lock {
                let _ = fleet.run::<()>(Query::Cmd(&lock)).await;
            }
            return;
        }
        let key = fleet.entry_key(&entry.namespace, &entry.id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET").arg(&key).arg(bytes).arg("PX").arg(ttl_ms).ignore();
        if let Some((vector, model)) = &semantic {
            replicate::publish(&fleet, &mut pipe, &entry, vector, model, ttl_ms);
        }
        // A fleet-wide lock on this key is given up once the entry is in.
        if let Some(lock) = lock {
            pipe.add_command(lock).ignore();
        }
        if let Err(e) = fleet.run::<()>(Query::Pipe(&pipe)).await {
            tracing::debug!(error = %e, "could not share an entry through Redis");
            return;
        }
        // A delete that raced the write: take the copy back out.
        if fleet.buried(&entry) {
            let keys = replicate::with_vector_keys(&fleet, &[key]);
            let _ = fleet.run::<()>(Query::Cmd(redis::cmd("DEL").arg(keys))).await;
        }
    }
}
