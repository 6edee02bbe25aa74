//! Walks a routing plan: one upstream attempt after another until one sends
//! its first byte, recording every failure in metrics and, where the router
//! says it counts, in the model's health. On a ladder with `hedge_after` a
//! silent attempt gets the next one raced against it (`hedge.rs`).
//!
//! The router decided the order and what each failure means; this file only
//! carries the decisions out.

pub mod attempt;
mod bill;
mod calls;
mod complete;
pub mod dialect;
mod errors;
mod hedge;

pub use bill::Bill;
pub use calls::Calls;
pub use complete::Completed;
pub use errors::{classify, client_error};

use crate::config::Config;
use crate::metrics::LadderLabels;
use crate::metrics::ModelErrorLabels;
use attempt::{AttemptEnd, Failure, Prepared, Reached};
use bytes::Bytes;
use deja_api::{ApiError, ErrorKind};
use deja_providers::{anthropic, ProviderKind};
use deja_router::{failure_decision, Decision, FailureKind, ModelSpec, Plan};
use deja_upstream::{Dialect, UpstreamResponse};
use serde_json::Value;
use std::future::Future;
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
    calls: Arc<Calls>,
    bill: Bill,
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
    /// The plan's ladder, for metric labels.
    ladder: Option<String>,
    /// Set by [`Walker::with_hedge`]; cleared once the request has hedged.
    hedge_after: Option<Duration>,
    /// Hedge losers, cancelled before their first byte.
    cancelled: Vec<ModelSpec>,
}

impl Walker {
    pub fn new(
        calls: Arc<Calls>,
        config: Arc<Config>,
        plan: &Plan,
        path: &'static str,
        body: Value,
        bill: Bill,
    ) -> Self {
        let ladder = plan.ladder.and_then(|l| config.catalog.ladder(l)).map(|l| l.name.clone());
        Self {
            calls,
            bill,
            config,
            attempts: plan.attempts.clone(),
            pos: 0,
            path,
            body,
            reasons: Vec::new(),
            refusals: Vec::new(),
            kinds: Vec::new(),
            upstream_time: Duration::ZERO,
            ladder,
            hedge_after: None,
            cancelled: Vec::new(),
        }
    }

    /// Races the next attempt against one that has not sent its first byte
    /// `after` it was sent (the plan's `hedge_after`), once per request.
    /// Only client misses hedge: their miss paths bill the loser.
    pub fn with_hedge(mut self, after: Option<Duration>) -> Self {
        self.hedge_after = after;
        if after.is_some() {
            self.calls.metrics.rungs.hedge_eligible.get_or_create(&self.ladder_label()).inc();
        }
        self
    }

    pub(crate) fn ladder_label(&self) -> LadderLabels {
        LadderLabels { ladder: self.ladder.clone().unwrap_or_default() }
    }

    /// Attempts made so far (skipped ones are not attempts).
    pub fn tries(&self) -> usize {
        self.pos - self.refusals.len()
    }

    pub fn first_byte_timeout(&self) -> Duration {
        self.config.routing.first_byte_timeout
    }

