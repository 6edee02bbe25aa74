//! Turning a request into an ordered list of attempts, and deciding what a
//! failed attempt means for the rest of that list.

use crate::catalog::{Catalog, LadderSpec, Target};
use crate::health::Health;
use crate::latency::Latency;
use std::time::{Duration, Instant};

/// What the router needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// The requested `model`: a ladder or a model name.
    pub target: &'a str,
    pub prompt_tokens: u64,
    pub task: Option<&'a str>,
    /// The rung a semantic route (see [`crate::routes`]) starts at.
    pub route: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Below the rung the complexity rules start at.
    BelowStart,
    ContextTooSmall,
    CoolingDown,
    /// Its recent p90 time to first byte is over the ladder's `max_ttfb`.
    SlowFirstByte,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BelowStart => "below starting rung",
            Self::ContextTooSmall => "context window too small",
            Self::CoolingDown => "cooling down",
            Self::SlowFirstByte => "first byte slower than max_ttfb",
        }
    }

    /// The `reason` label of `deja_rung_skipped_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::BelowStart => "below_start",
            Self::ContextTooSmall => "context_too_small",
            Self::CoolingDown => "cooling_down",
            Self::SlowFirstByte => "slow_first_byte",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Model indexes into the catalog, in the order to try them.
    pub attempts: Vec<usize>,
    pub skipped: Vec<(usize, SkipReason)>,
    /// Set when the target is a ladder.
    pub ladder: Option<usize>,
    /// Every candidate rung was over the ladder's `max_ttfb`, so none was
    /// skipped for it.
    pub all_over_max_ttfb: bool,
    /// The ladder's `hedge_after`.
    pub hedge_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the model `{0}` does not exist: it is neither a configured model nor a ladder")]
    NotFound(String),
    #[error("the prompt (about {tokens} tokens) exceeds the context window of every rung of `{ladder}`")]
    PromptTooLarge { ladder: String, tokens: u64 },
}

/// Rough prompt size: about four characters a token for English text.
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// What the router knows about the models right now.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    pub health: &'a Health,
    pub latency: &'a Latency,
    pub now: Instant,
}

/// Orders the attempts for `input`. `model_attempts` is how many times a
/// single model is tried (1 + retries).
pub fn plan(catalog: &Catalog, input: RouteInput<'_>, live: Live<'_>, model_attempts: u32) -> Result<Plan, PlanError> {
    match catalog.resolve(input.target) {
        None => Err(PlanError::NotFound(input.target.to_string())),
        Some(Target::Model(i)) => Ok(Plan {
            attempts: vec![i; model_attempts.max(1) as usize],
            skipped: Vec::new(),
            ladder: None,
            all_over_max_ttfb: false,
            hedge_after: None,
        }),
        Some(Target::Ladder(l)) => match catalog.ladder(l) {
            Some(ladder) => plan_ladder(catalog, l, ladder, input, live),
            // `resolve` only hands out indexes of this catalog's ladders.
            None => Err(PlanError::NotFound(input.target.to_string())),
        },
    }
}

fn plan_ladder(
    catalog: &Catalog,
    ladder_idx: usize,
    ladder: &LadderSpec,
    input: RouteInput<'_>,
    live: Live<'_>,
) -> Result<Plan, PlanError> {
    let rung_pos = |name: &str| ladder.rungs.iter().position(|r| r == name).unwrap_or(0);
    let by_size = ladder
        .start_rules
        .iter()
        .filter(|r| input.prompt_tokens >= r.min_prompt_tokens)
        .map(|r| rung_pos(&r.rung))
        .max()
        .unwrap_or(0);
    let by_task = input.task.and_then(|t| ladder.tasks.get(t)).map_or(0, |r| rung_pos(r));
    let by_route = input.route.map_or(0, rung_pos);
    let start = by_size.max(by_task).max(by_route);

    let mut fitting = Vec::new();
    let mut skipped = Vec::new();
    for (pos, rung) in ladder.rungs.iter().enumerate() {
        let Some(m) = catalog.model_index(rung) else { continue };
        let Some(spec) = catalog.model(m) else { continue };
        if pos < start {
            skipped.push((m, SkipReason::BelowStart));
        } else if spec.context_window < input.prompt_tokens {
            skipped.push((m, SkipReason::ContextTooSmall));
        } else {
            fitting.push((m, spec));
        }
    }
    if fitting.is_empty() {
        return Err(PlanError::PromptTooLarge { ladder: ladder.name.clone(), tokens: input.prompt_tokens });
    }
    let (healthy, cooling): (Vec<_>, Vec<_>) =
        fitting.into_iter().partition(|(_, spec)| !live.health.is_cooling(&spec.name, live.now));
    // When every fitting rung is cooling, trying them beats refusing outright.
    let candidates = if healthy.is_empty() {
        cooling
    } else {
        skipped.extend(cooling.into_iter().map(|(m, _)| (m, SkipReason::CoolingDown)));
        healthy
    };
    let arranged = crate::order::arrange(candidates, &ladder.latency, live.latency, live.now);
    skipped.extend(arranged.slow.into_iter().map(|m| (m, SkipReason::SlowFirstByte)));
    Ok(Plan {
        attempts: arranged.attempts,
        skipped,
        ladder: Some(ladder_idx),
        all_over_max_ttfb: arranged.all_slow,
        hedge_after: ladder.latency.hedge_after,
    })
}

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Connect,
    FirstByteTimeout,
    TotalTimeout,
    Status(u16),
    /// A 2xx whose body was not what the OpenAI format promises.
    Malformed,
    /// No API key is configured for the provider.
    NoCredentials,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::FirstByteTimeout => "first_byte_timeout",
            Self::TotalTimeout => "timeout",
            Self::Status(429) => "rate_limited",
            Self::Status(401 | 403) => "auth_error",
            Self::Status(400..=499) => "client_error",
            Self::Status(_) => "server_error",
            Self::Malformed => "malformed",
            Self::NoCredentials => "no_credentials",
        }
    }

    /// The request itself is at fault: a 4xx other than 429 (the provider
    /// is busy) and 401/403 (the provider refused Deja's own key, a
    /// deployment fault). It would fail on every rung alike and says nothing
    /// about the model.
    pub fn is_client_fault(self) -> bool {
        matches!(self, Self::Status(s) if (400..500).contains(&s) && !matches!(s, 401 | 403 | 429))
    }

    /// Whether this failure moves the model toward a cooldown. A client's
    /// bad requests must not: one tenant could otherwise cool a rung for all.
    pub fn counts_against_health(self) -> bool {
        !self.is_client_fault()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try the next attempt in the plan.
    Next,
    /// Give this failure to the client: the request itself is at fault.
    Return,
}

/// The caller's own faults go back to it; anything else (rate limits,
/// server errors, timeouts, broken bodies, a provider refusing Deja's key)
/// moves on to the next attempt, which may be another provider.
pub fn failure_decision(kind: FailureKind) -> Decision {
    if kind.is_client_fault() {
        Decision::Return
    } else {
        Decision::Next
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
