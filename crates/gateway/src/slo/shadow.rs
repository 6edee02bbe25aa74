//! Shadow calls: a sampled semantic hit, already served, asked upstream
//! again in the background and compared with what was served.
//!
//! The call is the same request through the same ladder and [`Walker`],
//! non-streamed. It is never cached, never coalesced, never counted as a
//! client miss; it is counted apart (`shadow_calls`, `shadow_usd`). What it
//! costs is spent all the same: the walker charges it to the namespace and
//! the client's budget, and no shadow call is made past that budget.

use super::Check;
use crate::config::{Config, VerifierSettings};
use crate::ledger::{Budget, Spend};
use crate::verify::Payer;
use crate::walker::{Bill, Calls, Completed, Walker, MAX_RESPONSE_BYTES};
use deja_api::{ApiError, ChatRequest, ErrorKind};
use deja_router::{estimate_tokens, RouteInput};
use std::sync::Arc;

/// The verifier's system message when it compares two answers.
pub const ANSWER_PROMPT: &str = "You check a cache. The new request below is a freshly generated answer; the \
numbered cached request is the answer that was served from the cache for the same question. Reply 1 if both \
answers say the same thing (the same facts, numbers, names, steps and conclusion; wording may differ), or none \
if they differ in substance.";

/// What shadow calls need, built once: the calls, the embedder that
/// compares answers, the tracker that keeps the SLO.
pub struct Sampler {
    pub calls: Arc<Calls>,
    pub embed: Option<deja_embed::EmbedService>,
    pub tracker: Arc<super::Tracker>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The semantic hit just served, as its shadow call needs it.
pub struct Served<'a> {
    pub config: &'a Arc<Config>,
    pub req: &'a ChatRequest,
    pub task: Option<&'a str>,
    pub route: Option<&'a str>,
    pub namespace: &'a str,
    pub question: Option<&'a str>,
    pub budget: Option<&'a Budget>,
}

/// What a shadow task needs once the request is gone.
struct Shadow {
    sampler: Arc<Sampler>,
    config: Arc<Config>,
    req: ChatRequest,
    task: Option<String>,
    route: Option<String>,
    namespace: String,
    budget: Option<Budget>,
    question: String,
    cached: String,
    generation: u64,
}

