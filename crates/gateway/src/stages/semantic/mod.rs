//! Semantic: embed the last user message, choose its route, and look for a
//! paraphrase already answered: served above the threshold, asked of the
//! verifier in the grey band, or (for a conversation) served only on the
//! verifier's yes. What a miss learns (the vector, the route, a template)
//! goes on in [`Looked`], for storing its answer.

mod conversation;
mod grey;

pub use conversation::PROMPT as CONVERSATION_PROMPT;

use super::{Accepted, Looked, Step};
use crate::hits::{Found, Hits};
use crate::lookups::{Asked, Lookups};
use crate::respond::HitKind;
use crate::verify::Rejections;
use crate::walker::Calls;
use deja_cache::conversation::ConversationIndex;
use deja_cache::{semantic, SemanticIndex, SpanVectors};
use deja_embed::{EmbedService, Embedder};
use deja_store::Store;
use std::sync::Arc;

pub struct Semantic {
    /// `None` when the semantic cache is off.
    pub embed: Option<EmbedService>,
    /// The same model, for reading texts and embedding what differs.
    pub model: Option<Arc<dyn Embedder>>,
    pub spans: Arc<SpanVectors>,
    pub store: Arc<Store>,
    pub index: Arc<SemanticIndex>,
    pub conversations: Arc<ConversationIndex>,
    /// The live quality SLO, which may raise a namespace's threshold.
    pub slo: Arc<crate::slo::Tracker>,
    pub rejections: Arc<Rejections>,
    /// For the verifier.
    pub calls: Arc<Calls>,
    pub lookups: Arc<Lookups>,
    pub hits: Arc<Hits>,
}

impl Semantic {
    pub async fn run(&self, request: &Accepted) -> Step<Looked> {
        let mut looked = Looked::default();
        let (Some(embed), Some(question)) = (&self.embed, &request.question) else { return Step::Next(looked) };
        if !request.policy.writes() {
            return Step::Next(looked);
        }
        // A conversation's history is embedded in the same batch as its question.
        let mut texts = vec![question.clone()];
        texts.extend(request.conversation.as_ref().map(|c| c.history_text.clone()));
        let mut vectors = match embed.embed_many(texts).await {
            Ok(v) => v.into_iter(),
            Err(e) => {
                tracing::warn!(error = %e, "embedding failed; semantic stage skipped");
                return Step::Next(looked);
            }
        };
        let Some(vector) = vectors.next() else { return Step::Next(looked) };
        // A semantic route changes who answers, so it is keyed. The exact key
        // needs nothing more: it hashes every message, so two requests sharing
        // it have the same question, hence the same vector and the same route.
        // Two paraphrases may route differently: the route's rung joins the
        // fingerprint a semantic hit must match.
        looked.route = crate::routes::choose(&request.routes, &request.config, &request.req.model, &vector);
        let routed = |fp| match &looked.route {
            Some(rung) => deja_api::key::route_fingerprint(fp, rung),
            None => fp,
        };
        let fingerprint = routed(request.fingerprint);
        looked.fingerprint = Some(fingerprint);
        looked.conversation = request.conversation.as_ref().and_then(|c| Some((routed(c.coarse), vectors.next()?)));
        looked.vector = Some(vector.clone());
        if !request.policy.reads() {
            return Step::Next(looked);
        }
        let config = &request.config;
        let settings = &config.cache.semantic;
        let threshold = settings.threshold_for(&request.req.model, request.floor);
        let threshold = self.slo.threshold(request.namespace.as_str(), threshold, &config.cache.slo);
        // A client that raised the threshold is served nothing below its floor, verified or not.
        let verify_from = settings.verify_from.max(request.floor.unwrap_or(0.0).min(1.0));
        let verify = config.cache.verifier.as_ref().map(|v| (verify_from, v.max_candidates));
        let now = deja_cache::now_ms();
        let mut found = match self.lookup(request, fingerprint, vector, threshold, verify, now).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "semantic lookup failed; treating as a miss");
                return Step::Next(looked);
            }
        };
        let asked =
            Asked { namespace: request.namespace.as_str(), model: &request.req.model, question: Some(question) };
        let seen = crate::lookups::note(&self.lookups, asked, threshold, &found);
        if let Some(why) = found.unreadable {
            self.calls.ledger.unmatchable(why);
        }
        for r in &found.refusals {
            self.calls.ledger.guard_refusal(r.as_str());
        }
        let template = found.template.take();
        if let Some(hit) = found.hit {
            let kind = HitKind::Semantic { similarity: hit.similarity };
            let route = looked.route.as_deref();
            let found = Found { kind, entry: &hit.entry, now_ms: now, verification_usd: None, route };
            return Step::Answered(self.hits.entry(request, found));
        }
        let grey = grey::Grey { semantic: self, request, looked: &looked, question };
        let (verified, deferred) = grey.verify(found.grey).await;
        if let Some(hit) = seen.finish(verified) {
            return Step::Answered(hit);
        }
        looked.store_deferred = deferred;
        // The same question after other earlier turns: only on the verifier's yes.
        let convo = conversation::Conversation { semantic: self, request, looked: &looked, question };
        if let Some(found) = convo.run(verify_from).await {
            if request.policy.fresh.accepts(&found.entry, deja_cache::now_ms()) {
                let grey = grey::Grey { semantic: self, request, looked: &looked, question };
                return Step::Answered(grey.serve_verified(&found.entry, found.similarity, found.cost_usd).await);
            }
        }
        // A miss behind a template: its answer is stored in the template's
        // group, under the vector of the question's own part.
        if let Some(t) = template {
            looked.fingerprint = Some(t.fingerprint);
            looked.vector = Some(t.vector);
            looked.vector_of = Some(t.part);
        }
        Step::Next(looked)
    }

    /// The graph search and store reads, on a blocking thread.
    async fn lookup(
        &self,
        request: &Accepted,
        fingerprint: deja_api::ContextFingerprint,
        vector: Vec<f32>,
        threshold: f32,
        verify: Option<(f32, usize)>,
        now: u64,
    ) -> Result<semantic::Lookup, deja_store::StoreError> {
        let (store, index, spans, model) =
            (self.store.clone(), self.index.clone(), self.spans.clone(), self.model.clone());
        let (namespace, config) = (request.namespace.clone(), request.config.clone());
        let (text, fresh) = (request.question.clone().unwrap_or_default(), request.policy.fresh);
        let lookup = tokio::task::spawn_blocking(move || {
            let query = semantic::Query {
                namespace: namespace.as_str(),
                fingerprint: &fingerprint,
                vector: &vector,
                text: &text,
                threshold,
                fresh,
            };
            let Some(model) = model.as_deref() else { return Ok(semantic::Lookup::default()) };
            let reader = semantic::Reader { model, spans: Some(&spans) };
            semantic::lookup_banded(&store, &index, &query, &config.cache.semantic, reader, verify, now)
        })
        .await;
        lookup.unwrap_or_else(|e| Err(deja_store::StoreError::Corrupt(format!("semantic lookup task: {e}"))))
    }
}
