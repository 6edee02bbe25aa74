//! The fleet: several replicas sharing one cache through Redis (`[cluster]`).
//!
//! sled stays each replica's own store and is always asked first. Redis adds
//! a shared exact tier behind it ([`shared`]) and a stream of deletes and
//! purges every replica applies to its own store ([`events`]); the same
//! stream carries new semantic entries, which every replica indexes itself
//! ([`replicate`]). Redis is a
//! dependency, never a single point of failure: every call is bounded by
//! `cluster.timeout`, and while Redis is unreachable the replica is
//! *degraded*: it skips Redis entirely, serves from sled and upstream, and
//! its background reader reconnects and resumes the stream where it stopped.
//!
//! Beyond the cache, replicas share fleet-wide numbers ([`counters`]),
//! cooldowns ([`cooldowns`]) and the upstream call for a question asked of
//! several at once ([`coalesce`]), with pub/sub for what must travel at once
//! ([`bus`]) and a periodic flush for the rest (`tick`).

// On the request path: no indexing, string slicing, `expect` or `panic!`.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod bus;
pub mod coalesce;
pub mod cooldowns;
pub mod counters;
mod events;
mod fetch;
mod replicate;
mod shared;
mod tick;

mod ports;

pub use ports::Replica;

/// Starts the fleet's background work (pub/sub, counters and cooldowns),
/// then applies the deletes made while this replica was down ([`events::start`]).
pub async fn start(state: &Arc<AppState>, fleet: &Arc<Fleet>) {
    tokio::spawn(bus::listen(state.clone(), fleet.clone()));
    tokio::spawn(tick::run(state.clone(), fleet.clone()));
    events::start(state, fleet).await;
}