    /// The next attempt of the plan that can be made, or `None` when the
    /// plan is done. Attempts that cannot be made are recorded and passed.
    fn prepare_next(&mut self) -> Result<Option<Prepared>, ApiError> {
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
                    Some(k) => Some(k.to_string()),
                    None => {
                        warn_unset_key_once(&provider.name, var);
                        // The variable's name is configuration: logs only.
                        self.fail(spec, FailureKind::NoCredentials, None, "its provider is not configured".into());
                        continue;
                    }
                },
            };
            let (path, body, dialect) = match provider.kind {
                ProviderKind::OpenAi => {
                    if let Some(fields) = self.body.as_object_mut() {
                        fields.insert("model".to_string(), Value::String(spec.upstream_name.clone()));
                    }
                    (self.path.to_string(), Bytes::from(self.body.to_string()), Dialect::OpenAi)
                }
                ProviderKind::Anthropic => match dialect::anthropic_body(self.path, &self.body, spec, provider) {
                    Ok(body) => (anthropic::PATH.to_string(), body, Dialect::Anthropic),
                    Err(e) => {
                        self.refuse(spec, e);
                        continue;
                    }
                },
                ProviderKind::Gemini => match dialect::gemini_body(self.path, &self.body, spec, provider) {
                    Ok((path, body)) => (path, body, Dialect::Gemini),
                    Err(e) => {
                        self.refuse(spec, e);
                        continue;
                    }
                },
            };
            return Ok(Some(Prepared {
                spec: spec.clone(),
                kind: provider.kind,
                base_url: provider.base_url.clone(),
                path,
                api_key,
                dialect,
                body,
            }));
        }
        Ok(None)
    }

    /// Opens the next attempt that answers 2xx, or explains why none did.
    pub async fn open(&mut self) -> Result<Opened, ApiError> {
        self.reach(|opened| async move { Ok::<_, Failure>((opened, ())) }).await.map(|r| r.opened)
    }

    /// Walks the plan until an attempt sends its first byte, as `stage`
    /// defines it (reading from the 2xx response up to it), and records that
    /// time. With [`Walker::with_hedge`], an attempt still silent after
    /// `hedge_after` gets the next one raced against it (see `hedge.rs`).
    pub async fn reach<T, F, Fut>(&mut self, stage: F) -> Result<Reached<T>, ApiError>
    where
        F: Fn(Opened) -> Fut,
        Fut: Future<Output = Result<(Opened, T), Failure>>,
    {
        loop {
            let Some(first) = self.prepare_next()? else { return Err(self.exhausted()) };
            let model = first.spec.clone();
            let sent = Instant::now();
            let (calls, config) = self.handles();
            let mut attempt = std::pin::pin!(attempt::run(calls, config, first, &stage));
            let end = match self.hedge_after {
                None => attempt.await,
                Some(after) => {
                    let in_time = tokio::select! {
                        end = &mut attempt => Some(end),
                        () = tokio::time::sleep(after) => None,
                    };
                    let hedge = match in_time {
                        Some(_) => None,
                        None => self.prepare_hedge()?,
                    };
                    match (in_time, hedge) {
                        (Some(end), _) => end,
                        // Nothing left to hedge with: keep waiting.
                        (None, None) => attempt.await,
                        (None, Some(second)) => {
                            self.upstream_time += sent.elapsed();
                            match hedge::race(self, attempt, &model, sent, second, &stage).await? {
                                Some(reached) => return Ok(reached),
                                None => continue,
                            }
                        }
                    }
                }
            };
            self.upstream_time += sent.elapsed();
            match end {
                AttemptEnd::Reached(r) => {
                    self.first_byte(&r.opened.model, r.took);
                    return Ok(r);
                }
                AttemptEnd::Failed(spec, f) => {
                    let retry_after = f.retry_after;
                    if let Some(e) = self.failed(&spec, f) {
                        return Err(e);
                    }
                    // Retrying the same model: wait as long as it asked (capped).
                    let next = self.attempts.get(self.pos).and_then(|&m| self.config.catalog.model(m));
                    if let (Some(wait), Some(next)) = (retry_after, next) {
                        if next.name == spec.name {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
    }

    /// Records an attempt that failed before its first byte; `Some` is the
    /// error to give the client (the request itself is at fault).
    pub(crate) fn failed(&mut self, spec: &ModelSpec, f: Failure) -> Option<ApiError> {
        self.fail(spec, f.kind, f.retry_after, f.detail);
        if failure_decision(f.kind) == Decision::Return {
            return Some(f.client_error.unwrap_or_else(|| ApiError::new(ErrorKind::BadGateway, spec.name.clone())));
        }
        None
    }

    /// Takes the next attempt for a hedge, if the plan has one: no hedge
    /// after this one.
    pub(crate) fn prepare_hedge(&mut self) -> Result<Option<Prepared>, ApiError> {
        self.hedge_after = None;
        self.prepare_next()
    }

    pub(crate) fn handles(&self) -> (Arc<Calls>, Arc<Config>) {
        (self.calls.clone(), self.config.clone())
    }

    pub(crate) fn calls(&self) -> &Calls {
        &self.calls
    }

    /// A hedge loser, dropped (its connection closed) before its first byte,
    /// `waited` after it was sent. Not a failure: health and error rate are
    /// left alone. Its wait is only a lower bound of its time to first byte:
    /// it is recorded when it is above the model's recent p90 (it shows the
    /// model is slower than thought), never when below (a hedge started late
    /// and cut short would make a slow model look fast). Its cost is billed
    /// by the miss path.
    pub(crate) fn cancel(&mut self, model: &ModelSpec, waited: Duration) {
        tracing::debug!(model = %model.name, waited_ms = waited.as_millis() as u64, "hedge loser cancelled");
        let now = Instant::now();
        let p90_ms = self.calls.latency.recent_p90_ms(&model.name, now);
        if p90_ms.is_none_or(|p90| waited.as_secs_f64() * 1000.0 > p90) {
            self.calls.latency.record_first_byte(&model.name, waited, now);
        }
        self.cancelled.push(model.clone());
    }

    /// Records a failed attempt on `model`.
    pub fn fail(&mut self, model: &ModelSpec, kind: FailureKind, retry_after: Option<Duration>, detail: String) {
        let name = &model.name;
        if kind.counts_against_health() {
            self.calls.health.record_failure(name, Instant::now(), retry_after);
            // A cooldown starting here is skipped by the other replicas too
            // ([cluster]), unless it is this replica's own doing: a missing or
            // rejected key says nothing about the provider's health elsewhere.
            if !matches!(kind, FailureKind::NoCredentials | FailureKind::Status(401 | 403)) {
                if let Some(cooldowns) = &self.calls.cooldowns {
                    cooldowns.cooled(name);
                }
            }
        }
        self.calls.latency.record_failure(name, kind);
        self.calls
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
        self.calls.health.record_success(&model.name);
        self.calls.latency.record_success(&model.name);
    }

    /// The answer's first byte arrived `took` after its attempt was sent.
    pub(crate) fn first_byte(&self, model: &ModelSpec, took: Duration) {
        self.calls.latency.record_first_byte(&model.name, took, Instant::now());
    }

    /// `tokens` completion tokens arrived over `body`, first byte to end.
    pub fn throughput(&self, model: &ModelSpec, tokens: u64, body: Duration) {
        self.calls.latency.record_throughput(&model.name, tokens, body);
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
}

/// Logs, once per provider and variable for the life of the process, that
/// `provider`'s key variable is unset: the client is told only that the
/// provider is not configured. `deja serve` warns at start-up too; this
/// catches a variable emptied by a reload.
fn warn_unset_key_once(provider: &str, var: &str) {
    static WARNED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.iter().any(|(p, v)| p == provider && v == var) {
        return;
    }
    warned.push((provider.to_string(), var.to_string()));
    tracing::warn!(%provider, variable = %var, "no API key: the variable is unset or empty, this provider's rungs are skipped");
}
