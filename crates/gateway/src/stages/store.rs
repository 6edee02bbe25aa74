//! Store: an upstream answer written with its TTL, its vector indexed,
//! and offered to the other replicas ([cluster]).

use super::{Accepted, AnswerSink, Looked};
use crate::answer::Answer;
use crate::cache_control::CachePolicy;
use crate::metrics::Metrics;
use crate::ports::SharedTier;
use deja_api::{CacheKey, ContextFingerprint};
use deja_cache::conversation::ConversationIndex;
use deja_cache::maintenance::Bounds;
use deja_cache::SemanticIndex;
use deja_store::{ConversationMeta, Entry, EntryKind, EntryUsage, SemanticMeta};
use futures_util::future::BoxFuture;
use std::sync::Arc;
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

#[derive(Clone)]
pub struct Remember {
    pub store: Arc<deja_store::Store>,
    pub index: Arc<SemanticIndex>,
    pub conversations: Arc<ConversationIndex>,
    pub shared: Option<Arc<dyn SharedTier>>,
    pub metrics: Arc<Metrics>,
    /// Wakes the sweeper when the store is over its bounds.
    pub sweep_now: Arc<tokio::sync::Notify>,
}

impl Remember {
    /// Writes the entry and indexes its vector. Failures are logged: the client
    /// already has its answer, and a missing entry is only a future miss.
    pub fn store(&self, bounds: Bounds, new: NewEntry) -> Option<CacheKey> {
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
        if let Err(e) = self.store.put(&entry, vector.as_ref().map(|(_, v)| v.as_slice())) {
            tracing::warn!(error = %e, "could not store a cache entry");
            return None;
        }
        if let Some(shared) = &self.shared {
            shared.share(&entry, vector.as_ref().map(|(_, v)| v.as_slice()));
        }
        if let Some((fp, v)) = vector {
            if let Err(e) = self.index.insert(&self.store, entry.id, &fp, &v) {
                tracing::warn!(error = %e, "could not index a cache entry");
            }
            self.metrics.index_entries.set(self.index.len() as i64);
            if let Some((coarse, history)) = &conversation {
                self.conversations.insert(entry.id, coarse, &v, history);
            }
        }
        self.metrics.entries.set(self.store.len() as i64);
        if bounds.exceeded_by(&self.store) {
            self.sweep_now.notify_one();
        }
        Some(entry.id)
    }

    /// [`Remember::store`] on a blocking thread: indexing into a large graph
    /// takes milliseconds that must not stall the async workers. Waits for it,
    /// so the answer is findable by the time the client has it.
    pub async fn store_off_runtime(&self, bounds: Bounds, new: NewEntry) -> Option<CacheKey> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.store(bounds, new)).await.ok().flatten()
    }
}

impl AnswerSink for Remember {
    /// Builds the entry for an answer and stores it, if the policy and the answer allow.
    fn remember<'a>(
        &'a self,
        request: &'a Accepted,
        looked: &'a Looked,
        policy: &'a CachePolicy,
        answer: &'a Answer,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !policy.writes() || !answer.completion.is_complete() || looked.store_deferred {
                return;
            }
            let usage = answer.completion.usage.clone().unwrap_or_default();
            let fingerprint = looked.fingerprint.unwrap_or(request.fingerprint);
            let semantic = match (&request.question, &looked.vector) {
                (Some(q), Some(v)) => Some((fingerprint, q.clone(), v.clone())),
                _ => None,
            };
            let config = &request.config;
            let new = NewEntry {
                id: request.key,
                kind: deja_store::EntryKind::Chat,
                namespace: request.namespace.as_str().to_string(),
                requested_model: request.req.model.clone(),
                answered_by: answer.answered_by.clone(),
                request: serde_json::Value::Array(request.req.messages.clone()),
                response: serde_json::to_value(&answer.completion).unwrap_or_default(),
                usage: EntryUsage { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens },
                cost_usd: answer.cost_usd,
                ttl: policy.ttl(config.cache.default_ttl, config.cache.max_ttl),
                vector_of: semantic.as_ref().and(looked.vector_of.clone()),
                semantic,
                conversation: looked.conversation.clone(),
            };
            self.store_off_runtime(config.cache.bounds(), new).await;
        })
    }
}
