//! Coalescing across replicas: a burst of one question spread over the fleet
//! costs one upstream call. Within a replica the local coalescer
//! (`deja_cache::coalesce`) already elects one leader per key; that leader
//! then takes `{prefix}:lock:{namespace}:{key}` with `SET NX PX`:
//!
//! - the replica that gets it calls upstream. Writing the answer to Redis
//!   ([`super::shared`]) deletes the lock in the same pipeline, after the
//!   entry, and publishes the lock's name on `{prefix}:ready`; if no entry
//!   is written (an error, an answer not stored), dropping the [`Lock`]
//!   deletes it (only if it still holds it) and publishes the same.
//! - a replica that does not get it waits: woken by `{prefix}:ready` or
//!   every [`POLL`], it looks for the entry (served like a shared exact hit:
//!   checked and copied into sled) and, if the lock is gone without one,
//!   tries to take it itself.
//!
//! Redis stays a dependency, not a single point of failure: the wait is
//! bounded by `cluster.coalesce_wait`, and when it passes, Redis fails or
//! the replica is degraded, the request calls upstream itself. Waiting never
//! fails a request. Since the lock goes only after the entry is in Redis, a
//! replica that finds no lock finds the entry (the same round trip checks).

use super::{Fleet, Query};
use deja_api::{CacheKey, ChatCompletion};
use deja_gateway::answer::Answer;
use deja_gateway::state::AppState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a waiting replica looks for the answer without being told.
const POLL: Duration = Duration::from_millis(100);

/// Deletes the lock if it still holds this replica's token, then tells the waiters.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end \
                       return redis.call('PUBLISH', ARGV[2], KEYS[1])";

/// The locks this replica holds (lock key → token) and the waits it is in.
#[derive(Default)]
pub(crate) struct Locks {
    held: Mutex<HashMap<String, String>>,
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Locks {
    /// A `{prefix}:ready` message: the entry behind this lock is in Redis (or will not be).
    pub(super) fn wake(&self, lock_key: &str) {
        if let Some(n) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).get(lock_key) {
            n.notify_one();
        }
    }
}

impl Fleet {
    fn lock_key(&self, namespace: &str, id: &CacheKey) -> String {
        format!("{}:lock:{namespace}:{}", self.prefix(), id.to_hex())
    }

    pub(super) fn ready_channel(&self) -> String {
        format!("{}:ready", self.prefix())
    }
}

/// What a replica's leader for a missed key does next.
pub enum Turn {
    /// Call upstream, holding the fleet's lock (if one was taken) until the
    /// answer is stored or the request ends.
    Call(Option<Lock>),
    /// Another replica answered the identical request: serve its answer.
    Answered(Arc<Answer>),
}

/// This replica's hold on a key's fleet-wide lock. Dropped without the
/// answer having been written to Redis, it gives the lock up.
pub struct Lock {
    fleet: Arc<Fleet>,
    key: String,
    token: String,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let held = self.fleet.locks.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
        // Gone: the write to Redis took it (see `release_with_write`).
        if held.as_deref() != Some(self.token.as_str()) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let (fleet, key, token) = (self.fleet.clone(), std::mem::take(&mut self.key), std::mem::take(&mut self.token));
        handle.spawn(async move {
            let _ = fleet.run::<i64>(Query::Cmd(&release(&fleet, &key, &token))).await;
        });
    }
}

fn release(fleet: &Fleet, key: &str, token: &str) -> redis::Cmd {
    redis::cmd("EVAL").arg(RELEASE).arg(1).arg(key).arg(token).arg(fleet.ready_channel()).to_owned()
}

/// Called as an entry is handed to the write to Redis: if this replica
/// holds its lock, the command giving it up (and waking the replicas waiting
/// for it), to run in the write's pipeline after the entry. The [`Lock`]
/// then leaves it alone.
pub(super) fn release_with_write(fleet: &Fleet, namespace: &str, id: &CacheKey) -> Option<redis::Cmd> {
    let key = fleet.lock_key(namespace, id);
    let token = fleet.locks.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&key)?;
    Some(release(fleet, &key, &token))
}

/// A token no other holder of the lock can have.
fn token() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{}-{nanos}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Registered while this replica waits on a key; removed when it stops.
struct Waiting<'a> {
    locks: &'a Locks,
    key: String,
    notify: Arc<Notify>,
}

