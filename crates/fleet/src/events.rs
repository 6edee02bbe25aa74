//! Deletes and purges reach every replica through one Redis stream,
//! `{prefix}:events`: the replica that deletes removes the Redis copies and
//! appends a tombstone; every replica reads the stream in the background,
//! from the last id it applied (kept in its sled `meta` tree, so a replica
//! that was down catches up when it starts), and removes the entries from
//! its own store and semantic index. The same stream carries `stored`
//! events for new semantic entries (see [`super::replicate`]): one order for
//! stores and deletes, so a delete is never overtaken by the store before it.

use super::replicate::{self, Stored};
use super::{Fleet, FleetError, Query, Tomb};
use deja_api::CacheKey;
use deja_gateway::state::AppState;
use deja_store::{ListFilter, StoreError};
use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one XREAD waits for new events.
const BLOCK: Duration = Duration::from_millis(200);
/// Events read at once; a shorter batch means the reader is caught up.
const BATCH: usize = 500;
/// Pause before reconnecting to an unreachable Redis.
const RETRY: Duration = Duration::from_millis(250);

/// Starts the background reader and waits, at most `cluster.startup_wait`,
/// until it has applied every event up to the stream's end: a replica that
/// was down while entries were deleted removes them before it serves, and
/// indexes the semantic entries stored meanwhile.
/// Past the wait (Redis unreachable) it serves from its own store, degraded,
/// and catches up when Redis answers.
pub async fn start(state: &Arc<AppState>, fleet: &Arc<Fleet>) {
    let fleet = fleet.clone();
    let redacted = fleet.settings.redacted_url();
    tokio::spawn(reader(state.clone(), fleet.clone()));
    let deadline = Instant::now() + fleet.settings.startup_wait;
    while !fleet.is_connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if fleet.is_connected() {
        tracing::info!(redis = %redacted, "cluster: caught up on the events stream");
    } else {
        tracing::warn!(redis = %redacted, "cluster: Redis unreachable at start; serving degraded until it answers");
    }
}

