//! Plan: the routing plan (the ladder from the live health and latency
//! figures, a route's starting rung), then the client's budget: its worst
//! case reserved, or past the budget a 429 or the cheapest rung.

use super::{Accepted, Looked, Planned};
use crate::cache_control::CacheMode;
use crate::walker::Calls;
use deja_api::{ApiError, ErrorKind};
use deja_router::{estimate_tokens, PlanError, RouteInput};
use std::sync::Arc;

pub struct Plan {
    pub calls: Arc<Calls>,
}

impl Plan {
    pub fn run(&self, request: &Accepted, looked: &Looked, tenant: Option<&str>) -> Result<Planned, ApiError> {
        let config = &request.config;
        let route = RouteInput {
            target: &request.req.model,
            prompt_tokens: estimate_tokens(request.req.prompt_chars()),
            task: request.task.as_deref(),
            route: looked.route.as_deref(),
        };
        let mut plan = crate::planning::make(&self.calls, config, route).map_err(|e| match e {
            PlanError::NotFound(_) => ApiError::new(ErrorKind::NotFound, e.to_string()).with_code("model_not_found"),
            PlanError::PromptTooLarge { .. } => {
                ApiError::invalid_request(e.to_string(), Some("messages")).with_code("context_length_exceeded")
            }
        })?;
        let max_tokens = request.req.max_completion_tokens.or(request.req.max_tokens);
        let worst = crate::budget::worst_case_usd(config, &plan, request.req.prompt_chars(), max_tokens);
        let admitted = crate::budget::admit(&self.calls.ledger, config, tenant, &mut plan, worst)?;
        let mut policy = request.policy;
        if admitted.downgraded {
            // A downgraded answer is not the one this request would normally
            // get: it is neither stored nor shared with identical requests in flight.
            policy.mode = CacheMode::Bypass;
        }
        Ok(Planned { plan, reservation: admitted.reservation, policy })
    }
}
