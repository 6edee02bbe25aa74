//! A ladder's latency options, as the catalog holds them. How they order the
//! rungs is in `order.rs`; they are kept apart so the catalog, which only
//! stores them, does not depend on the ordering code.

use std::time::Duration;

/// How a ladder orders the rungs left after the start rung, context window,
/// cooldown and `max_ttfb` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The order the rungs are listed in: cheapest first.
    #[default]
    Cost,
    /// Rungs with no recent time-to-first-byte sample first, in cost order
    /// (each gets tried, so it becomes known); then the others, fastest
    /// recent p90 first, compared on a ×1.25 scale (see
    /// [`speed_class`](crate::order::speed_class)) with ties in cost order.
    Latency,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cost" => Some(Self::Cost),
            "latency" => Some(Self::Latency),
            _ => None,
        }
    }
}

/// A ladder's latency options; the default changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyPolicy {
    pub strategy: Strategy,
    /// Skip (for this request) a rung whose recent p90 time to first byte
    /// is over this, unless every candidate is.
    pub max_ttfb: Option<Duration>,
    /// Start the next rung too when an attempt has not sent its first byte
    /// by then; the first to send one wins.
    pub hedge_after: Option<Duration>,
}
