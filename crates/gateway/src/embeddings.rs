//! `POST /v1/embeddings`: passed through to a configured model, cached exactly.

use crate::cache_control::{CacheMode, CachePolicy};
use crate::config::Config;
use crate::ledger::Spend;
use crate::reply::{self, Body, Outcome};
use crate::respond::{self, HitKind};
use crate::stages::store::NewEntry;
use crate::state::AppState;
use crate::walker::{classify, Bill, Walker, MAX_RESPONSE_BYTES};
use deja_api::key::embeddings_key;
use deja_api::{ApiError, EmbeddingsRequest, ErrorKind};
use deja_cache::exact;
use deja_router::{estimate_tokens, FailureKind, RouteInput, Target, Tokens};
use deja_store::{EntryKind, EntryUsage};
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;

pub async fn embeddings(
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &Parts,
    tenant: Option<&str>,
    body: &[u8],
) -> Outcome {
    match run(state, config, parts, tenant, body).await {
        Ok(o) => o,
        Err(e) => Outcome::error(&e),
    }
}

async fn run(
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &Parts,
    tenant: Option<&str>,
    body: &[u8],
) -> Result<Outcome, ApiError> {
    let req = EmbeddingsRequest::parse(body)?;
    if !matches!(config.catalog.resolve(&req.model), Some(Target::Model(_))) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("the embeddings model `{}` is not configured", req.model),
        )
        .with_code("model_not_found"));
    }
    crate::budget::check_allowed(&config, tenant, &req.model)?;
    let mut policy = CachePolicy::from_headers(&parts.headers)?;
    if !config.cache.enabled {
        policy.mode = CacheMode::Bypass;
    }
    let namespace = crate::headers::namespace(parts, tenant)?;
    let key = embeddings_key(&namespace, &req);
    state.ledger.request();
    if policy.reads() {
        let now = deja_cache::now_ms();
        if let Ok(Some((entry, _))) = exact::lookup_fresh(&state.store, &key, &policy.fresh, now) {
            state.ledger.hit(false, &entry, entry.cost_usd);
            let mut r = reply::json(StatusCode::OK, &entry.response);
            respond::hit_headers(&mut r, HitKind::Exact, &entry, now);
            return Ok(Outcome { response: r, cache: "exact" });
        }
    }

    let route =
        RouteInput { target: &req.model, prompt_tokens: estimate_tokens(req.input_chars()), task: None, route: None };
    let mut plan = crate::planning::make(&state.calls, &config, route)
        .map_err(|e| ApiError::new(ErrorKind::NotFound, e.to_string()))?;
    // Budgets apply to every upstream call a client key causes, as for chat:
    // refused past the budget, or cut to the cheapest model and not stored.
    let worst = crate::budget::worst_case_usd(&config, &plan, req.input_chars(), Some(0));
    let admitted = crate::budget::admit(&state.ledger, &config, tenant, &mut plan, worst)?;
    if admitted.downgraded {
        policy.mode = CacheMode::Bypass;
    }
    let _held = admitted.reservation;
    let body = serde_json::to_value(&req).unwrap_or_default();
    let bill = Bill { namespace: namespace.as_str().to_string(), why: Spend::Answer, prompt_chars: req.input_chars() };
    let mut walker = Walker::new(state.calls.clone(), config.clone(), &plan, "/embeddings", body, bill);
    let (value, raw, spec) = loop {
        let mut opened = walker.open().await?;
        match opened.response.collect(MAX_RESPONSE_BYTES).await {
            Ok(raw) => match serde_json::from_slice::<Value>(&raw) {
                Ok(v) if v.get("data").is_some_and(Value::is_array) => break (v, raw, opened.model),
                _ => walker.fail(
                    &opened.model,
                    FailureKind::Malformed,
                    None,
                    "the response was not an embeddings list".into(),
                ),
            },
            Err(e) => {
                let (kind, _, detail) = classify(&e);
                walker.fail(&opened.model, kind, None, detail);
            }
        }
    };
    walker.succeeded(&spec);
    let prompt_tokens = value.get("usage").and_then(|u| u.get("prompt_tokens")).and_then(Value::as_u64).unwrap_or(0);
    let cost = walker.charge_tokens(&spec, Tokens::new(prompt_tokens, 0));
    state.ledger.upstream_answer(namespace.as_str(), &spec.name, policy.mode);
    if policy.writes() {
        state
            .stages
            .store
            .store_off_runtime(
                config.cache.bounds(),
                NewEntry {
                    id: key,
                    kind: EntryKind::Embeddings,
                    namespace: namespace.as_str().to_string(),
                    requested_model: req.model.clone(),
                    answered_by: spec.name.clone(),
                    request: req.input.clone(),
                    response: value,
                    usage: EntryUsage { prompt_tokens, completion_tokens: 0 },
                    cost_usd: cost,
                    ttl: policy.ttl(config.cache.default_ttl, config.cache.max_ttl),
                    semantic: None,
                    conversation: None,
                    vector_of: None,
                },
            )
            .await;
    }
    let mut r: Response<Body> = reply::json_bytes(StatusCode::OK, raw);
    respond::miss_headers(&mut r, policy.miss_label(), &spec.name, walker.tries(), Some(cost));
    Ok(Outcome { response: r, cache: policy.miss_label() })
}
