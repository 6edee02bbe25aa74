//! Ports: what the request path asks of replicas sharing one cache
//! (`[cluster]`), as small traits the gateway owns. The Redis
//! implementation lives in its own crate (`deja-fleet`) and plugs in at
//! start-up; a single node runs with [`Ports::none`], and neither the
//! gateway nor a single-node build depends on Redis.
//!
//! Every port is infallible from the request path's side: trouble with
//! the shared backend means doing without it (a miss, calling upstream).

use crate::answer::Answer;
use deja_api::CacheKey;
use deja_store::{Entry, ListFilter};
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// The exact tier other replicas fill, asked after this replica's store.
pub trait SharedTier: Send + Sync {
    /// Another replica's fresh entry for `key`, if any.
    fn lookup<'a>(&'a self, key: &'a CacheKey, namespace: &'a str, now_ms: u64) -> BoxFuture<'a, Option<Entry>>;
    /// Offers an entry just stored here to the other replicas (in the background).
    fn share(&self, entry: &Entry, vector: Option<&[f32]>);
}

/// One upstream call per burst of identical requests across replicas.
pub trait FleetLock: Send + Sync {
    /// For the local leader of a missed key: call upstream (holding the
    /// fleet's lock, if one was taken, until the answer is shared or the
    /// request ends), or serve the answer another replica got meanwhile.
    fn turn<'a>(&'a self, namespace: &'a str, key: &'a CacheKey) -> BoxFuture<'a, Turn>;
}

/// Held while this replica calls upstream for a key; dropping it lets the key go.
pub type HeldLock = Box<dyn Send + Sync>;

pub enum Turn {
    Call(Option<HeldLock>),
    Answered(Arc<Answer>),
}

/// Model cooldowns seen by every replica.
pub trait SharedCooldowns: Send + Sync {
    /// `model` just started cooling down here.
    fn cooled(&self, model: &str);
}

/// Why a fleet-wide admin operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FleetAdminError(pub String);

/// What the admin API asks of the fleet.
pub trait FleetAdmin: Send + Sync {
    /// `/admin/stats` `cluster`.
    fn stats(&self) -> serde_json::Value;
    /// Fleet-wide hits, misses and USD for `/admin/stats` `fleet`.
    fn figures(&self) -> serde_json::Value;
    /// `connected` or `degraded`, for health details.
    fn state_label(&self) -> &'static str;
    /// Deletes an entry on every replica; how many copies went.
    fn delete<'a>(
        &'a self,
        key: &'a CacheKey,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, FleetAdminError>>;
    /// Purges what `filter` matches on every replica; how many shared copies went.
    fn purge(&self, filter: ListFilter) -> BoxFuture<'_, Result<usize, FleetAdminError>>;
}

/// The ports a replica runs with.
#[derive(Clone, Default)]
pub struct Ports {
    pub shared: Option<Arc<dyn SharedTier>>,
    pub lock: Option<Arc<dyn FleetLock>>,
    pub tally: Option<Arc<dyn crate::ledger::SharedTally>>,
    pub cooldowns: Option<Arc<dyn SharedCooldowns>>,
    pub admin: Option<Arc<dyn FleetAdmin>>,
}

impl Ports {
    /// A single node: nothing shared.
    pub fn none() -> Self {
        Self::default()
    }
}
