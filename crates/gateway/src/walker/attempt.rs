//! One upstream attempt, from sending it to its first byte, as a future that
//! owns everything it needs: the walker can run two side by side (a hedge)
//! and drop the one that loses, which closes its connection.
//!
//! Nothing here records a failure: the walker does that once an attempt
//! ends, and never for one it cancelled.

use super::{classify, client_error, Calls, Opened};
use crate::config::Config;
use crate::metrics::ModelLabels;
use bytes::Bytes;
use deja_api::ApiError;
use deja_providers::ProviderKind;
use deja_router::{FailureKind, ModelSpec};
use deja_upstream::{Attempt, Dialect};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An attempt ready to send.
pub struct Prepared {
    pub spec: ModelSpec,
    pub kind: ProviderKind,
    pub base_url: String,
    pub path: String,
    pub api_key: Option<String>,
    pub dialect: Dialect,
    pub body: Bytes,
}

/// Why an attempt failed before its first byte.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub retry_after: Option<Duration>,
    pub detail: String,
    /// The error for the client, when the failure is the request's own fault.
    pub client_error: Option<ApiError>,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self { kind, retry_after: None, detail: detail.into(), client_error: None }
    }
}

/// An attempt that sent its first byte, with what the first-byte stage
/// read, and how long that took from sending.
pub struct Reached<T> {
    pub opened: Opened,
    pub value: T,
    pub took: Duration,
}

pub enum AttemptEnd<T> {
    Reached(Reached<T>),
    Failed(ModelSpec, Failure),
}

/// Sends `p` and runs `stage` on its 2xx response: the stage decides what
/// the first byte is (the response head for whole answers, the first event
/// for streams) and reads up to it.
pub async fn run<T, F, Fut>(calls: Arc<Calls>, config: Arc<Config>, p: Prepared, stage: &F) -> AttemptEnd<T>
where
    F: Fn(Opened) -> Fut,
    Fut: Future<Output = Result<(Opened, T), Failure>>,
{
    let routing = &config.routing;
    let started = Instant::now();
    let result = calls
        .upstream
        .send(Attempt {
            base_url: &p.base_url,
            path: &p.path,
            api_key: p.api_key.as_deref(),
            dialect: p.dialect,
            body: p.body,
            first_byte_timeout: routing.first_byte_timeout,
            deadline: tokio::time::Instant::now() + routing.attempt_timeout,
        })
        .await;
    let head = started.elapsed();
    calls
        .metrics
        .upstream_latency
        .get_or_create(&ModelLabels { model: p.spec.name.clone() })
        .observe(head.as_secs_f64());
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let (kind, retry_after, detail) = classify(&e);
            let client_error = kind.is_client_fault().then(|| client_error(&p.spec, &e, p.kind));
            let retry_after = retry_after.map(|d| d.min(routing.retry_after_cap));
            return AttemptEnd::Failed(p.spec, Failure { kind, retry_after, detail, client_error });
        }
    };
    let opened = Opened { response, model: p.spec.clone(), kind: p.kind, started, head };
    match stage(opened).await {
        Ok((opened, value)) => AttemptEnd::Reached(Reached { opened, value, took: started.elapsed() }),
        Err(f) => AttemptEnd::Failed(p.spec, f),
    }
}
