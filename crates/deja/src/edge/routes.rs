//! Which handler answers a request, by method and path, and on which
//! listener. Every answer carries [`Served`] for the request log layer.

use super::client::{self, Endpoint};
use super::log::Served;
use super::outcome::{err, plain};
use super::{admin, request_id, Edge};
use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::{self, Body, Outcome};
use deja_gateway::{auth, models};
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// What one listener serves: everything (the default), or, with
/// `server.admin_listen`, client traffic on `listen` and the admin API, the
/// dashboard and `/metrics` on the admin address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    Everything,
    Clients,
    Admin,
}

impl Serves {
    /// Whether a request for `path` belongs on this listener.
    fn routes(self, path: &str) -> bool {
        let admin = path.starts_with("/admin") || path == "/metrics";
        let shared = path == "/healthz" || path == "/readyz";
        match self {
            Serves::Everything => true,
            Serves::Clients => !admin,
            Serves::Admin => admin || shared,
        }
    }
}

/// The innermost service: hands each request to its handler.
#[derive(Clone)]
pub struct Routes {
    edge: Arc<Edge>,
}

impl Routes {
    pub fn new(edge: Arc<Edge>) -> Self {
        Self { edge }
    }
}

impl Service<Request<Incoming>> for Routes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let edge = self.edge.clone();
        Box::pin(async move {
            let (endpoint, outcome) = route(&edge, req).await;
            let mut response = outcome.response;
            response.extensions_mut().insert(Served { endpoint, cache: outcome.cache });
            Ok(response)
        })
    }
}

/// The request's endpoint label and its handler's outcome.
async fn route(edge: &Edge, req: Request<Incoming>) -> (&'static str, Outcome) {
    let state = &edge.state;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let config = state.config();
    match (&method, path.as_str()) {
        // With server.admin_listen, each listener serves only its own routes.
        (_, p) if !edge.serves.routes(p) => (
            "other",
            err(ApiError::new(ErrorKind::NotFound, format!("no route for {method} {path} on this address"))
                .with_code("unknown_url")),
        ),
        (&Method::GET, "/healthz") => {
            ("healthz", plain(reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))))
        }
        #[cfg(feature = "test-hooks")]
        (&Method::GET, "/_test/panic") => test_hooks::panic(),
        (&Method::GET, "/readyz") => ("readyz", plain(deja_admin::readyz(state))),
        (&Method::GET, "/metrics") if config.server.metrics => match auth::metrics(&parts, config.metrics_token()) {
            Ok(()) => ("metrics", plain(deja_admin::metrics(state))),
            Err(e) => ("metrics", err(e)),
        },
        (&Method::GET, "/v1/models") => ("models", guarded(&parts, &config, |_| plain(models::list(state)))),
        (&Method::POST, p) if Endpoint::of(p).is_some() => {
            let Some(endpoint) = Endpoint::of(p) else { return ("other", not_found(&method, &path)) };
            let id = request_id::of(&parts.extensions);
            (endpoint.label(), client::serve(edge, endpoint, &parts, body, id).await)
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            ("count_tokens", client::count_tokens(edge, &parts, body).await)
        }
        (_, p) if p.starts_with("/v1/responses/") => (
            "other",
            err(ApiError::new(
                ErrorKind::NotFound,
                "Deja keeps no responses on the server: it serves /v1/responses statelessly, so a stored response \
                 cannot be retrieved, cancelled or deleted",
            )
            .with_code("response_not_stored")),
        ),
        (&Method::GET, p) if deja_admin::ui::is_ui_path(p) => ("admin_ui", plain(deja_admin::ui::serve(p))),
        (_, p) if p.starts_with("/admin/") => ("admin", admin::serve(edge, &parts, body).await),
        (
            _,
            "/healthz"
            | "/readyz"
            | "/metrics"
            | "/v1/models"
            | "/v1/chat/completions"
            | "/v1/embeddings"
            | "/v1/responses"
            | "/v1/messages"
            | "/v1/messages/count_tokens",
        ) => ("other", err(ApiError::new(ErrorKind::MethodNotAllowed, format!("{method} is not allowed on {path}")))),
        _ => ("other", not_found(&method, &path)),
    }
}

fn not_found(method: &Method, path: &str) -> Outcome {
    err(ApiError::new(ErrorKind::NotFound, format!("no route for {method} {path}")).with_code("unknown_url"))
}

fn guarded(
    parts: &http::request::Parts,
    config: &deja_gateway::Config,
    f: impl FnOnce(Option<&str>) -> Outcome,
) -> Outcome {
    match auth::client(parts, config.client_keys()) {
        Ok(t) => f(t),
        Err(e) => err(e),
    }
}

#[cfg(feature = "test-hooks")]
mod test_hooks {
    /// A handler that panics, so tests can see what a client gets when one does.
    #[allow(clippy::panic)]
    pub fn panic() -> (&'static str, super::Outcome) {
        panic!("the test panic route was called")
    }
}
