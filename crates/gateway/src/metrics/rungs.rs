//! Metrics of latency-aware ladders: rungs skipped by the plan, ladders
//! whose every rung was over `max_ttfb`, and hedged requests.
//!
//! The hedge rate of a ladder is `deja_hedges_total / deja_hedge_eligible_total`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LadderLabels {
    pub ladder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    pub ladder: String,
    pub model: String,
    /// `below_start`, `context_too_small`, `cooling_down` or `slow_first_byte`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HedgeLabels {
    pub ladder: String,
    /// `first`, `hedge`, or `neither` (both failed, or the request was at fault).
    pub winner: String,
}

pub struct RungMetrics {
    pub skipped: Family<SkipLabels, Counter>,
    pub ttfb_fallback: Family<LadderLabels, Counter>,
    pub hedge_eligible: Family<LadderLabels, Counter>,
    pub hedges: Family<HedgeLabels, Counter>,
    pub hedge_loser_usd: Family<super::labels::ModelLabels, Counter<f64, AtomicU64>>,
}

impl RungMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            skipped: Family::default(),
            ttfb_fallback: Family::default(),
            hedge_eligible: Family::default(),
            hedges: Family::default(),
            hedge_loser_usd: Family::default(),
        };
        registry.register("rung_skipped", "Ladder rungs left out of a request's plan, by reason", m.skipped.clone());
        registry.register(
            "ladder_ttfb_fallback",
            "Plans where every candidate rung was over max_ttfb, so none was skipped for it",
            m.ttfb_fallback.clone(),
        );
        registry.register(
            "hedge_eligible",
            "Client misses walked on a ladder with hedge_after (the hedge rate's denominator)",
            m.hedge_eligible.clone(),
        );
        registry.register("hedges", "Hedges started, by which attempt sent its first byte first", m.hedges.clone());
        registry.register(
            "hedge_loser_usd",
            "Estimated USD of hedge losers cancelled before their first byte (prompt at input price)",
            m.hedge_loser_usd.clone(),
        );
        m
    }
}
