//! The admin routes the dashboard adds to the admin API: stats over time
//! (`GET /admin/history`, and per model or namespace
//! `GET /admin/history/by-model` and `/admin/history/by-namespace`) and the
//! ladder's live health (`GET /admin/health`).
//! Everything else goes to [`crate::api::handle`]. The caller has already
//! shown the admin token.

use crate::breakdown::Dimension;
use crate::history::{History, Sample, Window};
use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::{self, Body};
use deja_gateway::state::AppState;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the listener keeps for the admin surface besides the state.
pub struct Dashboard {
    pub history: Arc<History>,
}

impl Dashboard {
    /// Starts the stats sampler for `state`.
    pub fn start(state: &Arc<AppState>) -> Self {
        Self { history: crate::history::spawn(state) }
    }
}

pub async fn handle(state: &Arc<AppState>, dash: &Dashboard, parts: &Parts, body: &[u8]) -> Response<Body> {
    let result = match (&parts.method, parts.uri.path().trim_end_matches('/')) {
        (&Method::GET, "/admin/history") => history(state, dash, parts.uri.query().unwrap_or("")),
        (&Method::GET, "/admin/history/by-model") => breakdown(state, dash, Dimension::Model, parts.uri.query()),
        (&Method::GET, "/admin/history/by-namespace") => {
            breakdown(state, dash, Dimension::Namespace, parts.uri.query())
        }
        (&Method::GET, "/admin/health") => Ok(health(state)),
        (&Method::GET, "/admin/lookups") => crate::lookups::report(state, parts.uri.query().unwrap_or("")),
        _ => return crate::api::handle(state, parts, body).await,
    };
    match result {
        Ok(v) => reply::json(StatusCode::OK, &v),
        Err(e) => reply::error(&e),
    }
}

/// The `window` query parameter (`1h` when absent).
fn window(query: &str) -> Result<Window, ApiError> {
    let asked = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "window").map(|(_, v)| v.into_owned());
    match asked.as_deref() {
        None => Ok(Window::Hour),
        Some(w) => {
            Window::parse(w).ok_or_else(|| ApiError::invalid_request("window is one of 1h, 1d, 1w", Some("window")))
        }
    }
}

fn breakdown(state: &AppState, dash: &Dashboard, d: Dimension, query: Option<&str>) -> Result<Value, ApiError> {
    let window = window(query.unwrap_or(""))?;
    Ok(dash.history.breakdown(state, d, window, deja_cache::now_ms()))
}

fn history(state: &AppState, dash: &Dashboard, query: &str) -> Result<Value, ApiError> {
    let window = window(query)?;
    let now =
        Sample::take(state, deja_cache::now_ms()).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    Ok(dash.history.report(window, now))
}

/// Every model in the catalog: whether it is cooling down (and how long for)
/// and its failed upstream attempts by kind since start.
fn health(state: &AppState) -> Value {
    let config = state.config();
    let cooling: BTreeMap<String, f64> = state
        .calls
        .health
        .cooling(std::time::Instant::now())
        .into_iter()
        .map(|(m, left)| (m, left.as_secs_f64()))
        .collect();
    let errors = upstream_errors(&state.metrics.encode());
    let figures = crate::figures::models(state);
    let models: Vec<Value> = config
        .catalog
        .models
        .iter()
        .map(|m| {
            let errs = errors.get(&m.name).cloned().unwrap_or_default();
            json!({
                "model": m.name,
                "provider": m.provider,
                "cooling": cooling.contains_key(&m.name),
                "seconds_left": cooling.get(&m.name).copied().unwrap_or(0.0),
                "errors": errs.values().sum::<u64>(),
                "errors_by_kind": errs,
                "figures": figures.get(&m.name),
            })
        })
        .collect();
    let ladders: Vec<Value> =
        config.catalog.ladders.iter().map(|l| json!({"name": l.name, "rungs": l.rungs})).collect();
    json!({"models": models, "ladders": ladders})
}

/// `deja_upstream_errors_total{model="m",kind="k"} n` lines, by model then kind.
fn upstream_errors(metrics: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("deja_upstream_errors_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
        };
        let (Some(model), Some(kind), Ok(n)) = (label("model"), label("kind"), value.trim().parse::<f64>()) else {
            continue;
        };
        *out.entry(model.to_string()).or_default().entry(kind.to_string()).or_default() += n as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_errors_are_read_from_the_metrics_page() {
        let page = "# TYPE deja_upstream_errors counter\n\
            deja_upstream_errors_total{model=\"cheap\",kind=\"server\"} 3\n\
            deja_upstream_errors_total{model=\"cheap\",kind=\"timeout\"} 1\n\
            deja_upstream_errors_total{model=\"top\",kind=\"rate_limited\"} 2\n\
            deja_cache_misses_total 9\n";
        let e = upstream_errors(page);
        assert_eq!(e.get("cheap").map(|k| k.values().sum::<u64>()), Some(4));
        assert_eq!(e.get("top").and_then(|k| k.get("rate_limited")), Some(&2));
        assert!(!e.contains_key("deja_cache_misses_total"));
    }
}