/// Deletes the shared copy of `id` and tells every replica to drop theirs.
/// `namespace` is the entry's, when this replica knew it (otherwise the key
/// is searched for). Returns whether Redis held a copy.
pub async fn delete(fleet: &Fleet, id: &CacheKey, namespace: Option<&str>) -> Result<bool, FleetError> {
    let keys = match namespace {
        Some(ns) => vec![fleet.entry_key(ns, id)],
        None => scan(fleet, &format!("{}:e:*:{}", fleet.prefix(), id.to_hex())).await?,
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    if !keys.is_empty() {
        pipe.cmd("DEL").arg(replicate::with_vector_keys(fleet, &keys));
    } else {
        pipe.cmd("EXISTS").arg(fleet.entry_key("-", id));
    }
    let mut add = fleet.xadd();
    add.arg("op").arg("del").arg("id").arg(id.to_hex());
    pipe.add_command(add);
    let (removed, _): (u64, String) = fleet.run(Query::Pipe(&pipe)).await?;
    Ok(removed > 0)
}

/// Deletes the shared copies matching `filter` and tells every replica to
/// purge the same filter. Returns how many Redis copies went.
pub async fn purge(fleet: &Fleet, filter: &ListFilter) -> Result<u64, FleetError> {
    let pattern = match &filter.namespace {
        Some(ns) => format!("{}:e:{}:*", fleet.prefix(), glob_escape(ns)),
        None => format!("{}:e:*", fleet.prefix()),
    };
    let mut removed = 0;
    for chunk in scan(fleet, &pattern).await?.chunks(BATCH) {
        let values: Vec<Option<Vec<u8>>> = fleet.run(Query::Cmd(redis::cmd("MGET").arg(chunk))).await?;
        // Undecodable values are dropped with the rest: they are never served anyway.
        let doomed: Vec<String> = chunk
            .iter()
            .zip(values)
            .filter(|(_, v)| match v {
                Some(bytes) => serde_json::from_slice::<deja_store::Entry>(bytes).map_or(true, |e| filter.matches(&e)),
                None => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !doomed.is_empty() {
            let doomed_count = doomed.len() as u64;
            let deleted = fleet
                .run::<u64>(Query::Cmd(redis::cmd("DEL").arg(replicate::with_vector_keys(fleet, &doomed))))
                .await?;
            removed += deleted.min(doomed_count);
        }
    }
    let mut add = fleet.xadd();
    add.arg("op").arg("purge");
    if let Some(ns) = &filter.namespace {
        add.arg("namespace").arg(ns);
    }
    if let Some(model) = &filter.model {
        add.arg("model").arg(model);
    }
    if let Some(before) = filter.created_before_ms {
        add.arg("before_ms").arg(before);
    }
    let _: String = fleet.run(Query::Cmd(&add)).await?;
    Ok(removed)
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key matching `pattern`, a bounded call at a time.
async fn scan(fleet: &Fleet, pattern: &str) -> Result<Vec<String>, FleetError> {
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let cmd = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).to_owned();
        let (next, batch): (u64, Vec<String>) = fleet.run(Query::Cmd(&cmd)).await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Reads the stream until the state stops, reconnecting whenever Redis
/// fails; marks the replica connected only once it is caught up.
async fn reader(state: Arc<AppState>, fleet: Arc<Fleet>) {
    let mut last = match state.store.meta(&fleet.position_key()) {
        Ok(Some(v)) => String::from_utf8(v).unwrap_or_else(|_| "0-0".into()),
        _ => "0-0".to_string(),
    };
    let mut stream_conn: Option<ConnectionManager> = None;
    let mut warned = false;
    while !state.stopping.load(Ordering::SeqCst) {
        let has_command_conn = fleet.conn.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let conn = match (&stream_conn, has_command_conn) {
            (Some(c), true) => c.clone(),
            _ => match reconnect(&state, &fleet, &mut last).await {
                Ok(c) => {
                    warned = false;
                    stream_conn = Some(c.clone());
                    c
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cluster: cannot reach Redis; retrying");
                        warned = true;
                    }
                    fleet.lost();
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        let events = match read(&fleet, conn.clone(), &last).await {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(error = %e, "cluster: reading the events stream failed");
                fleet.lost();
                stream_conn = None;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // A reader that fell more than `stream_max_len` events behind would
        // silently skip the trimmed ones: rebuild from Redis instead.
        if !events.is_empty() {
            match trimmed_past(&fleet, &mut conn.clone(), &last).await {
                Ok(None) => {}
                Ok(Some(end)) => {
                    if let Err(e) = rebuild(&state, &fleet, &mut conn.clone(), &mut last, end).await {
                        tracing::warn!(error = %e, "cluster: rebuilding from Redis failed; retrying");
                        fleet.lost();
                        stream_conn = None;
                        tokio::time::sleep(RETRY).await;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: reading the events stream failed");
                    fleet.lost();
                    stream_conn = None;
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        let caught_up = events.len() < BATCH;
        if let Some((id, _)) = events.last() {
            let id = id.clone();
            match apply_off_runtime(&state, &fleet, conn, events).await {
                Ok(()) => {
                    if let Err(e) = state.store.set_meta(&fleet.position_key(), id.as_bytes()) {
                        tracing::warn!(error = %e, "cluster: could not record the stream position");
                    }
                    last = id;
                }
                Err(e) => {
                    // Not advanced: the same events are applied again next time.
                    tracing::warn!(error = %e, "cluster: applying the events stream failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        if caught_up && !fleet.is_connected() {
            fleet.set_connected(true);
        }
    }
}

/// Opens both connections (commands, and the stream's own, which blocks),
/// installs the command one (used once the reader is caught up), and checks
/// that the stream still holds every event after `last`. If it does not,
/// this replica rebuilds from the Redis copies and goes on from the stream's
/// end as it was before the rebuild began (so no delete made meanwhile is lost).
async fn reconnect(
    state: &Arc<AppState>,
    fleet: &Arc<Fleet>,
    last: &mut String,
) -> Result<ConnectionManager, FleetError> {
    let command = fleet.connect(fleet.settings.timeout).await?;
    let mut stream = fleet.connect(BLOCK + fleet.settings.timeout + Duration::from_millis(500)).await?;
    *fleet.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(command);
    if let Some(end) = trimmed_past(fleet, &mut stream, last).await? {
        rebuild(state, fleet, &mut stream, last, end).await?;
    }
    Ok(stream)
}

/// Tombstones this replica never saw are gone: what it holds may have been
/// deleted elsewhere. It is a cache: it starts afresh from what Redis holds
/// (a delete removes the copies in the pipeline that writes its tombstone),
/// then reads on from `end`, the stream's last id before the copies were read.
async fn rebuild(
    state: &Arc<AppState>,
    fleet: &Arc<Fleet>,
    stream: &mut ConnectionManager,
    last: &mut String,
    end: String,
) -> Result<(), FleetError> {
    tracing::warn!("cluster: the events stream was trimmed past this replica's position; rebuilding from Redis");
    let s = state.clone();
    tokio::task::spawn_blocking(move || clear_local(&s))
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("dropping entries: {e}"))))?;
    let written = replicate::backfill(state, fleet, stream).await?;
    tracing::info!(entries = written, "cluster: rebuilt from Redis copies");
    state.store.set_meta(&fleet.position_key(), end.as_bytes())?;
    *last = end;
    Ok(())
}

/// The stream's last id, when events after `last` may have been removed
/// from it. Trimming removes the oldest events, so it is the case when the
/// stream ever lost an event (`entries-added` past its length, or an
/// `XDEL` past `last`) and its first event is now after `last`: the events
/// between are gone, or (when exactly `last` was the last one trimmed) were
/// never there, which only costs a needless rebuild. A missing stream has
/// lost nothing this replica can know about.
async fn trimmed_past(fleet: &Fleet, conn: &mut ConnectionManager, last: &str) -> Result<Option<String>, FleetError> {
    let cmd = redis::cmd("XINFO").arg("STREAM").arg(fleet.events_key()).to_owned();
    let reply = match tokio::time::timeout(fleet.settings.timeout * 4, cmd.query_async::<redis::Value>(conn)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == redis::ErrorKind::ResponseError => return Ok(None),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(FleetError::Timeout(fleet.settings.timeout * 4)),
    };
    Ok(StreamInfo::read(reply).gap_after(last))
}

/// What `XINFO STREAM` says that matters here.
#[derive(Default)]
struct StreamInfo {
    length: Option<u64>,
    added: Option<u64>,
    first: Option<String>,
    end: Option<String>,
    max_deleted: Option<String>,
}

impl StreamInfo {
    fn read(reply: redis::Value) -> Self {
        let fields: Vec<redis::Value> = match reply {
            redis::Value::Array(v) => v,
            redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => return Self::default(),
        };
        let mut info = Self::default();
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            match redis::from_redis_value::<String>(&k).as_deref() {
                Ok("length") => info.length = redis::from_redis_value(&v).ok(),
                Ok("entries-added") => info.added = redis::from_redis_value(&v).ok(),
                Ok("last-generated-id") => info.end = redis::from_redis_value(&v).ok(),
                Ok("max-deleted-entry-id") => info.max_deleted = redis::from_redis_value(&v).ok(),
                // `[id, [field, value, ...]]`, or nil for an empty stream.
                Ok("first-entry") => {
                    info.first = match v {
                        redis::Value::Array(parts) => parts.first().and_then(|id| redis::from_redis_value(id).ok()),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// The stream's last id, if events after `last` may have been removed.
    fn gap_after(self, last: &str) -> Option<String> {
        let last = stream_id(last);
        let lost_some = match (self.added, self.length) {
            (Some(added), Some(length)) => added > length,
            // Before Redis 7 the stream does not say: assume it did.
            _ => true,
        } || self.max_deleted.is_some_and(|d| stream_id(&d) > last);
        match (self.first, self.end) {
            (Some(first), Some(end)) if lost_some && stream_id(&first) > last => Some(end),
            _ => None,
        }
    }
}

/// `ms-seq` as a comparable pair; anything else is `(0, 0)`.
fn stream_id(id: &str) -> (u64, u64) {
    let mut parts = id.splitn(2, '-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seq = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, seq)
}

/// What one event on the stream says.
enum Event {
    Tomb(Tomb),
    Stored(Stored),
    /// Malformed, or a kind this version does not know.
    Other,
}

/// One XREAD: the events after `last` (waiting up to [`BLOCK`] for some).
async fn read(fleet: &Fleet, mut conn: ConnectionManager, last: &str) -> Result<Vec<(String, Event)>, FleetError> {
    let cmd = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(fleet.events_key())
        .arg(last)
        .to_owned();
    let limit = BLOCK + fleet.settings.timeout + Duration::from_millis(500);
    let reply = match tokio::time::timeout(limit, cmd.query_async::<Option<StreamReadReply>>(&mut conn)).await {
        Ok(r) => r?,
        Err(_) => return Err(FleetError::Timeout(limit)),
    };
    let ids = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
    Ok(ids
        .map(|e| {
            let event = event(&e);
            (e.id, event)
        })
        .collect())
}

fn event(e: &redis::streams::StreamId) -> Event {
    let tomb = match e.get::<String>("op").as_deref() {
        Some("del") => e.get::<String>("id").and_then(|h| CacheKey::from_hex(&h)).map(Tomb::Id),
        Some("purge") => Some(Tomb::Filter(ListFilter {
            namespace: e.get("namespace"),
            model: e.get("model"),
            created_before_ms: e.get("before_ms"),
        })),
        Some("stored") => return replicate::parse(e).map_or(Event::Other, Event::Stored),
        _ => None,
    };
    tomb.map_or(Event::Other, Event::Tomb)
}

/// Reads the Redis copies the batch's `stored` events point at (on the
/// reader's connection), then applies the batch in order off the runtime.
async fn apply_off_runtime(
    state: &Arc<AppState>,
    fleet: &Arc<Fleet>,
    mut conn: ConnectionManager,
    mut events: Vec<(String, Event)>,
) -> Result<(), FleetError> {
    let model = replicate::model_identity(state);
    let mut wanted: Vec<&mut Stored> = events
        .iter_mut()
        .filter_map(|(_, e)| match e {
            Event::Stored(s) if replicate::wanted(fleet, model.as_deref(), s) => Some(s),
            _ => None,
        })
        .collect();
    replicate::fetch_copies(fleet, &mut conn, &mut wanted).await;
    let (s, f) = (state.clone(), fleet.clone());
    let removed = tokio::task::spawn_blocking(move || apply(&s, &f, &events))
        .await
        .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("applying events: {e}"))))?;
    // An entry this replica held may have been written to Redis after the
    // delete reached it: take that copy out too (best effort).
    if !removed.is_empty() {
        let keys: Vec<String> = removed.iter().map(|(ns, id)| fleet.entry_key(ns, id)).collect();
        let keys = replicate::with_vector_keys(fleet, &keys);
        let _ = fleet.run::<u64>(Query::Cmd(redis::cmd("DEL").arg(keys))).await;
    }
    Ok(())
}

/// Applies each event in stream order: a tombstone removes what it covers
/// from the store and the semantic index; a `stored` event writes another
/// replica's entry into both. Returns the (namespace, id) of each entry removed.
fn apply(state: &AppState, fleet: &Fleet, events: &[(String, Event)]) -> Result<Vec<(String, CacheKey)>, StoreError> {
    let mut removed = Vec::new();
    let now = deja_cache::now_ms();
    for (_, event) in events {
        let tomb = match event {
            Event::Tomb(tomb) => tomb,
            Event::Stored(stored) => {
                if replicate::apply_stored(state, fleet, stored, now)? {
                    fleet.entries_replicated.inc();
                }
                continue;
            }
            Event::Other => continue,
        };
        // Remembered first: a copy fetched from Redis meanwhile is refused.
        fleet.remember(tomb.clone());
        let ids = match tomb {
            Tomb::Id(id) => vec![*id],
            Tomb::Filter(filter) => state.store.matching(filter)?,
        };
        for id in ids {
            let namespace = state.store.get(&id).ok().flatten().map(|e| e.namespace);
            state.index.remove(&id);
            if state.store.remove(&id)? {
                if let Some(ns) = namespace {
                    removed.push((ns, id));
                }
            }
        }
        fleet.events_applied.inc();
    }
    state.metrics.entries.set(state.store.len() as i64);
    state.metrics.index_entries.set(state.index.len() as i64);
    Ok(removed)
}

/// Removes every entry from this replica's store and index, telling no one.
fn clear_local(state: &AppState) -> Result<(), StoreError> {
    for id in state.store.matching(&ListFilter::default())? {
        state.index.remove(&id);
        state.store.remove(&id)?;
    }
    state.metrics.entries.set(state.store.len() as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(length: u64, added: u64, first: &str, end: &str) -> StreamInfo {
        StreamInfo {
            length: Some(length),
            added: Some(added),
            first: Some(first.into()),
            end: Some(end.into()),
            max_deleted: Some("0-0".into()),
        }
    }

    #[test]
    fn a_gap_is_a_trimmed_stream_starting_after_the_position() {
        // Never trimmed: whatever the position, nothing was lost.
        assert_eq!(info(5, 5, "10-0", "14-0").gap_after("0-0"), None);
        // Trimmed, but the position is still in the stream.
        assert_eq!(info(5, 9, "10-0", "14-0").gap_after("10-0"), None);
        assert_eq!(info(5, 9, "10-0", "14-0").gap_after("12-3"), None);
        // Trimmed past the position (or a fresh replica, position 0-0).
        assert_eq!(info(5, 9, "10-0", "14-0").gap_after("9-5").as_deref(), Some("14-0"));
        assert_eq!(info(5, 9, "10-0", "14-0").gap_after("0-0").as_deref(), Some("14-0"));
        // An XDEL past the position counts as a loss.
        let deleted = StreamInfo { max_deleted: Some("11-0".into()), ..info(5, 5, "10-0", "14-0") };
        assert_eq!(deleted.gap_after("9-0").as_deref(), Some("14-0"));
        // A missing or empty stream has lost nothing.
        assert_eq!(StreamInfo::default().gap_after("3-0"), None);
        assert_eq!(stream_id("12-3"), (12, 3));
        assert_eq!(stream_id("garbage"), (0, 0));
    }
}
