//! What the request stages know about one chat request, and the one
//! configuration snapshot it is served under from start to finish.

use crate::cache_control::CachePolicy;
use crate::config::Config;
use crate::state::AppState;
use deja_api::{CacheKey, ChatRequest, ContextFingerprint, Namespace};
use http::request::Parts;
use std::sync::Arc;
use std::time::Instant;

pub struct ChatCtx {
    pub state: Arc<AppState>,
    /// Taken once when the request arrives: a reload mid-request never mixes two.
    pub config: Arc<Config>,
    /// The semantic routes embedded from `config`.
    pub routes: Arc<crate::routes::RouteVectors>,
    pub req: ChatRequest,
    pub namespace: Namespace,
    pub key: CacheKey,
    pub fingerprint: ContextFingerprint,
    pub policy: CachePolicy,
    pub question: Option<String>,
    /// The task tag (`x-deja-task` or `metadata.task`), for shadow calls' routing.
    pub task: Option<String>,
    /// The rung the semantic route chosen for the question starts at.
    pub route: Option<String>,
    pub vector: Option<Vec<f32>>,
    /// The text `vector` was made of, when it is not the question's whole
    /// text (behind a template: the question's own part).
    pub vector_of: Option<String>,
    /// A grey-band candidate is being verified in the background
    /// (`mode = "async"`): this answer is not stored.
    pub store_deferred: bool,
    /// This replica's hold on the fleet-wide lock for `key` ([cluster]),
    /// given up when the answer reaches Redis or, failing that, when the
    /// request ends.
    pub fleet_lock: Option<crate::fleet::Lock>,
    /// Set for a multi-turn request when `[cache.semantic.conversations]` is on.
    pub conversation: Option<crate::conversation::ConversationCtx>,
    pub started: Instant,
    pub request_id: String,
    /// The budget of the client key that sent the request, if it has one.
    pub budget: Option<crate::ledger::Budget>,
    /// Money held for this request's upstream call, let go with the request.
    pub reservation: crate::ledger::Reservation,
}

impl ChatCtx {
    /// Who calls Deja makes for this request (the verifier) are billed to.
    pub fn payer(&self) -> crate::verify::Payer {
        crate::verify::Payer { namespace: self.namespace.as_str().to_string(), budget: self.budget.clone() }
    }

    /// The client's calls upstream are billed to its namespace.
    pub fn bill(&self) -> crate::walker::Bill {
        crate::walker::Bill {
            namespace: self.namespace.as_str().to_string(),
            why: crate::ledger::Spend::Answer,
            prompt_chars: self.req.prompt_chars(),
        }
    }

    /// Whether the client's budget (spent, and held by its calls in
    /// flight) is reached: then Deja makes no call for it of its own accord.
    pub fn budget_reached(&self) -> bool {
        let Some(budget) = &self.budget else { return false };
        self.state.ledger.reserve(budget, 0.0).is_err()
    }
}

/// A request header's trimmed value, if present and not empty.
pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The similarity floor a client asked for with `x-deja-threshold`: it
/// raises every semantic route's threshold (1.0: identical text only).
pub fn client_floor(parts: &Parts) -> Option<f32> {
    header(parts, "x-deja-threshold").and_then(|v| v.parse::<f32>().ok()).filter(|v| v.is_finite())
}

/// The request's namespace: the tenant narrowed by `x-deja-namespace`. A
/// header that is not visible ASCII is refused like any other bad value,
/// never silently ignored (that would widen the scope to the tenant's).
pub fn namespace(parts: &Parts, tenant: Option<&str>) -> Result<Namespace, deja_api::ApiError> {
    let raw = parts.headers.get("x-deja-namespace");
    let narrowing = match raw.map(|v| v.to_str()) {
        Some(Err(_)) => Some("\u{fffd}"),
        Some(Ok(v)) => Some(v.trim()).filter(|v| !v.is_empty()),
        None => None,
    };
    Namespace::for_request(tenant, narrowing)
}
