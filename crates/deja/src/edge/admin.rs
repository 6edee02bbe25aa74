//! The admin API behind its guard: the admin token, and the per-address
//! lockout (`admin_guard.rs`) that answers 429 to an address that has been
//! guessing it, without the token being looked at.

use super::body::read_body;
use super::outcome::{err, plain};
use super::Edge;
use crate::admin_guard::Peer;
use deja_api::{ApiError, ErrorKind};
use deja_gateway::auth;
use deja_gateway::reply::{self, Outcome};
use http::request::Parts;
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Serves `/admin/...` to a caller with the admin token.
pub async fn serve(edge: &Edge, parts: &Parts, body: Incoming) -> Outcome {
    if let Some(refused) = refusal(edge, parts) {
        return refused;
    }
    let config = edge.state.config();
    match read_body(parts, body, config.server.max_body_bytes, config.limits.body_read_timeout).await {
        Err(e) => err(e),
        Ok(bytes) => match &edge.dashboard {
            Some(dashboard) => plain(deja_admin::dashboard::handle(&edge.state, dashboard, parts, &bytes).await),
            None => {
                err(ApiError::new(ErrorKind::NotFound, "the admin API is not served here").with_code("unknown_url"))
            }
        },
    }
}

/// The answer to a caller without the admin token, or whose address is
/// locked out; `None` lets the request through.
fn refusal(edge: &Edge, parts: &Parts) -> Option<Outcome> {
    let config = edge.state.config();
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    let now = Instant::now();
    let locked = peer.and_then(|ip| edge.admin_guard.locked(ip, now));
    let checked = match locked {
        Some(wait) => Err(admin_locked(wait)),
        None => auth::admin(parts, config.admin_token()).inspect_err(|e| {
            // A guess is a token presented and refused; a request without one guesses nothing.
            if let (Some(ip), 401, Some(_)) = (peer, e.status(), auth::bearer(parts)) {
                edge.admin_guard.failed(ip, now);
            }
        }),
    };
    let mut out = err(checked.err()?);
    if let Some(wait) = locked {
        reply::set_header(&mut out.response, "retry-after", &wait.as_secs().to_string());
    }
    Some(out)
}

/// The answer to an address locked out for guessing the admin token.
fn admin_locked(wait: Duration) -> ApiError {
    ApiError::new(
        ErrorKind::RateLimited,
        format!("too many wrong admin tokens from this address; try again in {}s", wait.as_secs()),
    )
    .with_code("admin_locked")
}
