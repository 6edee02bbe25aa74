//! A streamed miss. Each upstream event goes to the client the moment it
//! arrives; the same events are assembled into the completion that gets cached.
//!
//! Falling back to the next rung is possible until the first event reaches
//! the client. After that, an upstream failure ends the stream with an
//! OpenAI-style error event and never a clean `[DONE]`.

use crate::answer::{Answer, Shared};
use crate::attempt::{Failure, Reached};
use crate::ctx::ChatCtx;
use crate::remember::{count_miss, remember_answer};
use crate::reply::{self, Body};
use crate::respond;
use crate::walker::{classify, Opened, Walker, MAX_RESPONSE_BYTES};
use bytes::Bytes;
use deja_api::sse;
use deja_api::{ApiError, ErrorKind, StreamAssembler};
use deja_cache::coalesce::Leader;
use deja_providers::UpstreamEvents;
use deja_router::{FailureKind, Plan};
use http::Response;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

struct Started {
    model: String,
    attempts: usize,
}

pub async fn stream_miss(ctx: ChatCtx, plan: Plan, leader: Option<Leader<Shared>>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (started_tx, started_rx) = oneshot::channel::<Result<Started, ApiError>>();
    let label = ctx.policy.miss_label();
    tokio::spawn(run(ctx, plan, leader, tx, started_tx));
    match started_rx.await {
        Ok(Ok(started)) => {
            let mut r = reply::event_stream(reply::channel_body(rx));
            respond::miss_headers(&mut r, label, &started.model, started.attempts, None);
            r
        }
        Ok(Err(e)) => reply::error(&e),
        Err(_) => reply::error(&ApiError::new(ErrorKind::Internal, "the stream failed unexpectedly")),
    }
}

/// Forwards events to the client; once the client is gone, keeps reading so
/// the answer can still be cached.
struct Forwarder {
    tx: mpsc::Sender<Bytes>,
    client_gone: bool,
    include_usage: bool,
}

impl Forwarder {
    async fn send(&mut self, frame: Bytes) {
        if !self.client_gone && self.tx.send(frame).await.is_err() {
            self.client_gone = true;
        }
    }

    /// The frame the client gets for one upstream event. Deja always asks for
    /// usage; a client that did not gets the stream it would have got without
    /// it: no usage-only chunk, and no `usage` key on the others, wherever the
    /// provider put it (null in every chunk, on the last content chunk, or
    /// nowhere). A client that asked gets every event as sent.
    fn client_frame(&self, raw: &str, event: &mut Value) -> Option<Bytes> {
        if self.include_usage {
            return Some(sse::frame(raw));
        }
        let Some(obj) = event.as_object_mut() else { return Some(sse::frame(raw)) };
        let has_choices = obj.get("choices").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
        let has_usage = obj.get("usage").is_some_and(|u| !u.is_null());
        if !has_choices && has_usage {
            return None;
        }
        match obj.remove("usage") {
            Some(_) => Some(sse::frame(&event.to_string())),
            None => Some(sse::frame(raw)),
        }
    }
}

enum StreamEnd {
    Done,
    Failed(FailureKind, String),
}

