//! The client API's request deadline (`limits.request_timeout`).
//!
//! It covers the body and everything up to the response head: a whole unary
//! answer, or a stream's first event; a stream that has started is not cut.
//! It is a wrapper inside the client routes rather than a timeout layer
//! because only those routes have one, and its 504 is shaped for the door
//! the request came through.

use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::Outcome;
use std::future::Future;
use std::time::Duration;

/// `work`'s outcome, or `refuse`'s answer to a 504 once `limit` has passed.
pub async fn within(
    limit: Duration,
    refuse: impl FnOnce(ApiError) -> Outcome,
    work: impl Future<Output = Outcome>,
) -> Outcome {
    match tokio::time::timeout(limit, work).await {
        Ok(outcome) => outcome,
        Err(_) => refuse(
            ApiError::new(ErrorKind::GatewayTimeout, format!("the request did not finish within {limit:?}"))
                .with_code("request_timeout"),
        ),
    }
}
