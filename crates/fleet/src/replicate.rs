//! The semantic tier across the fleet. Each replica keeps its own HNSW index
//! (a search stays in-process); what feeds it is the events stream.
//!
//! A replica that stores a semantic entry writes, in one atomic pipeline,
//! the entry's Redis copy (`{prefix}:e:{namespace}:{id}`), its question
//! vector (`{prefix}:v:{namespace}:{id}`, little-endian f32, same TTL) and a
//! `stored` event carrying the id, namespace, fingerprint, vector and the
//! embedding model. Every other replica's reader applies it in stream order,
//! after the tombstones written before it: it reads the entry's Redis copy
//! (the pointer; a missing copy was deleted or has expired), checks it as
//! the shared exact tier does, and writes entry and vector into its own sled
//! store and index. A replica whose position was trimmed out of the stream
//! rebuilds from the Redis copies instead ([`backfill`]).

use super::{Fleet, FleetError};
use deja_api::{CacheKey, ContextFingerprint};
use deja_gateway::state::AppState;
use deja_store::{Entry, EntryKind, StoreError};
use redis::aio::ConnectionManager;
use redis::streams::StreamId;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Keys read at once while backfilling.
const BACKFILL_PAGE: usize = 500;

/// An entry key with the values read for it: the entry's copy and its vector's.
type RedisCopy = (String, Option<Vec<u8>>, Option<Vec<u8>>);

/// A `stored` event: a new semantic entry on another replica.
pub(super) struct Stored {
    pub id: CacheKey,
    pub namespace: String,
    fingerprint: ContextFingerprint,
    vector: Vec<f32>,
    /// The embedding model (name and dimension) that made `vector`.
    model: String,
    origin: u64,
    /// The entry's Redis copy, read just before the batch is applied.
    pub copy: Option<Vec<u8>>,
}

/// The identity of this replica's embedding model, or `None` with the
/// semantic cache off: vectors from another model are never indexed.
pub(super) fn model_identity(state: &AppState) -> Option<String> {
    state.embedder_identity().map(|(name, dim)| format!("{name}/{dim}"))
}

pub(super) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A vector's Redis copy: the model that made it, a zero byte, the vector.
/// A replica rebuilding from copies indexes only its own model's vectors.
fn encode_vector_copy(model: &str, vector: &[u8]) -> Vec<u8> {
    [model.as_bytes(), &[0], vector].concat()
}

fn decode_vector_copy(b: &[u8], model: &str) -> Option<Vec<f32>> {
    let (made_by, vector) = b.split_at_checked(b.iter().position(|&x| x == 0)?)?;
    (made_by == model.as_bytes()).then(|| decode_vector(vector.get(1..)?)).flatten()
}