async fn run(
    ctx: ChatCtx,
    plan: Plan,
    leader: Option<Leader<Shared>>,
    tx: mpsc::Sender<Bytes>,
    started_tx: oneshot::Sender<Result<Started, ApiError>>,
) {
    let config = ctx.config.clone();
    let mut body = serde_json::to_value(&ctx.req).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.insert("stream".to_string(), Value::Bool(true));
        let options = fields.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_string(), Value::Bool(true));
        }
    }
    let mut walker =
        Walker::new(ctx.state.clone(), config.clone(), &plan, "/chat/completions", body).with_hedge(plan.hedge_after);
    let mut fwd = Forwarder { tx, client_gone: false, include_usage: ctx.req.wants_usage_chunk() };

    // Until the first event: any failure moves to the next attempt (or, while
    // a hedge races, to the other one).
    let idle = walker.first_byte_timeout();
    let reached = walker
        .reach(move |mut opened: Opened| async move {
            let mut parser = opened.events();
            let events = first_events(&mut opened, &mut parser, idle).await?;
            Ok::<_, Failure>((opened, (parser, events)))
        })
        .await;
    let Reached { mut opened, value: (mut parser, first), .. } = match reached {
        Ok(r) => r,
        Err(e) => {
            crate::hedge::bill_losers(&ctx, &walker, None);
            let _ = started_tx.send(Err(e.clone()));
            if let Some(l) = leader {
                l.publish(Err(e));
            }
            return;
        }
    };
    let mut asm = StreamAssembler::new();
    let first_event_at = std::time::Instant::now();
    let model = opened.model.name.clone();
    let _ = started_tx.send(Ok(Started { model: model.clone(), attempts: walker.tries() }));
    let overhead = ctx.started.elapsed().saturating_sub(walker.upstream_time);
    ctx.state.metrics.overhead.observe(overhead.as_secs_f64());

    // After the first event: relay, assemble, and end cleanly or with an error event.
    let mut end = None;
    let mut pending = first;
    // Everything relayed is also assembled for the cache: the whole stream is capped.
    let mut received = 0usize;
    loop {
        for raw in pending.drain(..) {
            if raw.trim() == sse::DONE {
                end = Some(StreamEnd::Done);
                break;
            }
            let Ok(mut event) = serde_json::from_str::<Value>(&raw) else {
                end = Some(StreamEnd::Failed(
                    FailureKind::Malformed,
                    "the upstream sent an event that is not JSON".into(),
                ));
                break;
            };
            if event.get("error").is_some() {
                end = Some(StreamEnd::Failed(FailureKind::Status(502), "the upstream sent an error event".into()));
                break;
            }
            asm.push(&event);
            if let Some(frame) = fwd.client_frame(&raw, &mut event) {
                fwd.send(frame).await;
            }
        }
        if end.is_some() {
            break;
        }
        match opened.response.next_chunk(idle).await {
            Ok(Some(chunk)) => {
                received += chunk.len();
                match parser.push(&chunk) {
                    Ok(events) if received <= MAX_RESPONSE_BYTES => pending = events,
                    Ok(_) => {
                        end = Some(StreamEnd::Failed(
                            FailureKind::Malformed,
                            format!("the stream exceeded {MAX_RESPONSE_BYTES} bytes"),
                        ))
                    }
                    Err(e) => end = Some(StreamEnd::Failed(FailureKind::Malformed, e.to_string())),
                }
            }
            Ok(None) => {
                end = Some(StreamEnd::Failed(
                    FailureKind::Malformed,
                    "the upstream closed the stream before [DONE]".into(),
                ));
            }
            Err(e) => {
                let (kind, _, detail) = classify(&e);
                end = Some(StreamEnd::Failed(kind, format!("stream interrupted: {detail}")));
            }
        }
    }

    match end {
        Some(StreamEnd::Done) => match asm.finish() {
            Some(mut completion) => {
                crate::dialect::set_cache_writes(&mut completion, parser.cache_write_tokens());
                walker.succeeded(&opened.model);
                let spec = &opened.model;
                let usage = completion.usage.clone().unwrap_or_default();
                walker.throughput(spec, usage.completion_tokens, first_event_at.elapsed());
                let cost = crate::remember::answer_cost(spec, Some(&usage));
                crate::hedge::bill_losers(&ctx, &walker, Some(usage.prompt_tokens));
                count_miss(&ctx, &spec.name, cost);
                crate::budget::record(&ctx.state, ctx.namespace.as_str(), cost);
                fwd.send(sse::done_frame()).await;
                let answer =
                    Arc::new(Answer { completion, answered_by: model, attempts: walker.tries(), cost_usd: cost });
                remember_answer(&ctx, &answer).await;
                if let Some(l) = leader {
                    l.publish(Ok(answer));
                }
            }
            None => {
                crate::hedge::bill_losers(&ctx, &walker, None);
                fail_stream(
                    &ctx,
                    &mut walker,
                    &opened,
                    &mut fwd,
                    leader,
                    FailureKind::Malformed,
                    "the stream held no answer".into(),
                )
                .await
            }
        },
        Some(StreamEnd::Failed(kind, detail)) => {
            crate::hedge::bill_losers(&ctx, &walker, None);
            fail_stream(&ctx, &mut walker, &opened, &mut fwd, leader, kind, detail).await
        }
        None => {}
    }
}

async fn fail_stream(
    ctx: &ChatCtx,
    walker: &mut Walker,
    opened: &Opened,
    fwd: &mut Forwarder,
    leader: Option<Leader<Shared>>,
    kind: FailureKind,
    detail: String,
) {
    walker.fail(&opened.model, kind, None, detail.clone());
    let err = ApiError::new(ErrorKind::BadGateway, detail).with_code("stream_interrupted");
    fwd.send(sse::frame(&err.to_json().to_string())).await;
    tracing::warn!(request_id = %ctx.request_id, error = %err, "stream ended with an error");
    if let Some(l) = leader {
        l.publish(Err(err));
    }
}

/// Reads until the attempt yields at least one event; a failure before that
/// can still fall back, since nothing has reached the client.
async fn first_events(
    opened: &mut Opened,
    parser: &mut UpstreamEvents,
    idle: Duration,
) -> Result<Vec<String>, Failure> {
    if !opened.response.is_event_stream() {
        return Err(Failure::new(FailureKind::Malformed, "expected an event stream"));
    }
    loop {
        match opened.response.next_chunk(idle).await {
            Ok(Some(chunk)) => {
                let events = parser.push(&chunk).map_err(|e| Failure::new(FailureKind::Malformed, e.to_string()))?;
                let Some(first) = events.first() else { continue };
                let valid = serde_json::from_str::<Value>(first).is_ok_and(|v| v.get("error").is_none());
                if !valid {
                    return Err(Failure::new(FailureKind::Malformed, "the first event was not a chunk"));
                }
                return Ok(events);
            }
            Ok(None) => return Err(Failure::new(FailureKind::Malformed, "the stream ended before any event")),
            Err(e) => {
                let (kind, _, detail) = classify(&e);
                return Err(Failure::new(kind, detail));
            }
        }
    }
}
