//! What monitoring reads: `/readyz` and the Prometheus `/metrics` page.

use deja_gateway::metrics::ModelLabels;
use deja_gateway::reply::{self, Body};
use deja_gateway::state::AppState;
use http::{Response, StatusCode};
use std::time::Instant;

/// Ready when the store answers.
pub fn readyz(state: &AppState) -> Response<Body> {
    let store_ok = state.store.counter(deja_store::Counter::Requests).is_ok();
    let status = if store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut detail = serde_json::json!({
        "status": if store_ok { "ready" } else { "store unavailable" },
        "semantic_cache": state.embed.is_some(),
        "semantic_index_ready": state.index_ready.load(std::sync::atomic::Ordering::Relaxed),
        "entries": state.store.len(),
    });
    // A degraded cluster still serves (from this replica and upstream): still ready.
    if let (Some(fleet), Some(fields)) = (&state.ports.admin, detail.as_object_mut()) {
        fields.insert("cluster".into(), fleet.state_label().into());
    }
    reply::json(status, &detail)
}

/// Every metric in the OpenMetrics text format, with gauges refreshed first.
pub fn metrics(state: &AppState) -> Response<Body> {
    let now = Instant::now();
    let m = &state.metrics;
    m.entries.set(state.store.len() as i64);
    m.index_entries.set(state.index.len() as i64);
    m.store_bytes.set(state.store.bytes() as i64);
    m.index_memory_bytes.set(state.index.stats().approx_bytes as i64);
    let config = state.config();
    for model in &config.catalog.models {
        let cooling = state.calls.health.is_cooling(&model.name, now);
        m.cooldowns.get_or_create(&ModelLabels { model: model.name.clone() }).set(i64::from(cooling));
    }
    // Only models with samples get figures: a zero would read as "instant".
    for (name, f) in state.calls.latency.all() {
        let labels = ModelLabels { model: name };
        let g = &m.models;
        let gauges = [
            (&g.ttfb_ewma, f.ttfb_ewma_ms.map(|ms| ms / 1000.0)),
            (&g.ttfb_p90, f.ttfb_p90_ms.map(|ms| ms / 1000.0)),
            (&g.tokens_per_s, f.tokens_per_s),
        ];
        for (family, value) in gauges {
            if let Some(v) = value {
                family.get_or_create(&labels).set(v);
            }
        }
        if f.attempts > 0 {
            g.error_rate.get_or_create(&labels).set(f.error_rate);
        }
    }
    let mut r = Response::new(reply::full(m.encode()));
    if let Ok(v) = "application/openmetrics-text; version=1.0.0; charset=utf-8".parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}