/// Gives the in-flight slot back however the task ends.
struct Slot(Arc<super::Tracker>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl Sampler {
    /// Samples a semantic hit just served from `entry`: with probability
    /// `sample_rate`, starts its shadow call in the background. Never waits.
    /// Past the client's budget no call is made for it.
    pub fn sample(self: &Arc<Self>, hit: Served<'_>, entry: &deja_store::Entry) {
        let settings = &hit.config.cache.slo;
        if !settings.enabled() || !self.tracker.should_sample(settings.sample_rate) {
            return;
        }
        let (Some(question), Some(cached)) = (hit.question, answer_text(&entry.response)) else {
            return;
        };
        if self.calls.ledger.reached(hit.budget) {
            return;
        }
        if !self.tracker.begin() {
            tracing::debug!("too many shadow calls in flight; a sampled hit is not checked");
            return;
        }
        let slot = Slot(self.tracker.clone());
        let shadow = Shadow {
            sampler: self.clone(),
            config: hit.config.clone(),
            req: hit.req.clone(),
            task: hit.task.map(str::to_string),
            route: hit.route.map(str::to_string),
            namespace: hit.namespace.to_string(),
            budget: hit.budget.cloned(),
            question: question.to_string(),
            cached,
            generation: self.tracker.generation(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            shadow.run().await;
        });
    }
}

/// The text of a stored completion's first choice.
fn answer_text(response: &serde_json::Value) -> Option<String> {
    response.get("choices")?.get(0)?.get("message")?.get("content")?.as_str().map(str::to_string)
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na <= 0.0 || nb <= 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

impl Shadow {
    async fn run(self) {
        let slo = &self.sampler.tracker;
        let metrics = &self.sampler.metrics.slo;
        let (fresh, call_usd) = match self.call().await {
            Ok(answer) => answer,
            Err(e) => {
                slo.count_shadow(metrics, &self.namespace, 0.0);
                tracing::warn!(error = %e, "shadow call failed; the sampled hit is not checked");
                return;
            }
        };
        let (similarity, verdict, check_usd) = self.compare(&fresh).await;
        slo.count_shadow(metrics, &self.namespace, call_usd + check_usd);
        let settings = &self.config.cache.slo;
        let false_hit = match (verdict, similarity) {
            (Some(same), _) => !same,
            (None, Some(s)) => s < settings.answer_similarity,
            (None, None) => return,
        };
        let check = Check {
            question: self.question.clone(),
            cached_answer: self.cached.clone(),
            fresh_answer: fresh,
            similarity,
            verifier_agreed: verdict,
            false_hit,
            at_ms: deja_cache::now_ms(),
        };
        let base = self.config.cache.semantic.threshold;
        if let Some(raise) = slo.record(self.generation, &self.namespace, check, base, settings, metrics) {
            tracing::warn!(
                namespace = %self.namespace,
                threshold = (base + raise).min(settings.max_threshold),
                raise,
                "false-hit rate above the SLO; the namespace's semantic threshold is raised"
            );
        }
    }

    /// The same request, non-streamed, through the same ladder: the fresh
    /// answer's text and what it cost.
    async fn call(&self) -> Result<(String, f64), ApiError> {
        let route = RouteInput {
            target: &self.req.model,
            prompt_tokens: estimate_tokens(self.req.prompt_chars()),
            task: self.task.as_deref(),
            route: self.route.as_deref(),
        };
        let config = &self.config;
        let plan = crate::planning::make(&self.sampler.calls, config, route)
            .map_err(|e| ApiError::new(ErrorKind::BadGateway, format!("shadow call: {e}")))?;
        let mut body = serde_json::to_value(&self.req).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert("stream".to_string(), serde_json::Value::Bool(false));
            o.remove("stream_options");
        }
        let prompt_chars = self.req.prompt_chars();
        let max_tokens = self.req.max_completion_tokens.or(self.req.max_tokens);
        let worst = crate::budget::worst_case_usd(config, &plan, prompt_chars, max_tokens);
        let Some(_held) = crate::budget::for_side_call(&self.sampler.calls.ledger, self.budget.as_ref(), worst) else {
            return Err(ApiError::new(ErrorKind::InsufficientQuota, "the client's budget is reached"));
        };
        let bill = Bill { namespace: self.namespace.clone(), why: Spend::Shadow, prompt_chars };
        let mut walker =
            Walker::new(self.sampler.calls.clone(), config.clone(), &plan, "/chat/completions", body, bill);
        let Completed { completion, cost_usd: cost, .. } = walker.complete(MAX_RESPONSE_BYTES).await?;
        let response = serde_json::to_value(&completion).unwrap_or_default();
        let text = answer_text(&response)
            .ok_or_else(|| ApiError::new(ErrorKind::BadGateway, "the shadow answer has no text content"))?;
        Ok((text, cost))
    }

    /// The answers' cosine (by the gateway's embedder) and, when a verifier
    /// is configured, its word on whether they say the same thing, with
    /// what asking cost. A verifier that fails leaves the cosine to decide.
    async fn compare(&self, fresh: &str) -> (Option<f32>, Option<bool>, f64) {
        let similarity = match &self.sampler.embed {
            Some(embed) => match tokio::join!(embed.embed(self.cached.clone()), embed.embed(fresh.to_string())) {
                (Ok(a), Ok(b)) => Some(cosine(&a, &b)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "could not embed a shadow answer");
                    None
                }
            },
            None => None,
        };
        let Some(verifier) = &self.config.cache.verifier else {
            return (similarity, None, 0.0);
        };
        let settings = VerifierSettings { prompt: ANSWER_PROMPT.to_string(), ..verifier.clone() };
        let candidates = [self.cached.as_str()];
        let payer = Payer { namespace: self.namespace.clone(), budget: self.budget.clone() };
        match crate::verify::verify(&self.sampler.calls, &self.config, &payer, &settings, None, fresh, &candidates)
            .await
        {
            Ok(v) => (similarity, Some(v.chosen.is_some()), v.cost_usd),
            Err(e) => {
                tracing::warn!(error = %e, "the verifier could not compare a shadow answer; the cosine decides");
                (similarity, None, 0.0)
            }
        }
    }
}
