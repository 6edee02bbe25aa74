//! Walks a routing plan: one upstream attempt after another until one opens,
//! recording every failure in metrics and, where the router says it counts,
//! in the model's health.
//!
//! The router decided the order and what each failure means; this file only
//! carries the decisions out.

use crate::config::Config;
use crate::metrics::{ModelErrorLabels, ModelLabels};
use crate::state::AppState;
use bytes::Bytes;
use deja_api::{ApiError, ErrorKind};
use deja_providers::{anthropic, gemini, ProviderKind};
use deja_router::{failure_decision, Decision, FailureKind, ModelSpec, Plan};
use deja_upstream::{Attempt, Dialect, UpstreamError, UpstreamResponse};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream answer accepted.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

pub struct Opened {
    pub response: UpstreamResponse,
    /// The model that answered.
    pub model: ModelSpec,
    /// The API the answer is in: the miss paths translate it to OpenAI's.
    pub kind: ProviderKind,
    /// When the attempt was sent, and how long its response head took.
    pub started: Instant,
    pub head: Duration,
}

pub struct Walker {
    state: Arc<AppState>,
    config: Arc<Config>,
    attempts: Vec<usize>,
    pos: usize,
    path: &'static str,
    body: Value,
    reasons: Vec<String>,
    /// Attempts skipped because their provider cannot honour the request.
    refusals: Vec<ApiError>,
    kinds: Vec<FailureKind>,
    /// Time spent waiting on upstreams, to tell Deja's own overhead apart.
    pub upstream_time: Duration,
}

impl Walker {
    pub fn new(state: Arc<AppState>, config: Arc<Config>, plan: &Plan, path: &'static str, body: Value) -> Self {
        Self {
            state,
            config,
            attempts: plan.attempts.clone(),
            pos: 0,
            path,
            body,
            reasons: Vec::new(),
            refusals: Vec::new(),
            kinds: Vec::new(),
            upstream_time: Duration::ZERO,
        }
    }

    /// Attempts made so far (skipped ones are not attempts).
    pub fn tries(&self) -> usize {
        self.pos - self.refusals.len()
    }

    pub fn first_byte_timeout(&self) -> Duration {
        self.config.routing.first_byte_timeout
    }

