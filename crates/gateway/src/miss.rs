//! A non-streamed miss: walk the ladder until an attempt returns a valid
//! `chat.completion`, price it, store it, share it with coalesced followers.
//!
//! The work runs in its own task, so an answer already paid for is stored
//! even if the client hangs up.

use crate::answer::{Answer, Shared};
use crate::ctx::ChatCtx;
use crate::remember::remember_answer;
use crate::reply::{self, Body};
use crate::respond;
use crate::walker::{Completed, Walker, MAX_RESPONSE_BYTES};
use deja_api::{ApiError, ErrorKind};
use deja_cache::coalesce::Leader;
use deja_router::Plan;
use http::{Response, StatusCode};
use std::sync::Arc;

pub async fn unary_miss(ctx: ChatCtx, plan: Plan, leader: Option<Leader<Shared>>) -> Response<Body> {
    let stream_flag = ctx.req.is_stream();
    let include_usage = ctx.req.wants_usage_chunk();
    let label = ctx.policy.miss_label();
    let task = tokio::spawn(async move {
        let result = run(&ctx, plan).await;
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
async fn run(ctx: &ChatCtx, plan: Plan) -> Result<(Arc<Answer>, bytes::Bytes, f64), ApiError> {
    let config = ctx.config.clone();
    let mut body = serde_json::to_value(&ctx.req).unwrap_or_default();
    if let Some(o) = body.as_object_mut() {
        o.insert("stream".to_string(), serde_json::Value::Bool(false));
        o.remove("stream_options");
    }
    let mut walker = Walker::new(ctx.state.clone(), config.clone(), &plan, "/chat/completions", body, ctx.bill())
        .with_hedge(plan.hedge_after);
    let completed = walker.complete(MAX_RESPONSE_BYTES).await;
    let reported = completed.as_ref().ok().and_then(|c| c.completion.usage.as_ref()).map(|u| u.prompt_tokens);
    let hedge_usd = walker.bill_losers(reported);
    let Completed { completion, raw, model: spec, cost_usd: cost } = completed?;
    ctx.state.ledger.upstream_answer(ctx.namespace.as_str(), &spec.name, ctx.policy.mode);
    let answer =
        Arc::new(Answer { completion, answered_by: spec.name.clone(), attempts: walker.tries(), cost_usd: cost });
    remember_answer(ctx, &answer).await;
    let overhead = ctx.started.elapsed().saturating_sub(walker.upstream_time);
    ctx.state.metrics.overhead.observe(overhead.as_secs_f64());
    Ok((answer, raw, hedge_usd))
}