fn decode_vector(b: &[u8]) -> Option<Vec<f32>> {
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let v: Vec<f32> = b.chunks_exact(4).map(|c| c.try_into().ok().map(f32::from_le_bytes)).collect::<Option<_>>()?;
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// The vector key beside an entry key: `{prefix}:e:…` → `{prefix}:v:…`.
pub(super) fn vector_key_of(fleet: &Fleet, entry_key: &str) -> Option<String> {
    let rest = entry_key.strip_prefix(fleet.prefix())?.strip_prefix(":e:")?;
    Some(format!("{}:v:{rest}", fleet.prefix()))
}

/// Entry keys and the vector keys beside them, for one `DEL`.
pub(super) fn with_vector_keys(fleet: &Fleet, entry_keys: &[String]) -> Vec<String> {
    let vectors = entry_keys.iter().filter_map(|k| vector_key_of(fleet, k));
    entry_keys.iter().cloned().chain(vectors).collect()
}

/// Adds to `pipe` the vector's copy and the `stored` event; the caller has
/// added the entry's copy. The whole pipeline is atomic, so an event never
/// names a copy that was not written with it.
pub(super) fn publish(
    fleet: &Fleet,
    pipe: &mut redis::Pipeline,
    entry: &Entry,
    vector: &[u8],
    model: &str,
    ttl_ms: u64,
) {
    let Some(meta) = &entry.semantic else { return };
    let vector_key = format!("{}:v:{}:{}", fleet.prefix(), entry.namespace, entry.id.to_hex());
    pipe.cmd("SET").arg(vector_key).arg(encode_vector_copy(model, vector)).arg("PX").arg(ttl_ms).ignore();
    let mut add = fleet.xadd();
    add.arg("op")
        .arg("stored")
        .arg("id")
        .arg(entry.id.to_hex())
        .arg("namespace")
        .arg(&entry.namespace)
        .arg("fp")
        .arg(&meta.fingerprint)
        .arg("vector")
        .arg(vector)
        .arg("model")
        .arg(model)
        .arg("origin")
        .arg(fleet.origin)
        .arg("expires_ms")
        .arg(entry.expires_ms);
    pipe.add_command(add).ignore();
}

/// A `stored` event read from the stream; `None` when a field is missing or malformed.
pub(super) fn parse(e: &StreamId) -> Option<Stored> {
    let id = CacheKey::from_hex(&e.get::<String>("id")?)?;
    let fingerprint = ContextFingerprint(CacheKey::from_hex(&e.get::<String>("fp")?)?.0);
    Some(Stored {
        id,
        namespace: e.get("namespace")?,
        fingerprint,
        vector: decode_vector(&e.get::<Vec<u8>>("vector")?)?,
        model: e.get("model")?,
        origin: e.get("origin")?,
        copy: None,
    })
}

/// Whether this replica should apply `s`: replicating, not its own, and
/// embedded by the same model as its own questions (so of its dimension).
pub(super) fn wanted(fleet: &Fleet, model: Option<&str>, s: &Stored) -> bool {
    fleet.settings.replicate_semantic
        && s.origin != fleet.origin
        && model == Some(s.model.as_str())
        && dimension(&s.model) == Some(s.vector.len())
}

/// The dimension in a model identity (`name/dim`).
fn dimension(model: &str) -> Option<usize> {
    model.rsplit_once('/').and_then(|(_, d)| d.parse().ok())
}

/// Reads the Redis copies the wanted `stored` events point at, a few keys
/// per `MGET` so that large answers fit the call's bound. A chunk that fails
/// leaves its copies unread: those entries are skipped here (a semantic miss
/// on this replica; the exact tier still finds them in Redis), and the batch's
/// tombstones are applied regardless, so one slow read never holds up deletes.
pub(super) async fn fetch_copies(fleet: &Fleet, conn: &mut ConnectionManager, wanted: &mut [&mut Stored]) {
    for chunk in wanted.chunks_mut(COPIES_PER_READ) {
        let keys: Vec<String> = chunk.iter().map(|s| fleet.entry_key(&s.namespace, &s.id)).collect();
        match bounded::<Vec<Option<Vec<u8>>>>(fleet, conn, redis::cmd("MGET").arg(keys)).await {
            Ok(copies) => {
                for (s, copy) in chunk.iter_mut().zip(copies) {
                    s.copy = copy;
                }
            }
            Err(e) => tracing::debug!(error = %e, entries = chunk.len(), "could not read replicated copies; skipped"),
        }
    }
}

/// Entry copies read per `MGET` while applying the stream.
const COPIES_PER_READ: usize = 32;

/// Applies one `stored` event to the local store and index, on a blocking
/// thread. Returns whether the entry was written.
pub(super) fn apply_stored(state: &AppState, fleet: &Fleet, s: &Stored, now_ms: u64) -> Result<bool, StoreError> {
    // No copy: deleted (its tombstone is in the stream) or expired since.
    let Some(bytes) = &s.copy else { return Ok(false) };
    let Some(entry) = super::fetch::verify(fleet, bytes, &s.id, &s.namespace, true) else { return Ok(false) };
    if entry.semantic.as_ref().is_none_or(|m| m.fingerprint != s.fingerprint.to_hex()) {
        fleet.corrupt_values.inc();
        tracing::warn!(entry = %s.id.to_hex(), "a stored event's fingerprint is not its entry's; ignored");
        return Ok(false);
    }
    insert(state, fleet, &entry, &s.fingerprint, &s.vector, now_ms)
}

/// Writes a replicated entry and its vector unless it is expired, covered
/// by a tombstone applied here, or older than the copy this replica holds.
fn insert(
    state: &AppState,
    fleet: &Fleet,
    entry: &Entry,
    fingerprint: &ContextFingerprint,
    vector: &[f32],
    now_ms: u64,
) -> Result<bool, StoreError> {
    if entry.kind != EntryKind::Chat || entry.is_expired(now_ms) || fleet.buried(entry) {
        return Ok(false);
    }
    // Already held (this replica's own, or an earlier event): keep it, unless
    // it is this very entry copied by an exact lookup without its vector.
    if let Some(held) = state.store.get(&entry.id).ok().flatten() {
        let indexed = || state.store.vector(&entry.id).ok().flatten().is_some();
        if held.created_ms > entry.created_ms || (held.created_ms == entry.created_ms && indexed()) {
            return Ok(false);
        }
    }
    // Tombstones are remembered only by this reader, which applies events one
    // after another, so none can arrive between the check above and here.
    state.store.put(entry, Some(vector))?;
    state.index.insert(&state.store, entry.id, fingerprint, vector)?;
    // A conversation entry is findable by conversations here too; its history
    // vector was made with its question's, by the model checked above.
    if let Some(c) = entry.semantic.as_ref().and_then(|m| m.conversation.as_ref()) {
        if let Some(coarse) = CacheKey::from_hex(&c.coarse) {
            state.conversations.insert(entry.id, &ContextFingerprint(coarse.0), vector, &c.history);
        }
    }
    Ok(true)
}

/// Rebuilds this replica's semantic tier from the Redis copies, for a
/// replica whose stream position was trimmed away (its store has been
/// cleared: tombstones it never saw are gone). Deletes remove the copies in
/// the same pipeline as their tombstone, so what is in Redis is what is live.
/// At most `cache.max_entries` entries are read. Returns how many were written.
pub(super) async fn backfill(
    state: &std::sync::Arc<AppState>,
    fleet: &std::sync::Arc<Fleet>,
    conn: &mut ConnectionManager,
) -> Result<u64, FleetError> {
    // With the semantic cache off, entries come back without their vectors.
    let model = model_identity(state).unwrap_or_default();
    let max = state.config().cache.max_entries;
    let pattern = format!("{}:e:*", fleet.prefix());
    let (mut cursor, mut written) = (0u64, 0u64);
    loop {
        if state.stopping.load(Ordering::SeqCst) {
            return Ok(written);
        }
        let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(BACKFILL_PAGE).to_owned();
        let (next, keys): (u64, Vec<String>) = bounded(fleet, conn, &scan).await?;
        for page in keys.chunks(BACKFILL_PAGE) {
            let vector_keys: Vec<String> = page.iter().filter_map(|k| vector_key_of(fleet, k)).collect();
            if vector_keys.len() != page.len() {
                continue;
            }
            let entries: Vec<Option<Vec<u8>>> = bounded(fleet, conn, redis::cmd("MGET").arg(page)).await?;
            let vectors: Vec<Option<Vec<u8>>> = bounded(fleet, conn, redis::cmd("MGET").arg(&vector_keys)).await?;
            let copies: Vec<RedisCopy> =
                page.iter().cloned().zip(entries).zip(vectors).map(|((k, e), v)| (k, e, v)).collect();
            let (s, f) = (state.clone(), fleet.clone());
            let model = model.clone();
            written += tokio::task::spawn_blocking(move || backfill_page(&s, &f, &model, &copies))
                .await
                .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("backfilling: {e}"))))?;
        }
        if next == 0 || state.store.len() >= max {
            state.metrics.entries.set(state.store.len() as i64);
            state.metrics.index_entries.set(state.index.len() as i64);
            return Ok(written);
        }
        cursor = next;
    }
}

