//! Per client key rate limits: requests and tokens per minute, with governor's
//! keyed GCRA limiters. Callers are keyed by the blake3 hash of their client
//! key (all callers of an open gateway share one budget). Keys with the same
//! limits share a keyed limiter; each key still has its own budget in it.
//!
//! Tokens are estimated from the request before any work is done: the
//! characters of the prompt (`messages` or `input`) divided by four, plus
//! `max_tokens` / `max_completion_tokens` when the request sets them, the way
//! OpenAI counts a request against its token limit.

use deja_api::{ApiError, ErrorKind};
use deja_gateway::config::RateLimit;
use deja_gateway::reply::{self, Body};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Tenant = [u8; 32];
type Keyed = RateLimiter<Tenant, DefaultKeyedStateStore<Tenant>, DefaultClock, StateInformationMiddleware>;

/// One limit family (requests or tokens) and what a response says about it.
#[derive(Clone, Copy)]
enum Family {
    Requests,
    Tokens,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
        }
    }
}

/// The `x-ratelimit-*` state of one family after a check.
struct Snapshot {
    family: Family,
    limit: u32,
    remaining: u32,
    reset: Duration,
}

/// A refused request: which limit it ran into, why, and the headers to send.
pub struct Refused {
    family: Family,
    error: ApiError,
    headers: Vec<(String, String)>,
}

impl Refused {
    /// The 429: OpenAI's body (with the exhausted limit in `type`) and headers.
    pub fn response(&self) -> Response<Body> {
        let mut body = self.error.to_json();
        if let Some(kind) = body.pointer_mut("/error/type") {
            *kind = json!(self.family.name());
        }
        let mut response = reply::json(StatusCode::TOO_MANY_REQUESTS, &body);
        add_headers(&mut response, &self.headers);
        response
    }
}

pub fn add_headers(response: &mut Response<Body>, headers: &[(String, String)]) {
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Headers to add to an allowed request's response.
pub type Allowed = Vec<(String, String)>;

#[derive(Default)]
pub struct RateLimits {
    /// Keyed limiters by (family, per-minute quota).
    limiters: Mutex<HashMap<(u8, NonZeroU32), Arc<Keyed>>>,
    clock: DefaultClock,
}

impl RateLimits {
    fn limiter(&self, family: Family, per_minute: NonZeroU32) -> Arc<Keyed> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((family as u8, per_minute))
            .or_insert_with(|| Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)).with_middleware()))
            .clone()
    }

    /// Counts one request of about `tokens` tokens from `client_key` against `limit`.
    pub fn check(&self, limit: RateLimit, client_key: Option<&str>, tokens: u32) -> Result<Allowed, Refused> {
        let tenant: Tenant = *blake3::hash(client_key.unwrap_or("").as_bytes()).as_bytes();
        let mut snapshots = Vec::new();
        for (family, per_minute) in
            [(Family::Requests, limit.requests_per_minute), (Family::Tokens, limit.tokens_per_minute)]
        {
            let Some(per_minute) = per_minute else { continue };
            let limiter = self.limiter(family, per_minute);
            let cells = match family {
                Family::Requests => NonZeroU32::MIN,
                Family::Tokens => NonZeroU32::new(tokens).unwrap_or(NonZeroU32::MIN),
            };
            let max = per_minute.get();
            let refill = |used: u32| Duration::from_secs(60) * used / max;
            let outcome = match limiter.check_key_n(&tenant, cells) {
                Ok(Ok(state)) => {
                    let remaining = state.remaining_burst_capacity();
                    snapshots.push(Snapshot { family, limit: max, remaining, reset: refill(max - remaining) });
                    continue;
                }
                Ok(Err(not_until)) => (not_until.wait_time_from(self.clock.now()), None),
                // Larger than the whole minute's budget: it can never pass.
                Err(_) => (Duration::from_secs(60), Some(cells.get())),
            };
            let (wait, too_large) = outcome;
            let remaining = match (family, too_large) {
                // What is left now: the cells asked for, less what refills during the wait.
                (Family::Tokens, None) => cells.get().saturating_sub(refill_cells(wait, max)),
                _ => 0,
            };
            snapshots.push(Snapshot { family, limit: max, remaining, reset: wait });
            let message = match too_large {
                Some(n) => format!(
                    "this request (about {n} tokens) is larger than this key's limit of {max} tokens per minute"
                ),
                None => format!(
                    "rate limit reached for {}: {max} per minute for this key; try again in {}",
                    family.name(),
                    format_reset(wait)
                ),
            };
            let error = ApiError::new(ErrorKind::RateLimited, message).with_code("rate_limit_exceeded");
            let mut headers = headers(&snapshots);
            headers.push(("retry-after".into(), wait.as_secs_f64().ceil().max(1.0).to_string()));
            return Err(Refused { family, error, headers });
        }
        Ok(headers(&snapshots))
    }
}

fn refill_cells(wait: Duration, per_minute: u32) -> u32 {
    u32::try_from(wait.as_millis() * u128::from(per_minute) / 60_000).unwrap_or(u32::MAX)
}

fn headers(snapshots: &[Snapshot]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in snapshots {
        let f = s.family.name();
        out.push((format!("x-ratelimit-limit-{f}"), s.limit.to_string()));
        out.push((format!("x-ratelimit-remaining-{f}"), s.remaining.to_string()));
        out.push((format!("x-ratelimit-reset-{f}"), format_reset(s.reset)));
    }
    out
}

/// `20ms`, `3s`, `1m30s`: how OpenAI writes `x-ratelimit-reset-*`.
fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64().ceil() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// About how many tokens a chat or embeddings request counts for.
pub fn estimate_tokens(body: &[u8]) -> u32 {
    let tokens = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let prompt = ["messages", "input", "prompt"].iter().filter_map(|k| v.get(*k)).map(text_chars).sum();
            let output = ["max_tokens", "max_completion_tokens"].iter().filter_map(|k| v.get(*k)?.as_u64()).max();
            deja_router::estimate_tokens(prompt).saturating_add(output.unwrap_or(0))
        }
        Err(_) => deja_router::estimate_tokens(body.len()),
    };
    u32::try_from(tokens).unwrap_or(u32::MAX).max(1)
}

fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(fields) => fields.values().map(text_chars).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai() {
        assert_eq!(format_reset(Duration::from_millis(20)), "20ms");
        assert_eq!(format_reset(Duration::from_millis(2_500)), "3s");
        assert_eq!(format_reset(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn tokens_count_the_prompt_and_the_output_cap() {
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": "12345678"}], "max_tokens": 10}"#;
        assert_eq!(estimate_tokens(body), 3 + 10);
        assert_eq!(estimate_tokens(b"not json at all"), 4);
    }
}