    /// Opens the next attempt that answers 2xx, or explains why none did.
    pub async fn open(&mut self) -> Result<Opened, ApiError> {
        // A handle of our own, so borrows of it outlive `self.fail(..)`.
        let config = self.config.clone();
        while let Some(&m) = self.attempts.get(self.pos) {
            self.pos += 1;
            // Plans are made from the catalog of this same config snapshot.
            let Some(spec) = config.catalog.model(m) else {
                return Err(ApiError::new(
                    ErrorKind::Internal,
                    format!("the routing plan names model #{m}, which the configuration lacks"),
                ));
            };
            let Some(provider) = config.providers.get(&spec.provider) else {
                self.fail(spec, FailureKind::NoCredentials, None, "provider missing".into());
                continue;
            };
            let api_key = match &provider.api_key_env {
                None => None,
                Some(var) => match config.api_key(&provider.name) {
                    Some(k) => Some(k),
                    None => {
                        self.fail(spec, FailureKind::NoCredentials, None, format!("no API key (${var} is unset)"));
                        continue;
                    }
                },
            };
            let (path, body, dialect) = match provider.kind {
                ProviderKind::OpenAi => {
                    if let Some(fields) = self.body.as_object_mut() {
                        fields.insert("model".to_string(), Value::String(spec.upstream_name.clone()));
                    }
                    (Cow::Borrowed(self.path), Bytes::from(self.body.to_string()), Dialect::OpenAi)
                }
                ProviderKind::Anthropic => {
                    match crate::dialect::anthropic_body(self.path, &self.body, spec, provider) {
                        Ok(body) => (Cow::Borrowed(anthropic::PATH), body, Dialect::Anthropic),
                        Err(e) => {
                            self.refuse(spec, e);
                            continue;
                        }
                    }
                }
                ProviderKind::Gemini => match crate::dialect::gemini_body(self.path, &self.body, spec, provider) {
                    Ok((path, body)) => (Cow::Owned(path), body, Dialect::Gemini),
                    Err(e) => {
                        self.refuse(spec, e);
                        continue;
                    }
                },
            };
            let routing = &config.routing;
            let started = Instant::now();
            let result = self
                .state
                .upstream
                .send(Attempt {
                    base_url: &provider.base_url,
                    path: &path,
                    api_key,
                    dialect,
                    body,
                    first_byte_timeout: routing.first_byte_timeout,
                    deadline: tokio::time::Instant::now() + routing.attempt_timeout,
                })
                .await;
            let took = started.elapsed();
            self.upstream_time += took;
            self.state
                .metrics
                .upstream_latency
                .get_or_create(&ModelLabels { model: spec.name.clone() })
                .observe(took.as_secs_f64());
            match result {
                Ok(response) => {
                    return Ok(Opened { response, model: spec.clone(), kind: provider.kind, started, head: took })
                }
                Err(e) => {
                    let (kind, retry_after, detail) = classify(&e);
                    let retry_after = retry_after.map(|d| d.min(routing.retry_after_cap));
                    self.fail(spec, kind, retry_after, detail);
                    if failure_decision(kind) == Decision::Return {
                        return Err(self.client_error(spec, &e, provider.kind));
                    }
                    // Retrying the same model: wait as long as it asked (capped).
                    if let (Some(wait), Some(&next)) = (retry_after, self.attempts.get(self.pos)) {
                        if next == m {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
        Err(self.exhausted())
    }

    /// Records a failed attempt on `model`.
    pub fn fail(&mut self, model: &ModelSpec, kind: FailureKind, retry_after: Option<Duration>, detail: String) {
        let name = &model.name;
        if kind.counts_against_health() {
            self.state.health.record_failure(name, Instant::now(), retry_after);
            // A cooldown starting here is skipped by the other replicas too ([cluster]).
            crate::fleet::cooled(&self.state, name);
        }
        self.state.latency.record_failure(name, kind);
        self.state
            .metrics
            .upstream_errors
            .get_or_create(&ModelErrorLabels { model: name.clone(), kind: kind.label().into() })
            .inc();
        tracing::debug!(model = %name, kind = kind.label(), %detail, "upstream attempt failed");
        self.reasons.push(format!("{name}: {detail}"));
        self.kinds.push(kind);
    }

    /// Skips `model`, whose provider cannot honour the request: no call is
    /// made and its health is left alone. If no other attempt answers, the
    /// first refusal is the answer.
    fn refuse(&mut self, model: &ModelSpec, mut e: ApiError) {
        let name = &model.name;
        tracing::debug!(model = %name, error = %e, "attempt skipped: the provider cannot honour the request");
        e.message = format!("{name}: {}", e.message);
        self.reasons.push(e.message.clone());
        self.refusals.push(e);
    }

    pub fn succeeded(&self, model: &ModelSpec) {
        self.state.health.record_success(&model.name);
        self.state.latency.record_success(&model.name);
    }

    /// The answer's first byte arrived `took` after its attempt was sent.
    pub fn first_byte(&self, model: &ModelSpec, took: Duration) {
        self.state.latency.record_first_byte(&model.name, took);
    }

    /// `tokens` completion tokens arrived over `body`, first byte to end.
    pub fn throughput(&self, model: &ModelSpec, tokens: u64, body: Duration) {
        self.state.latency.record_throughput(&model.name, tokens, body);
    }

    /// The error for a plan with no attempt left.
    pub fn exhausted(&self) -> ApiError {
        if let (true, Some(refusal)) = (self.kinds.is_empty(), self.refusals.first()) {
            return refusal.clone();
        }
        let all = |f: fn(&FailureKind) -> bool| !self.kinds.is_empty() && self.kinds.iter().all(f);
        let kind = if all(|k| matches!(k, FailureKind::FirstByteTimeout | FailureKind::TotalTimeout)) {
            ErrorKind::GatewayTimeout
        } else if all(|k| matches!(k, FailureKind::Status(429) | FailureKind::NoCredentials)) {
            ErrorKind::Unavailable
        } else {
            ErrorKind::BadGateway
        };
        let detail =
            if self.reasons.is_empty() { "no attempt was possible".to_string() } else { self.reasons.join("; ") };
        ApiError::new(kind, format!("every upstream attempt failed ({} tried): {detail}", self.kinds.len()))
            .with_code("upstream_exhausted")
    }

    /// A 4xx that is the request's own fault, normalized to OpenAI's shape.
    fn client_error(&self, model: &ModelSpec, e: &UpstreamError, dialect: ProviderKind) -> ApiError {
        let name = &model.name;
        let UpstreamError::Status { status, body, .. } = e else {
            return ApiError::new(ErrorKind::BadGateway, format!("{name}: {e}"));
        };
        let upstream: Option<Value> = serde_json::from_slice(body).ok();
        let field = |key: &str| upstream.as_ref().and_then(|v| v.get("error")?.get(key)?.as_str()).map(str::to_string);
        let message =
            field("message").unwrap_or_else(|| format!("the upstream refused the request with status {status}"));
        let kind = match status {
            404 => ErrorKind::NotFound,
            413 => ErrorKind::PayloadTooLarge,
            _ => ErrorKind::InvalidRequest,
        };
        let mut err = ApiError::new(kind, format!("{name}: {message}")).with_status(*status);
        err.code = match dialect {
            ProviderKind::OpenAi => field("code"),
            ProviderKind::Anthropic => anthropic::error_type(body),
            ProviderKind::Gemini => gemini::error_status(body),
        };
        err.param = field("param");
        err
    }
}

/// A whole `chat.completion` in OpenAI's shape, the bytes it came as (after
/// translation from the provider's dialect) and the model that answered.
pub struct Completed {
    pub completion: deja_api::ChatCompletion,
    pub raw: Bytes,
    pub model: ModelSpec,
}

impl Walker {
    /// Walks the plan until an attempt answers a non-streamed request with a
    /// valid `chat.completion` of at most `max_bytes`; every other answer is a
    /// failure of that attempt. Records the success.
    pub async fn complete(&mut self, max_bytes: usize) -> Result<Completed, ApiError> {
        loop {
            let mut opened = self.open().await?;
            self.first_byte(&opened.model, opened.head);
            let raw = match opened.response.collect(max_bytes).await {
                Ok(b) => b,
                Err(e) => {
                    let (kind, _, detail) = classify(&e);
                    self.fail(&opened.model, kind, None, detail);
                    continue;
                }
            };
            let raw = match opened.openai_body(raw) {
                Ok(b) => b,
                Err(detail) => {
                    self.fail(&opened.model, FailureKind::Malformed, None, detail);
                    continue;
                }
            };
            match serde_json::from_slice::<deja_api::ChatCompletion>(&raw) {
                Ok(completion) if !completion.choices.is_empty() => {
                    self.succeeded(&opened.model);
                    let tokens = completion.usage.as_ref().map_or(0, |u| u.completion_tokens);
                    self.throughput(&opened.model, tokens, opened.started.elapsed().saturating_sub(opened.head));
                    return Ok(Completed { completion, raw, model: opened.model });
                }
                _ => self.fail(
                    &opened.model,
                    FailureKind::Malformed,
                    None,
                    "the response was not a chat completion".into(),
                ),
            }
        }
    }
}

pub fn classify(e: &UpstreamError) -> (FailureKind, Option<Duration>, String) {
    match e {
        UpstreamError::Connect(m) => (FailureKind::Connect, None, format!("connect failed: {m}")),
        UpstreamError::InvalidUrl(m) => (FailureKind::Connect, None, format!("invalid URL: {m}")),
        UpstreamError::FirstByteTimeout => (FailureKind::FirstByteTimeout, None, "first-byte timeout".into()),
        UpstreamError::Timeout => (FailureKind::TotalTimeout, None, "attempt timeout".into()),
        UpstreamError::Status { status, retry_after, .. } => {
            let why = if matches!(status, 401 | 403) { ": the provider rejected Deja's credentials" } else { "" };
            (FailureKind::Status(*status), *retry_after, format!("status {status}{why}"))
        }
        UpstreamError::Body(m) => (FailureKind::Malformed, None, format!("connection broke: {m}")),
        UpstreamError::TooLarge(n) => (FailureKind::Malformed, None, format!("response over {n} bytes")),
    }
}
