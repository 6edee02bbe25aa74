//! Storing an upstream answer and counting what it cost.

use crate::answer::Answer;
use crate::ctx::ChatCtx;
use crate::state::AppState;
use deja_api::{CacheKey, ContextFingerprint, Usage};
use deja_cache::maintenance::Bounds;
use deja_router::{cost_usd, ModelSpec, Tokens};
use deja_store::{usd_to_nano, ConversationMeta, Counter, Entry, EntryKind, EntryUsage, SemanticMeta};
use std::time::Duration;

/// What an entry is made of, before it is written.
pub struct NewEntry {
    pub id: CacheKey,
    pub kind: EntryKind,
    pub namespace: String,
    pub requested_model: String,
    pub answered_by: String,
    pub request: serde_json::Value,
    pub response: serde_json::Value,
    pub usage: EntryUsage,
    pub cost_usd: f64,
    pub ttl: Duration,
    /// Fingerprint, question and its vector, when the semantic cache may serve it.
    pub semantic: Option<(ContextFingerprint, String, Vec<f32>)>,
    /// Coarse fingerprint and history vector of a multi-turn request.
    pub conversation: Option<(ContextFingerprint, Vec<f32>)>,
    /// What the vector was made of, when not the question's whole text.
    pub vector_of: Option<String>,
}

/// Counts an answer that came from upstream: a miss, a refresh or a bypass.
pub fn count_upstream_answer(state: &AppState, namespace: &str, mode: crate::cache_control::CacheMode) {
    use crate::cache_control::CacheMode;
    let counter = match mode {
        CacheMode::Normal => Counter::Misses,
        CacheMode::Refresh => Counter::Refreshes,
        CacheMode::Bypass => Counter::Bypasses,
    };
    if let Err(e) = state.store.add(counter, 1) {
        tracing::warn!(error = %e, "could not count a miss");
    }
    if mode == CacheMode::Normal {
        state.metrics.cache_misses.inc();
        crate::fleet::count_miss(state, namespace);
    }
}

/// Counts the spend of an upstream answer made for `namespace`.
pub fn count_spend(state: &AppState, namespace: &str, model: &str, cost_usd: f64) {
    crate::fleet::count_spend(state, namespace, cost_usd);
    let nano = usd_to_nano(cost_usd);
    if let Err(e) = state.store.add_spent_by_model(model, nano) {
        tracing::warn!(error = %e, "could not count spend");
    }
    state.metrics.spent_usd.get_or_create(&crate::metrics::ModelLabels { model: model.to_string() }).inc_by(cost_usd);
}

/// Writes the entry and indexes its vector. Failures are logged: the client
/// already has its answer, and a missing entry is only a future miss.
pub fn store(state: &AppState, bounds: Bounds, new: NewEntry) -> Option<CacheKey> {
    let now = deja_cache::now_ms();
    let ttl_ms = new.ttl.as_millis().min(u128::from(u64::MAX / 2)) as u64;
    let conversation = new.semantic.as_ref().and(new.conversation);
    let (semantic, vector) = match new.semantic {
        Some((fp, text, v)) => {
            let meta = conversation
                .as_ref()
                .map(|(coarse, history)| ConversationMeta { coarse: coarse.to_hex(), history: history.clone() });
            (
                Some(SemanticMeta { fingerprint: fp.to_hex(), text, conversation: meta, vector_of: new.vector_of }),
                Some((fp, v)),
            )
        }
        None => (None, None),
    };
    let entry = Entry {
        id: new.id,
        kind: new.kind,
        namespace: new.namespace,
        requested_model: new.requested_model,
        answered_by: new.answered_by,
        request: new.request,
        response: new.response,
        usage: new.usage,
        cost_usd: new.cost_usd,
        created_ms: now,
        expires_ms: now.saturating_add(ttl_ms),
        semantic,
    };
    if let Err(e) = state.store.put(&entry, vector.as_ref().map(|(_, v)| v.as_slice())) {
        tracing::warn!(error = %e, "could not store a cache entry");
        return None;
    }
    crate::fleet::share(state, &entry, vector.as_ref().map(|(_, v)| v.as_slice()));
    if let Some((fp, v)) = vector {
        if let Err(e) = state.index.insert(&state.store, entry.id, &fp, &v) {
            tracing::warn!(error = %e, "could not index a cache entry");
        }
        state.metrics.index_entries.set(state.index.len() as i64);
        if let Some((coarse, history)) = &conversation {
            state.conversations.insert(entry.id, coarse, &v, history);
        }
    }
    state.metrics.entries.set(state.store.len() as i64);
    if bounds.exceeded_by(&state.store) {
        state.sweep_now.notify_one();
    }
    Some(entry.id)
}

/// [`store`] on a blocking thread: indexing into a large graph takes
/// milliseconds that must not stall the async workers. Waits for it, so the
/// answer is findable by the time the client has it.
pub async fn store_off_runtime(state: &std::sync::Arc<AppState>, bounds: Bounds, new: NewEntry) -> Option<CacheKey> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || store(&state, bounds, new)).await.ok().flatten()
}

