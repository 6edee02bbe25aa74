//! `deja_fleet_*`: the families the fleet (`deja-fleet`) writes when
//! `[cluster]` is set, registered with the rest so `/metrics` is one registry.

use super::labels::{FloatGauge, KindLabels};
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `deja_fleet_*`: the fleet's totals as last read from Redis, and what the
/// fleet-wide coalescing and cooldowns did on this replica.
#[derive(Clone, Default)]
pub struct FleetMetrics {
    pub hits: Family<KindLabels, Gauge>,
    pub misses: Gauge,
    pub saved_usd: FloatGauge,
    pub spent_usd: FloatGauge,
    pub coalesced: Family<KindLabels, PromCounter>,
    pub cooldowns_published: PromCounter,
    pub cooldowns_learned: PromCounter,
}

impl FleetMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("fleet_hits", "Cache hits across every replica, by kind (read from Redis)", m.hits.clone());
        registry.register("fleet_misses", "Cache misses across every replica (read from Redis)", m.misses.clone());
        registry.register(
            "fleet_saved_usd",
            "USD saved by every replica's hits (read from Redis)",
            m.saved_usd.clone(),
        );
        registry.register(
            "fleet_spent_usd",
            "USD spent upstream by every replica (read from Redis)",
            m.spent_usd.clone(),
        );
        registry.register(
            "fleet_coalesced",
            "Misses that waited for another replica answering the same request, by outcome \
             (answered: served its answer; upstream: called upstream after all)",
            m.coalesced.clone(),
        );
        registry.register(
            "fleet_cooldowns_published",
            "Model cooldowns this replica told the others about",
            m.cooldowns_published.clone(),
        );
        registry.register(
            "fleet_cooldowns_learned",
            "Model cooldowns this replica took from the others",
            m.cooldowns_learned.clone(),
        );
        m
    }
}