/// Writes one page of Redis copies: each checked against the key it was
/// read from (namespace and id), unexpired, with a vector of this model's size.
fn backfill_page(state: &AppState, fleet: &Fleet, model: &str, copies: &[RedisCopy]) -> Result<u64, StoreError> {
    let dim = dimension(model).unwrap_or(0);
    let now = deja_cache::now_ms();
    let mut written = 0;
    for (key, entry, vector) in copies {
        let (Some(bytes), Some((namespace, id))) = (entry, split_entry_key(fleet, key)) else { continue };
        let Some(entry) = super::fetch::verify(fleet, bytes, &id, namespace, true) else { continue };
        let written_here = match (&entry.semantic, vector.as_deref().and_then(|b| decode_vector_copy(b, model))) {
            (Some(meta), Some(v)) if v.len() == dim => match CacheKey::from_hex(&meta.fingerprint) {
                Some(fp) => insert(state, fleet, &entry, &ContextFingerprint(fp.0), &v, now)?,
                None => false,
            },
            // Without a vector the entry still serves exact hits locally.
            _ => {
                if entry.kind != EntryKind::Chat || entry.is_expired(now) || fleet.buried(&entry) {
                    false
                } else {
                    state.store.put(&entry, None)?;
                    true
                }
            }
        };
        if written_here {
            written += 1;
            fleet.entries_backfilled.inc();
        }
    }
    Ok(written)
}

