//! A non-streamed miss: walk the ladder until an attempt returns a valid
//! `chat.completion`, price it, store it, share it with coalesced followers.

use super::{Call, Upstream};
use crate::answer::Answer;
use crate::reply::{self, Body};
use crate::respond;
use crate::walker::{Completed, Walker, MAX_RESPONSE_BYTES};
use deja_api::{ApiError, ErrorKind};
use http::{Response, StatusCode};
use std::sync::Arc;

pub(super) async fn miss(upstream: Arc<Upstream>, mut call: Call) -> Response<Body> {
    let stream_flag = call.request.req.is_stream();
    let include_usage = call.request.req.wants_usage_chunk();
    let label = call.planned.policy.miss_label();
    let leader = call.leading.leader.take();
    let task = tokio::spawn(async move {
        let result = run(&upstream, &call).await;
        if let Some(leader) = leader {
            leader.publish(result.as_ref().map(|(a, _, _)| a.clone()).map_err(Clone::clone));
        }
        result
    });
    match task.await {
        Ok(Ok((answer, raw, hedge_usd))) => {
            // Pass the provider's bytes through untouched.
            let mut r = if stream_flag {
                respond::completion(&answer.completion, true, include_usage)
            } else {
                reply::json_bytes(StatusCode::OK, raw)
            };
            // What this request cost: the answer, and any hedge loser beside it.
            let cost = answer.cost_usd + hedge_usd;
            respond::miss_headers(&mut r, label, &answer.answered_by, answer.attempts, Some(cost));
            r
        }
        Ok(Err(e)) => reply::error(&e),
        Err(_) => reply::error(&ApiError::new(ErrorKind::Internal, "the request failed unexpectedly")),
    }
}

/// The answer, its bytes, and what hedge losers cost beside it.
async fn run(upstream: &Upstream, call: &Call) -> Result<(Arc<Answer>, bytes::Bytes, f64), ApiError> {
    let (request, plan) = (&call.request, &call.planned.plan);
    let config = request.config.clone();
    let mut body = serde_json::to_value(&request.req).unwrap_or_default();
    if let Some(o) = body.as_object_mut() {
        o.insert("stream".to_string(), serde_json::Value::Bool(false));
        o.remove("stream_options");
    }
    let mut walker = Walker::new(upstream.calls.clone(), config.clone(), plan, "/chat/completions", body, call.bill())
        .with_hedge(plan.hedge_after);
    let completed = walker.complete(MAX_RESPONSE_BYTES).await;
    let reported = completed.as_ref().ok().and_then(|c| c.completion.usage.as_ref()).map(|u| u.prompt_tokens);
    let hedge_usd = walker.bill_losers(reported);
    let Completed { completion, raw, model: spec, cost_usd: cost } = completed?;
    upstream.calls.ledger.upstream_answer(request.namespace.as_str(), &spec.name, call.planned.policy.mode);
    let answer =
        Arc::new(Answer { completion, answered_by: spec.name.clone(), attempts: walker.tries(), cost_usd: cost });
    upstream.sink.remember(request, &call.looked, &call.planned.policy, &answer).await;
    let overhead = request.started.elapsed().saturating_sub(walker.upstream_time);
    upstream.metrics.overhead.observe(overhead.as_secs_f64());
    Ok((answer, raw, hedge_usd))
}