/// Counts a served hit: what the entry cost when first answered, less what
/// verifying it cost (never below zero), is what it saved.
pub fn count_hit(state: &AppState, semantic: bool, entry: &Entry, saved_usd: f64) {
    let counter = if semantic { Counter::SemanticHits } else { Counter::ExactHits };
    let tokens = entry.usage.prompt_tokens + entry.usage.completion_tokens;
    let results = [
        state.store.add(counter, 1),
        state.store.add(Counter::TokensSaved, tokens),
        state.store.add(Counter::NanoUsdSaved, usd_to_nano(saved_usd)),
    ];
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        tracing::warn!(error = %e, "could not count a hit");
    }
    state.lookups.count_hit(&entry.namespace, &entry.answered_by, semantic, usd_to_nano(saved_usd));
    crate::fleet::count_hit(state, &entry.namespace, semantic, saved_usd);
    let kind = if semantic { "semantic" } else { "exact" };
    state.metrics.cache_hits.get_or_create(&crate::metrics::KindLabels { kind: kind.into() }).inc();
    state.metrics.saved_usd.inc_by(saved_usd.max(0.0));
}

/// Counts one verifier call made for `namespace` and what it cost.
pub fn count_verification(state: &AppState, namespace: &str, cost_usd: f64) {
    // Past the cap, namespaces are counted together, in the store as in /metrics.
    let labels = state.metrics.namespaces.label(namespace);
    state.store.add_verification(&labels.namespace, usd_to_nano(cost_usd));
    state.metrics.verifications.get_or_create(&labels).inc();
    state.metrics.verification_usd.get_or_create(&labels).inc_by(cost_usd.max(0.0));
}

/// Counts a question the embedding model cannot read: served by its exact key only.
pub fn count_unmatchable(state: &AppState, why: deja_cache::Unreadable) {
    let counter = match why {
        deja_cache::Unreadable::TooLong => Counter::UnmatchableTooLong,
        deja_cache::Unreadable::UnknownTokens => Counter::UnmatchableUnknownTokens,
    };
    let _ = state.store.add(counter, 1);
    let labels = crate::metrics::ReasonLabels { reason: why.as_str().into() };
    state.metrics.unmatchable.get_or_create(&labels).inc();
}

/// Builds the entry for an answer and stores it, if the policy and the answer allow.
pub async fn remember_answer(ctx: &ChatCtx, answer: &Answer) {
    if !ctx.policy.writes() || !answer.completion.is_complete() || ctx.store_deferred {
        return;
    }
    let usage = answer.completion.usage.clone().unwrap_or_default();
    let semantic = match (&ctx.question, &ctx.vector) {
        (Some(q), Some(v)) => Some((ctx.fingerprint, q.clone(), v.clone())),
        _ => None,
    };
    let response = serde_json::to_value(&answer.completion).unwrap_or_default();
    let new = NewEntry {
        id: ctx.key,
        kind: deja_store::EntryKind::Chat,
        namespace: ctx.namespace.as_str().to_string(),
        requested_model: ctx.req.model.clone(),
        answered_by: answer.answered_by.clone(),
        request: serde_json::Value::Array(ctx.req.messages.clone()),
        response,
        usage: EntryUsage { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens },
        cost_usd: answer.cost_usd,
        ttl: ctx.policy.ttl(ctx.config.cache.default_ttl, ctx.config.cache.max_ttl),
        vector_of: semantic.as_ref().and(ctx.vector_of.clone()),
        semantic,
        conversation: ctx.conversation.as_ref().and_then(|c| Some((c.coarse, c.history.clone()?))),
    };
    store_off_runtime(&ctx.state, ctx.config.cache.bounds(), new).await;
}

/// What an answer reporting `usage` cost at `spec`'s prices: prompt tokens
/// read from or written to the provider's prompt cache at their own prices
/// (see [`deja_router::cost_usd`]). Nothing without usage.
pub fn answer_cost(spec: &ModelSpec, usage: Option<&Usage>) -> f64 {
    let Some(u) = usage else { return 0.0 };
    let tokens = Tokens {
        prompt: u.prompt_tokens,
        cached: u.cached_tokens(),
        cache_write: u.cache_write_tokens,
        completion: u.completion_tokens,
    };
    cost_usd(spec, tokens)
}

/// Counts a miss, refresh or bypass answered by `model`, and what it cost.
pub fn count_miss(ctx: &ChatCtx, model: &str, cost_usd: f64) {
    count_upstream(&ctx.state, ctx.namespace.as_str(), model, ctx.policy.mode, cost_usd);
}

/// Counts an answer `model` gave from upstream for `namespace` in `mode`,
/// and what it cost: in the store, in the metrics and per namespace and model.
pub fn count_upstream(
    state: &AppState,
    namespace: &str,
    model: &str,
    mode: crate::cache_control::CacheMode,
    cost_usd: f64,
) {
    count_upstream_answer(state, namespace, mode);
    count_spend(state, namespace, model, cost_usd);
    let miss = mode == crate::cache_control::CacheMode::Normal;
    state.lookups.count_upstream(namespace, model, miss, usd_to_nano(cost_usd));
}
