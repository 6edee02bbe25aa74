//! The listener: accepts connections (plain or TLS), routes requests to
//! handlers, logs one line per request, and shuts down gracefully.

use crate::doors::{self, Door};
use crate::rate::{self, RateLimits};
use bytes::Bytes;
use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::{self, Body, Outcome};
use deja_gateway::state::AppState;
use deja_gateway::{auth, embeddings, models, pipeline};
use futures_util::FutureExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let boot = *BOOT;
    format!("req_{boot:08x}{seq:08x}")
}

static BOOT: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| deja_cache::now_ms() as u32);

/// What the listener shares between connections.
struct Edge {
    state: Arc<AppState>,
    rates: RateLimits,
    /// `None` on a listener that serves no admin routes.
    dashboard: Option<deja_admin::dashboard::Dashboard>,
    admin_guard: crate::admin_guard::AdminGuard,
    serves: Serves,
}

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

/// Connections over the cap that are being told so at once; past this many
/// more, excess connections are closed without a word.
const MAX_REFUSING: usize = 64;

/// Serves `listener` until `shutdown` resolves, then lets open requests finish.
///
/// At most `limits.max_connections` connections are served at once. A plain
/// connection over the cap gets an immediate `503` (`too_many_connections`,
/// `Retry-After: 1`) and is closed; a TLS one is closed before its handshake.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    serves: Serves,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(state.config().limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let dashboard = (serves != Serves::Clients).then(|| deja_admin::dashboard::Dashboard::start(&state));
    let admin_guard = crate::admin_guard::AdminGuard::default();
    let edge = Arc::new(Edge { state, rates: RateLimits::default(), dashboard, admin_guard, serves });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: at max_connections");
            if let (None, Ok(refusal)) = (&tls, refusing.clone().try_acquire_owned()) {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = {
            let edge = edge.clone();
            service_fn(move |mut req: Request<Incoming>| {
                let edge = edge.clone();
                req.extensions_mut().insert(crate::admin_guard::Peer(peer.ip()));
                async move { Ok::<_, std::convert::Infallible>(route_catching_panics(edge, req).await) }
            })
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(edge.state.config().limits.header_read_timeout);
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(place);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let handshake = edge.state.config().limits.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls_stream), svc).into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(place);
                });
            }
        }
    }
    tracing::info!("shutting down: waiting for open requests");
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open after 30s");
    }
}

/// The answer to an address locked out for guessing the admin token.
fn admin_locked(wait: Duration) -> ApiError {
    ApiError::new(
        ErrorKind::RateLimited,
        format!("too many wrong admin tokens from this address; try again in {}s", wait.as_secs()),
    )
    .with_code("admin_locked")
}

/// Tells a connection over the cap so and closes it, reading (and dropping)
/// what the client sent meanwhile so the answer is not lost to a reset.
async fn refuse(mut stream: TcpStream) {
    let mut body = ApiError::new(ErrorKind::Unavailable, "the server is at its connection limit; try again shortly")
        .with_code("too_many_connections")
        .to_json();
    if let Some(kind) = body.pointer_mut("/error/type") {
        *kind = serde_json::json!("server_error");
    }
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Runs [`route`]; a panic anywhere in a handler becomes a logged,
/// OpenAI-shaped 500 instead of a dropped connection.
async fn route_catching_panics(edge: Arc<Edge>, req: Request<Incoming>) -> Response<Body> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map_or_else(request_id, str::to_string);
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match AssertUnwindSafe(route(&edge, req, id.clone())).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            tracing::error!(request_id = %id, %method, %path, panic = %message, status = 500, "handler panicked");
            let e = ApiError::new(ErrorKind::Internal, "the server failed while handling this request")
                .with_code("internal_error");
            let mut response = reply::error(&e);
            reply::set_header(&mut response, "x-request-id", &id);
            response
        }
    }
}

