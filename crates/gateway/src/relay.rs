//! A streamed miss. Each upstream event goes to the client the moment it
//! arrives; the same events are assembled into the completion that gets cached.
//!
//! Falling back to the next rung is possible until the first event reaches
//! the client. After that, an upstream failure ends the stream with an
//! OpenAI-style error event and never a clean `[DONE]`.

use crate::answer::{Answer, Shared};
use crate::ctx::ChatCtx;
use crate::remember::{count_miss, count_spend, remember_answer};
use crate::reply::{self, Body};
use crate::respond;
use crate::walker::{classify, Opened, Walker, MAX_RESPONSE_BYTES};
use bytes::Bytes;
use deja_api::sse;
use deja_api::{ApiError, ErrorKind, StreamAssembler};
use deja_cache::coalesce::Leader;
use deja_providers::UpstreamEvents;
use deja_router::{cost_usd, FailureKind, Plan};
use http::Response;
use serde_json::{Map, Value};
use std::sync::Arc;
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
    let mut walker = Walker::new(ctx.state.clone(), config.clone(), &plan, "/chat/completions", body);
    let mut fwd = Forwarder { tx, client_gone: false, include_usage: ctx.req.wants_usage_chunk() };
    let mut started_tx = Some(started_tx);

    // Until the first event: any failure moves to the next attempt.
    let (mut opened, mut parser, mut asm, first_events) = loop {
        let mut opened = match walker.open().await {
            Ok(o) => o,
            Err(e) => {
                if let Some(s) = started_tx.take() {
                    let _ = s.send(Err(e.clone()));
                }
                if let Some(l) = leader {
                    l.publish(Err(e));
                }
                return;
            }
        };
        let mut parser = opened.events();
        match first_events(&mut walker, &mut opened, &mut parser).await {
            Some(events) => {
                walker.first_byte(&opened.model, opened.started.elapsed());
                break (opened, parser, StreamAssembler::new(), events);
            }
            None => continue,
        }
    };
    let first_event_at = std::time::Instant::now();
    let model = opened.model.name.clone();
    if let Some(s) = started_tx.take() {
        let _ = s.send(Ok(Started { model: model.clone(), attempts: walker.tries() }));
    }
    let overhead = ctx.started.elapsed().saturating_sub(walker.upstream_time);
    ctx.state.metrics.overhead.observe(overhead.as_secs_f64());

    // After the first event: relay, assemble, and end cleanly or with an error event.
    let mut end = None;
    let mut pending = first_events;
    // Everything relayed is also assembled for the cache: the whole stream is capped.
    let mut received = 0usize;
    let idle = walker.first_byte_timeout();
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
            Some(completion) => {
                walker.succeeded(&opened.model);
                let spec = &opened.model;
                let usage = completion.usage.clone().unwrap_or_default();
                walker.throughput(spec, usage.completion_tokens, first_event_at.elapsed());
                let cost = cost_usd(spec, usage.prompt_tokens, usage.completion_tokens);
                count_miss(&ctx);
                count_spend(&ctx.state, ctx.namespace.as_str(), &spec.name, cost);
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

/// Reads until the attempt yields at least one event. `None` (after recording
/// the failure) means: try the next attempt.
async fn first_events(walker: &mut Walker, opened: &mut Opened, parser: &mut UpstreamEvents) -> Option<Vec<String>> {
    if !opened.response.is_event_stream() {
        walker.fail(&opened.model, FailureKind::Malformed, None, "expected an event stream".into());
        return None;
    }
    let idle = walker.first_byte_timeout();
    loop {
        match opened.response.next_chunk(idle).await {
            Ok(Some(chunk)) => {
                let events = match parser.push(&chunk) {
                    Ok(events) => events,
                    Err(e) => {
                        walker.fail(&opened.model, FailureKind::Malformed, None, e.to_string());
                        return None;
                    }
                };
                let Some(first) = events.first() else { continue };
                // Nothing has reached the client yet: a bad first event can still fall back.
                let valid = serde_json::from_str::<Value>(first).is_ok_and(|v| v.get("error").is_none());
                if !valid {
                    walker.fail(&opened.model, FailureKind::Malformed, None, "the first event was not a chunk".into());
                    return None;
                }
                return Some(events);
            }
            Ok(None) => {
                walker.fail(&opened.model, FailureKind::Malformed, None, "the stream ended before any event".into());
                return None;
            }
            Err(e) => {
                let (kind, _, detail) = classify(&e);
                walker.fail(&opened.model, kind, None, detail);
                return None;
            }
        }
    }
}