impl<'a> Waiting<'a> {
    fn new(locks: &'a Locks, key: &str) -> Self {
        let notify =
            locks.waiting.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_string()).or_default().clone();
        Self { locks, key: key.to_string(), notify }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.locks.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.get(&self.key).is_some_and(|n| Arc::ptr_eq(n, &self.notify)) {
            waiting.remove(&self.key);
        }
    }
}

/// Decides, for the local leader of a missed key, whether this replica
/// calls upstream or serves another replica's answer. Never fails: any
/// trouble with Redis means calling upstream.
pub async fn turn(state: &AppState, fleet: &Arc<Fleet>, namespace: &str, id: &CacheKey) -> Turn {
    let fleet = fleet.clone();
    let wait = fleet.settings.coalesce_wait;
    if wait.is_zero() || !fleet.is_connected() {
        return Turn::Call(None);
    }
    let key = fleet.lock_key(namespace, id);
    let entry_key = fleet.entry_key(namespace, id);
    let waiting = Waiting::new(&fleet.locks, &key);
    let deadline = Instant::now() + wait;
    let mut waited = false;
    let outcome = loop {
        // Take the lock, and see in the same round trip whether the answer is already there.
        let token = token();
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg(&token).arg("NX").arg("PX").arg(wait.as_millis().max(1) as u64);
        pipe.cmd("EXISTS").arg(&entry_key);
        let (taken, present) = match fleet.run::<(Option<String>, bool)>(Query::Pipe(&pipe)).await {
            Ok(r) => r,
            Err(_) => break Turn::Call(None),
        };
        if present {
            if taken.is_some() {
                let _ = fleet.run::<i64>(Query::Cmd(&release(&fleet, &key, &token))).await;
            }
            // Written since this request's own shared lookup, or refused by it (not counted twice).
            break answer(state, &fleet, namespace, id, false).await;
        }
        if taken.is_some() {
            fleet.locks.held.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), token.clone());
            break Turn::Call(Some(Lock { fleet: fleet.clone(), key, token }));
        }
        // Another replica is answering: wait for its entry, or for its lock to go.
        waited = true;
        match wait_for(&fleet, &waiting, &entry_key, &key, deadline).await {
            Waited::Entry => break answer(state, &fleet, namespace, id, true).await,
            Waited::LockGone => continue,
            Waited::GiveUp => break Turn::Call(None),
        }
    };
    if waited {
        let kind = if matches!(outcome, Turn::Answered(_)) { "answered" } else { "upstream" };
        fleet.fleet_metrics.coalesced.get_or_create(&deja_gateway::metrics::KindLabels { kind: kind.into() }).inc();
    }
    outcome
}

enum Waited {
    Entry,
    LockGone,
    GiveUp,
}

async fn wait_for(fleet: &Fleet, waiting: &Waiting<'_>, entry_key: &str, key: &str, deadline: Instant) -> Waited {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Waited::GiveUp;
        }
        let _ = tokio::time::timeout(POLL.min(deadline - now), waiting.notify.notified()).await;
        if !fleet.is_connected() {
            return Waited::GiveUp;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(entry_key);
        pipe.cmd("EXISTS").arg(key);
        match fleet.run::<(bool, bool)>(Query::Pipe(&pipe)).await {
            Ok((true, _)) => return Waited::Entry,
            Ok((false, false)) => return Waited::LockGone,
            Ok((false, true)) => {}
            Err(_) => return Waited::GiveUp,
        }
    }
}

/// The entry another replica stored, read like a shared exact hit (checked,
/// copied into sled), as the answer this replica's waiters get.
async fn answer(state: &AppState, fleet: &Fleet, namespace: &str, id: &CacheKey, count_corrupt: bool) -> Turn {
    let now = deja_cache::now_ms();
    let Some(entry) = super::fetch::fetch(state, fleet, id, namespace, now, count_corrupt).await else {
        return Turn::Call(None);
    };
    match serde_json::from_value::<ChatCompletion>(entry.response) {
        Ok(completion) => Turn::Answered(Arc::new(Answer {
            completion,
            answered_by: entry.answered_by,
            attempts: 0,
            cost_usd: entry.cost_usd,
        })),
        Err(_) => Turn::Call(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
    }
}
