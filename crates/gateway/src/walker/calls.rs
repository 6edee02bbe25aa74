//! What making upstream calls needs, handed to every walker: the client,
//! the live health and latency figures it updates, the metrics, the ledger
//! it charges and the fleet's cooldowns. Nothing of the cache.

use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::ports::SharedCooldowns;
use deja_router::{Health, Latency};
use deja_upstream::UpstreamClient;
use std::sync::Arc;

pub struct Calls {
    pub upstream: UpstreamClient,
    pub health: Health,
    /// Live time to first byte, throughput and error rate per model.
    pub latency: Latency,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<Ledger>,
    /// Cooldowns other replicas should skip too ([cluster]).
    pub cooldowns: Option<Arc<dyn SharedCooldowns>>,
}
