//! The life of a chat completion request, in order:
//! accept → exact → semantic → plan → coalesce → upstream → store.
//!
//! The only place that knows the order. Each stage answers the request or
//! hands the next one what it produced; the store stage is the upstream
//! stage's sink, so an answer is stored even if the client has gone.

use crate::config::Config;
use crate::reply::Outcome;
use crate::stages::accept::Arrived;
use crate::stages::upstream::Call;
use crate::stages::Step;
use crate::state::AppState;
use http::request::Parts;
use std::sync::Arc;
use std::time::Instant;

pub async fn chat(
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &Parts,
    tenant: Option<&str>,
    body: &[u8],
    request_id: String,
) -> Outcome {
    let stages = &state.stages;
    let routes = state.routes_of(&config);
    let arrived = Arrived { config, routes, parts, tenant, body, request_id, started: Instant::now() };
    let request = match stages.accept.run(arrived) {
        Ok(request) => request,
        Err(e) => return Outcome::error(&e),
    };
    if let Step::Answered(hit) = stages.exact.run(&request).await {
        return hit;
    }
    let looked = match stages.semantic.run(&request).await {
        Step::Answered(hit) => return hit,
        Step::Next(looked) => looked,
    };
    let planned = match stages.plan.run(&request, &looked, tenant) {
        Ok(planned) => planned,
        Err(e) => return Outcome::error(&e),
    };
    let leading = match stages.coalesce.run(&request, &planned).await {
        Step::Answered(shared) => return shared,
        Step::Next(leading) => leading,
    };
    stages.upstream.run(Call { request: Arc::new(request), looked, planned, leading }).await
}