/// `{prefix}:e:{namespace}:{id hex}` → (namespace, id).
fn split_entry_key<'k>(fleet: &Fleet, key: &'k str) -> Option<(&'k str, CacheKey)> {
    let rest = key.strip_prefix(fleet.prefix())?.strip_prefix(":e:")?;
    let (namespace, hex) = rest.rsplit_once(':')?;
    Some((namespace, CacheKey::from_hex(hex)?))
}

/// One command on the reader's own connection (the command connection is
/// not used until the replica has caught up), bounded like a stream read.
async fn bounded<T: redis::FromRedisValue>(
    fleet: &Fleet,
    conn: &mut ConnectionManager,
    cmd: &redis::Cmd,
) -> Result<T, FleetError> {
    let limit = fleet.settings.timeout * 4 + Duration::from_millis(500);
    match tokio::time::timeout(limit, cmd.query_async::<T>(conn)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(FleetError::Timeout(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deja_gateway::config::ClusterSettings;

    fn fleet() -> Fleet {
        let settings = ClusterSettings {
            redis_url: "redis://127.0.0.1:1".into(),
            key_prefix: "deja".into(),
            password: None,
            timeout: Duration::from_millis(50),
            stream_max_len: 1000,
            replicate_semantic: true,
            startup_wait: Duration::from_secs(1),
            coalesce_wait: Duration::from_secs(10),
            counters_flush: Duration::from_secs(1),
            share_cooldowns: true,
        };
        Fleet::new(settings, &deja_gateway::metrics::Metrics::new())
    }

    #[test]
    fn entry_keys_map_to_their_vector_keys_and_back() {
        let f = fleet();
        let id = CacheKey([7; 32]);
        let key = f.entry_key("team:a", &id);
        assert_eq!(vector_key_of(&f, &key), Some(format!("deja:v:team:a:{}", id.to_hex())));
        assert_eq!(split_entry_key(&f, &key), Some(("team:a", id)));
        assert_eq!(vector_key_of(&f, "other:e:x:y"), None);
        assert_eq!(split_entry_key(&f, "deja:e:ns:not-hex"), None);
        assert_eq!(with_vector_keys(&f, std::slice::from_ref(&key)).len(), 2);
    }

    #[test]
    fn vectors_round_trip_and_garbage_is_refused() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        assert_eq!(decode_vector(&[1, 2, 3]), None);
        assert_eq!(decode_vector(&[]), None);
        assert_eq!(decode_vector(&encode_vector(&[f32::NAN])), None);
        let copy = encode_vector_copy("m/1", &encode_vector(&[0.5]));
        assert_eq!(decode_vector_copy(&copy, "m/1"), Some(vec![0.5]));
        assert_eq!(decode_vector_copy(&copy, "other/1"), None, "another model's vector is never indexed");
        assert_eq!(decode_vector_copy(&encode_vector(&[0.5]), "m/1"), None);
        assert_eq!(dimension("all-MiniLM-L6-v2-int8/384"), Some(384));
        assert_eq!(dimension("no-dimension"), None);
    }
}
