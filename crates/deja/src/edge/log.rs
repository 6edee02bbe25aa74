//! The one place a request is logged and counted: an `info` line and a
//! `requests` count for the client API, a `debug` line for everything else,
//! an `error` line for a handler that panicked.

use super::panics::Panicked;
use super::request_id;
use deja_gateway::state::AppState;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// The target the lines have always had, so operators' `RUST_LOG` filters
/// (`deja::server=debug`) keep working.
const TARGET: &str = "deja::server";

/// What the router says a request was for, carried on its answer.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// `chat`, `embeddings`, `responses`, `messages`, or a label for the rest.
    pub endpoint: &'static str,
    /// How the cache took part (`miss`, `exact`, `error`, `none`...).
    pub cache: &'static str,
}

impl Served {
    fn is_client_api(self) -> bool {
        matches!(self.endpoint, "chat" | "embeddings" | "responses" | "messages")
    }
}

#[derive(Clone)]
pub struct RequestLogLayer {
    state: Arc<AppState>,
}

impl RequestLogLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct RequestLog<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S, B, R> Service<Request<B>> for RequestLog<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let seen = Seen {
            started: Instant::now(),
            id: request_id::of(req.extensions()),
            method: req.method().clone(),
            path: req.uri().path().to_string(),
        };
        let answer = self.inner.call(req);
        let state = self.state.clone();
        Box::pin(async move {
            let response = answer.await?;
            seen.write(&state, &response);
            Ok(response)
        })
    }
}

/// What the line needs from the request, taken before it is handed on.
struct Seen {
    started: Instant,
    id: String,
    method: Method,
    path: String,
}

impl Seen {
    fn write<R>(&self, state: &AppState, response: &Response<R>) {
        let Seen { id, method, path, .. } = self;
        let status = response.status().as_u16();
        if let Some(Panicked(message)) = response.extensions().get::<Panicked>() {
            tracing::error!(target: TARGET, request_id = %id, %method, %path, panic = %message, status, "handler panicked");
            return;
        }
        let served = response.extensions().get::<Served>().copied();
        let Some(served) = served.filter(|s| s.is_client_api()) else {
            tracing::debug!(target: TARGET, request_id = %id, %method, %path, status, "request");
            return;
        };
        let header = |n: &str| response.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let route_label = header("x-deja-model");
        state
            .metrics
            .requests
            .get_or_create(&deja_gateway::metrics::RequestLabels {
                endpoint: served.endpoint.into(),
                route: route_label.clone(),
                cache: served.cache.into(),
                status: status.to_string(),
            })
            .inc();
        tracing::info!(
            target: TARGET,
            request_id = %id,
            endpoint = served.endpoint,
            cache = served.cache,
            model = %route_label,
            attempts = %header("x-deja-attempts"),
            status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            cost_usd = %header("x-deja-cost-usd"),
            "request"
        );
    }
}
