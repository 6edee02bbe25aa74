//! Live per-model figures for `/admin/stats` and `/admin/health`: time to
//! first byte, throughput, error rate and cooldown, for every catalog model.

use deja_gateway::state::AppState;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// `{name: {ttfb_ewma_ms, ttfb_p90_ms, tokens_per_s, error_rate, attempts, cooling, seconds_left}}`;
/// figures without a sample yet are `null`.
pub fn models(state: &AppState) -> Map<String, Value> {
    let now = Instant::now();
    let cooling = state.calls.health.cooling(now);
    let config = state.config();
    config
        .catalog
        .models
        .iter()
        .map(|m| {
            let f = state.calls.latency.figures(&m.name);
            let left = cooling.iter().find(|(name, _)| *name == m.name).map(|(_, left)| left.as_secs_f64());
            let figures = json!({
                "ttfb_ewma_ms": f.ttfb_ewma_ms,
                "ttfb_p90_ms": f.ttfb_p90_ms,
                "tokens_per_s": f.tokens_per_s,
                "error_rate": f.error_rate,
                "attempts": f.attempts,
                "cooling": left.is_some(),
                "seconds_left": left.unwrap_or(0.0),
            });
            (m.name.clone(), figures)
        })
        .collect()
}