use deja_api::CacheKey;
use deja_gateway::config::ClusterSettings;
use deja_gateway::metrics::Metrics;
use deja_gateway::state::AppState;
use deja_store::{Entry, ListFilter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long applied tombstones are remembered, to refuse a copy read from
/// Redis just before (or written to it just after) the delete reached it.
const TOMB_MEMORY: Duration = Duration::from_secs(60);
/// At most this many remembered tombstones; the oldest go first.
const TOMB_MEMORY_MAX: usize = 10_000;
/// Writes to Redis in flight at once; past it a write is skipped (a future miss elsewhere).
const MAX_WRITES_IN_FLIGHT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the cluster's Redis is unreachable (this replica is degraded)")]
    Unreachable,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Store(#[from] deja_store::StoreError),
}

/// What a delete or purge removed.
#[derive(Clone, Debug)]
pub(crate) enum Tomb {
    Id(CacheKey),
    Filter(ListFilter),
}

struct Remembered {
    applied: Instant,
    tomb: Tomb,
}

pub struct Fleet {
    settings: ClusterSettings,
    /// The command connection; `None` until connected and while degraded.
    conn: Mutex<Option<ConnectionManager>>,
    /// True once the stream has been read up to its end on this connection.
    connected: AtomicBool,
    recent: Mutex<VecDeque<Remembered>>,
    writes: Arc<tokio::sync::Semaphore>,
    degraded_gauge: Gauge,
    pub(crate) redis_hits: Counter,
    pub(crate) corrupt_values: Counter,
    pub(crate) events_applied: Counter,
    pub(crate) writes_skipped: Counter,
    /// Tells this process's own `stored` events apart from other replicas'.
    origin: u64,
    pub(crate) entries_replicated: Counter,
    pub(crate) entries_backfilled: Counter,
    pub(crate) tally: counters::Tally,
    pub(crate) fleet_metrics: deja_gateway::metrics::FleetMetrics,
    pub(crate) locks: coalesce::Locks,
    pub(crate) cools: cooldowns::Published,
}

impl Fleet {
    pub fn new(settings: ClusterSettings, metrics: &Metrics) -> Self {
        metrics.cluster_degraded.set(1);
        Self {
            settings,
            conn: Mutex::new(None),
            connected: AtomicBool::new(false),
            recent: Mutex::new(VecDeque::new()),
            writes: Arc::new(tokio::sync::Semaphore::new(MAX_WRITES_IN_FLIGHT)),
            degraded_gauge: metrics.cluster_degraded.clone(),
            redis_hits: metrics.cluster_redis_hits.clone(),
            corrupt_values: metrics.cluster_corrupt_values.clone(),
            events_applied: metrics.cluster_events_applied.clone(),
            writes_skipped: metrics.cluster_writes_skipped.clone(),
            origin: random_origin(),
            entries_replicated: metrics.cluster_entries_replicated.clone(),
            entries_backfilled: metrics.cluster_entries_backfilled.clone(),
            tally: counters::Tally::new(metrics.namespaces.clone()),
            fleet_metrics: metrics.fleet.clone(),
            locks: coalesce::Locks::default(),
            cools: cooldowns::Published::default(),
        }
    }

    /// `XADD {prefix}:events MAXLEN ~ N *`, fields to follow.
    pub(crate) fn xadd(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.events_key()).arg("MAXLEN").arg("~").arg(self.settings.stream_max_len).arg("*");
        cmd
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// `connected`, or `degraded` while Redis is unreachable.
    pub fn state_label(&self) -> &'static str {
        if self.is_connected() {
            "connected"
        } else {
            "degraded"
        }
    }

    /// `/admin/stats`.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "state": self.state_label(),
            "connected": self.is_connected(),
            "degraded": !self.is_connected(),
            "redis_hits": self.redis_hits.get(),
            "events_applied": self.events_applied.get(),
            "corrupt_values": self.corrupt_values.get(),
            "writes_skipped": self.writes_skipped.get(),
            "entries_replicated": self.entries_replicated.get(),
            "entries_backfilled": self.entries_backfilled.get(),
        })
    }

    fn set_connected(&self, up: bool) {
        let was = self.connected.swap(up, Ordering::SeqCst);
        self.degraded_gauge.set(i64::from(!up));
        if was && !up {
            tracing::warn!("cluster degraded: Redis unreachable; serving from this replica's store and upstream");
        } else if !was && up {
            tracing::info!("cluster connected: sharing through Redis");
        }
    }

    /// Marks the replica degraded and drops the connection: the background
    /// reader reconnects and resynchronises.
    fn lost(&self) {
        self.set_connected(false);
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn handle(&self) -> Option<ConnectionManager> {
        if !self.is_connected() {
            return None;
        }
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn prefix(&self) -> &str {
        &self.settings.key_prefix
    }

    /// `{prefix}:e:{namespace}:{key hex}`: the tenant is in every entry's key.
    fn entry_key(&self, namespace: &str, id: &CacheKey) -> String {
        format!("{}:e:{namespace}:{}", self.prefix(), id.to_hex())
    }

    fn events_key(&self) -> String {
        format!("{}:events", self.prefix())
    }

    /// The `meta` key holding the last stream id this replica applied.
    fn position_key(&self) -> String {
        format!("cluster/{}/events_applied_up_to", self.prefix())
    }

    /// Opens a connection; `response_timeout` bounds each reply on it.
    async fn connect(&self, response_timeout: Duration) -> Result<ConnectionManager, FleetError> {
        let mut info = self.settings.redis_url.as_str().into_connection_info()?;
        if let Some(p) = &self.settings.password {
            info.redis.password = Some(p.clone());
        }
        let client = redis::Client::open(info)?;
        let connect_timeout = self.settings.timeout.max(Duration::from_millis(500));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(connect_timeout)
            .set_response_timeout(response_timeout)
            .set_number_of_retries(1);
        match tokio::time::timeout(connect_timeout * 2, ConnectionManager::new_with_config(client, config)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(FleetError::Timeout(connect_timeout * 2)),
        }
    }

    /// Runs one command (or atomic pipeline) within `cluster.timeout`. A
    /// failure degrades the replica until the reader has reconnected.
    async fn run<T: redis::FromRedisValue>(&self, q: Query<'_>) -> Result<T, FleetError> {
        let Some(mut conn) = self.handle() else { return Err(FleetError::Unreachable) };
        let limit = self.settings.timeout;
        let reply = match q {
            Query::Cmd(c) => tokio::time::timeout(limit, c.query_async::<T>(&mut conn)).await,
            Query::Pipe(p) => tokio::time::timeout(limit, p.query_async::<T>(&mut conn)).await,
        };
        match reply {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if !matches!(e.kind(), redis::ErrorKind::ResponseError | redis::ErrorKind::TypeError) {
                    self.lost();
                }
                Err(e.into())
            }
            Err(_) => {
                self.lost();
                Err(FleetError::Timeout(limit))
            }
        }
    }

    /// Remembers a tombstone before it is applied, so that a copy read from
    /// Redis concurrently is refused by [`Fleet::buried`].
    fn remember(&self, tomb: Tomb) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while recent.front().is_some_and(|r| now.duration_since(r.applied) > TOMB_MEMORY)
            || recent.len() >= TOMB_MEMORY_MAX
        {
            recent.pop_front();
        }
        recent.push_back(Remembered { applied: now, tomb });
    }

    /// Whether a delete or purge applied here recently covers `entry`. Such
    /// a copy is refused whatever its age: clocks differ between replicas,
    /// and a refused copy is only a miss.
    fn buried(&self, entry: &Entry) -> bool {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().any(|r| match &r.tomb {
            Tomb::Id(id) => *id == entry.id,
            Tomb::Filter(f) => f.matches(entry),
        })
    }
}

/// A random id for this process (std's per-process hash keys, the pid and the clock).
fn random_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

/// A command or an atomic pipeline, for [`Fleet::run`].
enum Query<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}
