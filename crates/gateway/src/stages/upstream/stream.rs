//! A streamed miss. Each upstream event goes into the request's [`Feed`] the
//! moment it arrives, for the client and any identical streaming request
//! coalesced onto it to read at their own pace; the same events are
//! assembled into the completion that gets cached.
//!
//! Falling back to the next rung is possible until the first event reaches
//! the client. After that, an upstream failure ends the stream with an
//! OpenAI-style error event and never a clean `[DONE]`.

use super::{Call, Upstream};
use crate::answer::{Answer, Shared};
use crate::feed::{End, Feed, Head};
use crate::reply::{self, Body};
use crate::respond;
use crate::walker::attempt::{Failure, Reached};
use crate::walker::{classify, Opened, Walker, MAX_RESPONSE_BYTES};
use deja_api::sse;
use deja_api::{ApiError, ErrorKind, StreamAssembler};
use deja_cache::coalesce::Leader;
use deja_providers::UpstreamEvents;
use deja_router::FailureKind;
use http::Response;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn miss(upstream: Arc<Upstream>, mut call: Call) -> Response<Body> {
    let label = call.planned.policy.miss_label();
    let include_usage = call.request.req.wants_usage_chunk();
    let feed = call.leading.feed.take().unwrap_or_default();
    let leader = call.leading.leader.take();
    tokio::spawn(run(upstream, call, leader, feed.clone()));
    match feed.head().await {
        Ok(head) => {
            let mut r = reply::event_stream(feed.body(include_usage, None));
            respond::miss_headers(&mut r, label, &head.model, head.attempts, None);
            r
        }
        Err(e) => reply::error(&e),
    }
}

/// Ends the feed if the task ever stops without ending it, so no reader waits forever.
struct EndsFeed(Arc<Feed>);

impl Drop for EndsFeed {
    fn drop(&mut self) {
        self.0.end(End::Failed(ApiError::new(ErrorKind::Internal, "the stream failed unexpectedly")));
    }
}

enum StreamEnd {
    Done,
    Failed(FailureKind, String),
}

/// Reads the upstream stream into the feed, to its end, whoever is still
/// reading it; then stores the answer and hands it to the followers.
async fn run(upstream: Arc<Upstream>, call: Call, leader: Option<Leader<Shared>>, feed: Arc<Feed>) {
    let _ends = EndsFeed(feed.clone());
    let (ctx, plan) = (&*call.request, &call.planned.plan);
    let config = ctx.config.clone();
    let mut body = serde_json::to_value(&ctx.req).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.insert("stream".to_string(), Value::Bool(true));
        let options = fields.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_string(), Value::Bool(true));
        }
    }
    let mut walker = Walker::new(upstream.calls.clone(), config.clone(), plan, "/chat/completions", body, call.bill())
        .with_hedge(plan.hedge_after);

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
            walker.bill_losers(None);
            feed.end(End::Failed(e.clone()));
            if let Some(l) = leader {
                l.publish(Err(e));
            }
            return;
        }
    };
    let mut asm = StreamAssembler::new();
    let first_event_at = std::time::Instant::now();
    let model = opened.model.name.clone();
    feed.start(Head { model: model.clone(), attempts: walker.tries() });
    let overhead = ctx.started.elapsed().saturating_sub(walker.upstream_time);
    upstream.metrics.overhead.observe(overhead.as_secs_f64());

    // After the first event: relay, assemble, and end cleanly or with an error event.
    let mut end = None;
    let mut pending = first;
    // Everything relayed is also assembled for the cache: the whole stream is capped.
    let mut received = 0usize;
    // Output characters relayed, to estimate what a broken stream cost.
    let mut streamed_chars = 0usize;
    loop {
        for raw in pending.drain(..) {
            if raw.trim() == sse::DONE {
                end = Some(StreamEnd::Done);
                break;
            }
            let Ok(event) = serde_json::from_str::<Value>(&raw) else {
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
            streamed_chars += content_chars(&event);
            feed.push(&raw, &event);
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
                crate::walker::dialect::set_cache_writes(&mut completion, parser.cache_write_tokens());
                walker.succeeded(&opened.model);
                let spec = &opened.model;
                let usage = completion.usage.clone().unwrap_or_default();
                walker.throughput(spec, usage.completion_tokens, first_event_at.elapsed());
                let cost = walker.charge(spec, Some(&usage));
                walker.bill_losers(Some(usage.prompt_tokens));
                upstream.calls.ledger.upstream_answer(ctx.namespace.as_str(), &spec.name, call.planned.policy.mode);
                let answer =
                    Arc::new(Answer { completion, answered_by: model, attempts: walker.tries(), cost_usd: cost });
                upstream.sink.remember(ctx, &call.looked, &call.planned.policy, &answer).await;
                // `[DONE]` once stored: a client that read it finds the answer cached.
                feed.end(End::Done { cost_usd: cost });
                if let Some(l) = leader {
                    l.publish(Ok(answer));
                }
            }
            None => {
                walker.bill_losers(None);
                walker.charge_unfinished(&opened.model, streamed_chars);
                fail_stream(
                    ctx,
                    &mut walker,
                    &opened,
                    &feed,
                    leader,
                    FailureKind::Malformed,
                    "the stream held no answer".into(),
                )
                .await
            }
        },
        Some(StreamEnd::Failed(kind, detail)) => {
            // The provider billed what it sent before the stream broke.
            walker.bill_losers(None);
            walker.charge_unfinished(&opened.model, streamed_chars);
            fail_stream(ctx, &mut walker, &opened, &feed, leader, kind, detail).await
        }
        None => {}
    }
}

async fn fail_stream(
    ctx: &crate::stages::Accepted,
    walker: &mut Walker,
    opened: &Opened,
    feed: &Feed,
    leader: Option<Leader<Shared>>,
    kind: FailureKind,
    detail: String,
) {
    walker.fail(&opened.model, kind, None, detail.clone());
    let err = ApiError::new(ErrorKind::BadGateway, detail).with_code("stream_interrupted");
    feed.end(End::Failed(err.clone()));
    tracing::warn!(request_id = %ctx.request_id, error = %err, "stream ended with an error");
    if let Some(l) = leader {
        l.publish(Err(err));
    }
}

/// The characters of text an event carries (content, refusal, tool call
/// arguments), for estimating a broken stream's output.
fn content_chars(event: &Value) -> usize {
    let Some(choices) = event.get("choices").and_then(Value::as_array) else { return 0 };
    choices
        .iter()
        .filter_map(|c| c.get("delta"))
        .map(|d| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, str::len);
            let tools = d.get("tool_calls").and_then(Value::as_array).map_or(0, |calls| {
                calls.iter().map(|t| text(t.get("function").and_then(|f| f.get("arguments")))).sum()
            });
            text(d.get("content")) + text(d.get("refusal")) + tools
        })
        .sum()
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
