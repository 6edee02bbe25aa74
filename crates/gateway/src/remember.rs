//! Storing an upstream answer.

use crate::answer::Answer;
use crate::ctx::ChatCtx;
use crate::state::AppState;
use deja_api::{CacheKey, ContextFingerprint};
use deja_cache::maintenance::Bounds;
use deja_store::{ConversationMeta, Entry, EntryKind, EntryUsage, SemanticMeta};
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