async fn route(edge: &Edge, req: Request<Incoming>, id: String) -> Response<Body> {
    let started = Instant::now();
    let state = &edge.state;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let config = state.config();
    let (endpoint, outcome) = match (&method, path.as_str()) {
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
        (&Method::POST, "/v1/chat/completions" | "/v1/embeddings" | "/v1/responses" | "/v1/messages") => {
            let endpoint = match path.as_str() {
                "/v1/chat/completions" => Endpoint::Chat,
                "/v1/embeddings" => Endpoint::Embeddings,
                "/v1/responses" => Endpoint::Door(Door::Responses),
                _ => Endpoint::Door(Door::Messages),
            };
            let refuse = |e: ApiError| match endpoint {
                Endpoint::Door(door) => door.error(&e),
                _ => err(e),
            };
            let limits = &config.limits;
            let work = async {
                let tenant = match auth::client(&parts, config.client_keys()) {
                    Ok(t) => t,
                    Err(e) => return refuse(e),
                };
                let bytes = match read_body(&parts, body, config.server.max_body_bytes, limits.body_read_timeout).await
                {
                    Ok(b) => b,
                    Err(e) => return refuse(e),
                };
                let rate = match edge.rates.check(config.rate_limit(tenant), tenant, rate::estimate_tokens(&bytes)) {
                    Ok(headers) => headers,
                    Err(refused) => match endpoint {
                        Endpoint::Door(door @ Door::Messages) => {
                            let mut out = door.error(&refused.error());
                            refused.add_headers(&mut out.response);
                            return out;
                        }
                        _ => return Outcome { response: refused.response(), cache: "error" },
                    },
                };
                let mut outcome = match endpoint {
                    Endpoint::Chat => {
                        pipeline::chat(state.clone(), config.clone(), &parts, tenant, &bytes, id.clone()).await
                    }
                    Endpoint::Embeddings => {
                        embeddings::embeddings(state.clone(), config.clone(), &parts, tenant, &bytes).await
                    }
                    Endpoint::Door(door) => {
                        doors::serve(door, state.clone(), config.clone(), &parts, tenant, &bytes, id.clone()).await
                    }
                };
                rate::add_headers(&mut outcome.response, &rate);
                outcome
            };
            // The deadline covers the body and everything up to the response
            // head: a whole unary answer, or a stream's first event.
            let outcome = match tokio::time::timeout(limits.request_timeout, work).await {
                Ok(outcome) => outcome,
                Err(_) => refuse(
                    ApiError::new(
                        ErrorKind::GatewayTimeout,
                        format!("the request did not finish within {:?}", limits.request_timeout),
                    )
                    .with_code("request_timeout"),
                ),
            };
            (endpoint.label(), outcome)
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            let outcome = match auth::client(&parts, config.client_keys()) {
                Err(e) => Door::Messages.error(&e),
                Ok(_) => {
                    match read_body(&parts, body, config.server.max_body_bytes, config.limits.body_read_timeout).await {
                        Ok(bytes) => doors::count_tokens(&bytes),
                        Err(e) => Door::Messages.error(&e),
                    }
                }
            };
            ("count_tokens", outcome)
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
        (_, p) if p.starts_with("/admin/") => {
            let peer = parts.extensions.get::<crate::admin_guard::Peer>().map(|p| p.0);
            let now = Instant::now();
            let locked = peer.and_then(|ip| edge.admin_guard.locked(ip, now));
            let checked = match locked {
                Some(wait) => Err(admin_locked(wait)),
                None => auth::admin(&parts, config.admin_token()).inspect_err(|e| {
                    // A guess is a token presented and refused; a request without one guesses nothing.
                    if let (Some(ip), 401, Some(_)) = (peer, e.status(), auth::bearer(&parts)) {
                        edge.admin_guard.failed(ip, now);
                    }
                }),
            };
            let outcome = match checked {
                Err(e) => {
                    let mut out = err(e);
                    if let Some(wait) = locked {
                        reply::set_header(&mut out.response, "retry-after", &wait.as_secs().to_string());
                    }
                    out
                }
                Ok(()) => {
                    match read_body(&parts, body, config.server.max_body_bytes, config.limits.body_read_timeout).await {
                        Err(e) => err(e),
                        Ok(bytes) => match &edge.dashboard {
                            Some(dashboard) => {
                                plain(deja_admin::dashboard::handle(state, dashboard, &parts, &bytes).await)
                            }
                            None => err(ApiError::new(ErrorKind::NotFound, "the admin API is not served here")
                                .with_code("unknown_url")),
                        },
                    }
                }
            };
            ("admin", outcome)
        }
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
        _ => (
            "other",
            err(ApiError::new(ErrorKind::NotFound, format!("no route for {method} {path}")).with_code("unknown_url")),
        ),
    };
    let mut response = outcome.response;
    reply::set_header(&mut response, "x-request-id", &id);
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still be on its way: don't wait for it.
        reply::set_header(&mut response, "connection", "close");
    }
    let status = response.status().as_u16();
    let route_label = response.headers().get("x-deja-model").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    if matches!(endpoint, "chat" | "embeddings" | "responses" | "messages") {
        state
            .metrics
            .requests
            .get_or_create(&deja_gateway::metrics::RequestLabels {
                endpoint: endpoint.into(),
                route: route_label.clone(),
                cache: outcome.cache.into(),
                status: status.to_string(),
            })
            .inc();
        let header = |n: &str| response.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        tracing::info!(
            request_id = %id,
            endpoint,
            cache = outcome.cache,
            model = %route_label,
            attempts = %header("x-deja-attempts"),
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            cost_usd = %header("x-deja-cost-usd"),
            "request"
        );
    } else {
        tracing::debug!(request_id = %id, %method, %path, status, "request");
    }
    response
}

/// What a POST to the client API is for.
#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Embeddings,
    Door(Door),
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Door(door) => door.endpoint(),
        }
    }
}

fn plain(response: Response<Body>) -> Outcome {
    Outcome { response, cache: "none" }
}

fn err(e: ApiError) -> Outcome {
    Outcome { response: reply::error(&e), cache: "error" }
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

async fn read_body(
    parts: &http::request::Parts,
    body: Incoming,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(ErrorKind::PayloadTooLarge, format!("the request body exceeds {max} bytes"))
            .with_code("request_too_large")
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, max).collect()).await else {
        return Err(ApiError::invalid_request(format!("the request body did not arrive within {timeout:?}"), None)
            .with_status(408)
            .with_code("request_timeout"));
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::invalid_request(format!("could not read the request body: {e}"), None)),
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
