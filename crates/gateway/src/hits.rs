//! Answering from the cache: a cached entry (exact, semantic, verified) or
//! the answer of an identical request in flight, as the client asked for it
//! (whole or streamed), with its headers, counted by the ledger.

use crate::answer::Answer;
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::reply::{self, Outcome};
use crate::respond::{self, HitKind};
use crate::slo::{Sampler, Served};
use crate::stages::Accepted;
use deja_api::{ApiError, ChatCompletion, ErrorKind};
use deja_store::Entry;
use std::sync::Arc;

/// What serving a hit needs, built once.
pub struct Hits {
    pub ledger: Arc<Ledger>,
    pub metrics: Arc<Metrics>,
    /// Shadow calls for sampled semantic hits.
    pub sampler: Arc<Sampler>,
}

/// How an entry came to be served.
pub struct Found<'a> {
    pub kind: HitKind,
    pub entry: &'a Entry,
    pub now_ms: u64,
    /// What verifying it cost, when it was served on the verifier's word.
    pub verification_usd: Option<f64>,
    /// The semantic route the question chose, for a shadow call.
    pub route: Option<&'a str>,
}

impl Hits {
    /// Answers with a cached entry.
    pub fn entry(&self, request: &Accepted, found: Found<'_>) -> Outcome {
        let Found { kind, entry, now_ms, verification_usd, route } = found;
        let mut response = if request.req.is_stream() {
            match serde_json::from_value::<ChatCompletion>(entry.response.clone()) {
                Ok(c) => respond::completion(&c, true, request.req.wants_usage_chunk()),
                Err(_) => {
                    return Outcome::error(&ApiError::new(ErrorKind::Internal, "a cached entry could not be read"));
                }
            }
        } else {
            // Stored as the completion a client receives: no need to rebuild it.
            reply::json_bytes(http::StatusCode::OK, serde_json::to_vec(&entry.response).unwrap_or_default())
        };
        let semantic = matches!(kind, HitKind::Semantic { .. });
        let saved_usd = (entry.cost_usd - verification_usd.unwrap_or(0.0)).max(0.0);
        self.ledger.hit(semantic, entry, saved_usd);
        if semantic {
            let served = Served {
                config: &request.config,
                req: &request.req,
                task: request.task.as_deref(),
                route,
                namespace: request.namespace.as_str(),
                question: request.question.as_deref(),
                budget: request.budget.as_ref(),
            };
            self.sampler.sample(served, entry);
        }
        // A hit is all Deja's own time.
        self.metrics.overhead.observe(request.started.elapsed().as_secs_f64());
        respond::hit_headers(&mut response, kind, entry, now_ms);
        if let Some(usd) = verification_usd {
            reply::set_header(&mut response, "x-deja-verified", "llm");
            reply::set_header(&mut response, "x-deja-cost-usd", &respond::format_usd(usd));
            reply::set_header(&mut response, "x-deja-saved-usd", &respond::format_usd(saved_usd));
        }
        Outcome { response, cache: kind.label() }
    }

    /// Answers with what an identical request in flight (on this replica or
    /// another) got from upstream: counted as an exact hit.
    pub fn coalesced(&self, request: &Accepted, answer: &Answer) -> Outcome {
        let stream = request.req.is_stream();
        let mut response = respond::completion(&answer.completion, stream, request.req.wants_usage_chunk());
        respond::miss_headers(&mut response, "coalesced", &answer.answered_by, 0, Some(0.0));
        reply::set_header(&mut response, "x-deja-saved-usd", &respond::format_usd(answer.cost_usd));
        self.ledger.coalesced(request.namespace.as_str(), &answer.answered_by, answer.cost_usd);
        Outcome { response, cache: "coalesced" }
    }
}
