//! The stages of a chat request, in the order `pipeline.rs` calls them:
//! accept → exact → semantic → plan → coalesce → upstream → store.
//!
//! Each stage is a type built once with the handles it needs (never the
//! app state) and has one entry point. It takes what the stages before it
//! produced and returns the next value or an answer ([`Step`]). No stage
//! imports another stage, the pipeline or the state, and none changes what
//! an earlier stage produced: the values here are made once and read after.

pub mod accept;
pub mod coalesce;
pub mod exact;
pub mod plan;
pub mod semantic;
pub mod store;
pub mod upstream;

use crate::answer::Answer;
use crate::cache_control::CachePolicy;
use crate::config::Config;
use crate::ledger::{Budget, Reservation};
use crate::reply::Outcome;
use crate::routes::RouteVectors;
use deja_api::{CacheKey, ChatRequest, ContextFingerprint, Namespace};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Instant;

/// A stage's result: the request is answered, or goes on with `T`.
pub enum Step<T> {
    Answered(Outcome),
    Next(T),
}

/// What the accept stage made of a chat request. Read by every later
/// stage, changed by none.
pub struct Accepted {
    /// Taken once when the request arrives: a reload mid-request never mixes two.
    pub config: Arc<Config>,
    /// The semantic routes embedded from `config`.
    pub routes: Arc<RouteVectors>,
    pub req: ChatRequest,
    pub namespace: Namespace,
    pub key: CacheKey,
    /// The context a semantic hit must match, before any route.
    pub fingerprint: ContextFingerprint,
    pub policy: CachePolicy,
    /// The similarity floor the client asked for (`x-deja-threshold`).
    pub floor: Option<f32>,
    /// The last user message's text, what the semantic cache compares.
    pub question: Option<String>,
    /// The task tag (`x-deja-task` or `metadata.task`).
    pub task: Option<String>,
    /// The budget of the client key that sent the request, if it has one.
    pub budget: Option<Budget>,
    /// Set for a multi-turn request when conversations are on.
    pub conversation: Option<ConversationKey>,
    pub started: Instant,
    pub request_id: String,
}

impl Accepted {
    /// Who calls Deja makes for this request (the verifier) are billed to.
    pub fn payer(&self) -> crate::verify::Payer {
        crate::verify::Payer { namespace: self.namespace.as_str().to_string(), budget: self.budget.clone() }
    }
}

/// A multi-turn request's context without its earlier turns, and those turns.
#[derive(Debug, Clone)]
pub struct ConversationKey {
    pub coarse: ContextFingerprint,
    /// The earlier turns as `role: text` lines.
    pub history_text: String,
}

/// What the semantic stage learned about a request it did not answer: the
/// route its question chose and what its answer is stored under.
#[derive(Debug, Clone, Default)]
pub struct Looked {
    /// The rung the semantic route chosen for the question starts at.
    pub route: Option<String>,
    /// The context the answer is stored under (the route's, a template's).
    pub fingerprint: Option<ContextFingerprint>,
    pub vector: Option<Vec<f32>>,
    /// The text `vector` was made of, when not the question's whole text.
    pub vector_of: Option<String>,
    /// Coarse fingerprint and history vector of a multi-turn request.
    pub conversation: Option<(ContextFingerprint, Vec<f32>)>,
    /// A grey-band candidate is being verified in the background: this
    /// answer is not stored (the verdict decides what this wording gets).
    pub store_deferred: bool,
}

/// The plan, admitted under the client's budget.
pub struct Planned {
    pub plan: deja_router::Plan,
    /// Money held for the call, let go once its cost is charged.
    pub reservation: Reservation,
    /// The request's cache policy as it now applies: a plan cut to the
    /// cheapest rung bypasses the cache (its answer is neither stored nor
    /// shared with identical requests in flight).
    pub policy: CachePolicy,
}

/// This request calls upstream, for itself and for whoever joins it.
pub struct Leading {
    pub leader: Option<deja_cache::coalesce::Leader<crate::answer::Shared>>,
    /// Where a streamed answer goes as it comes, for coalesced streams too.
    pub feed: Option<Arc<crate::feed::Feed>>,
    /// This replica's hold on the fleet-wide lock for the key ([cluster]).
    pub fleet_lock: Option<crate::ports::HeldLock>,
}

/// Where an upstream answer goes once it is whole: the store stage.
pub trait AnswerSink: Send + Sync {
    /// Stores `answer` for the request, if its policy and the answer allow.
    fn remember<'a>(
        &'a self,
        request: &'a Accepted,
        looked: &'a Looked,
        policy: &'a CachePolicy,
        answer: &'a Answer,
    ) -> BoxFuture<'a, ()>;
}

/// Every stage, built once from the state's handles.
pub struct Stages {
    pub accept: accept::Accept,
    pub exact: exact::Exact,
    pub semantic: semantic::Semantic,
    pub plan: plan::Plan,
    pub coalesce: coalesce::Coalesce,
    pub upstream: Arc<upstream::Upstream>,
    /// Also the upstream stage's sink; the embeddings endpoint stores through it.
    pub store: Arc<store::Remember>,
}
