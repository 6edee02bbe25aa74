//! Per client key rate limits: requests and tokens per minute, as GCRA
//! buckets (the algorithm governor uses, with its arithmetic). Callers are
//! keyed by the blake3 hash of their client key (all callers of an open
//! gateway share one budget). Keys with the same limits share a table of
//! buckets; each key still has its own budget in it.
//!
//! A request is tested against every limit before any is charged, under one
//! lock: a request refused for tokens uses none of its key's requests, and
//! the other way round. (governor's `check_key_n` charges as it tests and
//! cannot be asked without charging, hence this small table of our own.)
//!
//! Tokens are estimated from the request before any work is done: the
//! characters of the prompt (`messages` or `input`) divided by four, plus
//! `max_tokens` / `max_completion_tokens` when the request sets them, the way
//! OpenAI counts a request against its token limit.

use deja_api::{ApiError, ErrorKind};
use deja_gateway::config::RateLimit;
use deja_gateway::reply::{self, Body};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Tenant = [u8; 32];

/// Buckets are dropped once full again, every this many checks.
const PRUNE_EVERY: u64 = 4096;

/// One GCRA limit of `per_minute` cells a minute, bursting to all of them:
/// a cell costs `t` nanoseconds of "theoretical arrival time" (TAT), and a
/// bucket may run up to `tau` ahead of now.
#[derive(Clone, Copy)]
struct Gcra {
    t: u64,
    tau: u64,
}

/// What a test of `n` cells found, before anything is charged.
enum Verdict {
    /// Allowed: the bucket's TAT once charged, and the cells left after it.
    Allow { next: u64, remaining: u32 },
    /// Not before this wait.
    Wait(Duration),
    /// More cells than the whole minute holds: it can never pass.
    TooLarge,
}

impl Gcra {
    fn per_minute(per_minute: NonZeroU32) -> Self {
        let t = (60_000_000_000 / u64::from(per_minute.get())).max(1);
        Self { t, tau: t * u64::from(per_minute.get() - 1) }
    }

    /// Tests `n` cells at `now` (nanoseconds) against the bucket's `tat`.
    fn test(self, tat: Option<u64>, now: u64, n: NonZeroU32) -> Verdict {
        let extra = self.t.saturating_mul(u64::from(n.get() - 1));
        if extra > self.tau {
            return Verdict::TooLarge;
        }
        let tat = tat.unwrap_or(now);
        let earliest = tat.saturating_add(extra).saturating_sub(self.tau);
        if now < earliest {
            return Verdict::Wait(Duration::from_nanos(earliest - now));
        }
        let next = tat.max(now).saturating_add(self.t).saturating_add(extra);
        Verdict::Allow { next, remaining: self.capacity(next, now) }
    }

    /// Whole cells a bucket at `tat` can take at `now`.
    fn capacity(self, tat: u64, now: u64) -> u32 {
        let full = self.tau + self.t;
        let free = now.saturating_add(full).saturating_sub(tat).min(full);
        u32::try_from(free / self.t).unwrap_or(u32::MAX)
    }
}

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

    /// The refusal as an error, for doors that shape errors their own way.
    pub fn error(&self) -> ApiError {
        self.error.clone().with_status(429)
    }

    /// Adds the `x-ratelimit-*` and `retry-after` headers.
    pub fn add_headers(&self, response: &mut Response<Body>) {
        add_headers(response, &self.headers);
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

pub struct RateLimits {
    /// Each caller's TAT, by (family, per-minute quota), then caller.
    buckets: Mutex<Buckets>,
    /// Time zero of every TAT.
    start: Instant,
}

#[derive(Default)]
struct Buckets {
    tats: HashMap<(u8, NonZeroU32), HashMap<Tenant, u64>>,
    checks: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { buckets: Mutex::default(), start: Instant::now() }
    }
}

impl RateLimits {
    /// Counts one request of about `tokens` tokens from `client_key` against `limit`.
    pub fn check(&self, limit: RateLimit, client_key: Option<&str>, tokens: u32) -> Result<Allowed, Refused> {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(limit, client_key, tokens, now)
    }

    /// [`RateLimits::check`] at `now`, nanoseconds after `self.start`: every
    /// limit is tested first, and charged only if all of them allow it.
    fn check_at(&self, limit: RateLimit, client_key: Option<&str>, tokens: u32, now: u64) -> Result<Allowed, Refused> {
        let tenant: Tenant = *blake3::hash(client_key.unwrap_or("").as_bytes()).as_bytes();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.checks += 1;
        if buckets.checks.is_multiple_of(PRUNE_EVERY) {
            // A bucket whose TAT has passed is full: the same as no bucket.
            for tats in buckets.tats.values_mut() {
                tats.retain(|_, tat| *tat > now);
            }
        }
        // Each allowed family as it would be once charged, and as it is now.
        let mut snapshots = Vec::new();
        let mut uncharged = Vec::new();
        let mut charges = Vec::new();
        for (family, per_minute) in
            [(Family::Requests, limit.requests_per_minute), (Family::Tokens, limit.tokens_per_minute)]
        {
            let Some(per_minute) = per_minute else { continue };
            let table = (family as u8, per_minute);
            let gcra = Gcra::per_minute(per_minute);
            let tat = buckets.tats.get(&table).and_then(|t| t.get(&tenant)).copied();
            let cells = match family {
                Family::Requests => NonZeroU32::MIN,
                Family::Tokens => NonZeroU32::new(tokens).unwrap_or(NonZeroU32::MIN),
            };
            let max = per_minute.get();
            let refill = |used: u32| Duration::from_secs(60) * used / max;
            let outcome = match gcra.test(tat, now, cells) {
                Verdict::Allow { next, remaining } => {
                    snapshots.push(Snapshot { family, limit: max, remaining, reset: refill(max - remaining) });
                    let now_left = gcra.capacity(tat.unwrap_or(now), now).min(max);
                    uncharged.push(Snapshot { family, limit: max, remaining: now_left, reset: refill(max - now_left) });
                    charges.push((table, next));
                    continue;
                }
                Verdict::Wait(wait) => (wait, None),
                Verdict::TooLarge => (Duration::from_secs(60), Some(cells.get())),
            };
            let (wait, too_large) = outcome;
            // Nothing is charged: an allowed family keeps what it had.
            let mut snapshots = uncharged;
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
        for (table, next) in charges {
            buckets.tats.entry(table).or_default().insert(tenant, next);
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

    fn limit(requests: u32, tokens: u32) -> RateLimit {
        RateLimit { requests_per_minute: NonZeroU32::new(requests), tokens_per_minute: NonZeroU32::new(tokens) }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_request_refused_for_tokens_uses_none_of_the_requests() {
        let rates = RateLimits::default();
        let key = Some("sk-a");
        let ok = rates.check_at(limit(2, 100), key, 80, 0).map_err(|r| r.error).expect("first request passes");
        assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), Some("1"));
        assert_eq!(header(&ok, "x-ratelimit-remaining-tokens"), Some("20"));
        // Over the tokens left, and larger than the whole minute: both refused.
        for tokens in [50, 500] {
            let refused = rates.check_at(limit(2, 100), key, tokens, MS).expect_err("refused for tokens");
            assert_eq!(refused.family.name(), "tokens");
            assert_eq!(header(&refused.headers, "x-ratelimit-remaining-requests"), Some("1"), "nothing charged");
        }
        // The second request of the minute is still there.
        let ok = rates.check_at(limit(2, 100), key, 10, 2 * MS).map_err(|r| r.error).expect("still allowed");
        assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), Some("0"));
        let refused = rates.check_at(limit(2, 100), key, 1, 3 * MS).expect_err("the requests are spent");
        assert_eq!(refused.family.name(), "requests");
    }

    #[test]
    fn a_request_refused_for_requests_uses_none_of_the_tokens() {
        let rates = RateLimits::default();
        let key = Some("sk-b");
        rates.check_at(limit(1, 100), key, 60, 0).map_err(|r| r.error).expect("first request passes");
        let refused = rates.check_at(limit(1, 100), key, 30, MS).expect_err("refused for requests");
        assert_eq!(refused.family.name(), "requests");
        // Refused again: a refusal charges nothing, so this one is refused for requests too.
        let refused = rates.check_at(limit(1, 100), key, 30, 2 * MS).expect_err("still refused");
        assert_eq!(refused.family.name(), "requests");
        // With requests unlimited the same key still has its 40 tokens (and a little refill).
        let ok = rates.check_at(limit(0, 100), key, 40, 3 * MS).map_err(|r| r.error).expect("tokens left");
        assert_eq!(header(&ok, "x-ratelimit-remaining-tokens"), Some("0"));
    }

    #[test]
    fn the_buckets_follow_governors_arithmetic() {
        use governor::clock::{Clock, FakeRelativeClock};
        use governor::middleware::StateInformationMiddleware;
        use governor::{Quota, RateLimiter};
        for per_minute in [1u32, 7, 60, 1000] {
            let quota = NonZeroU32::new(per_minute).expect("non-zero");
            let clock = FakeRelativeClock::default();
            let reference = RateLimiter::direct_with_clock(Quota::per_minute(quota), clock.clone())
                .with_middleware::<StateInformationMiddleware>();
            let gcra = Gcra::per_minute(quota);
            let mut tat = None;
            let mut now = 0u64;
            let mut seed = u64::from(per_minute);
            for _ in 0..500 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let step = (seed >> 33) % 3_000;
                now += step * MS;
                clock.advance(Duration::from_millis(step));
                let n = NonZeroU32::new(1 + ((seed >> 13) % u64::from(per_minute + 1)) as u32).expect("non-zero");
                match (reference.check_n(n), gcra.test(tat, now, n)) {
                    (Ok(Ok(state)), Verdict::Allow { next, remaining }) => {
                        assert_eq!(state.remaining_burst_capacity(), remaining);
                        tat = Some(next);
                    }
                    (Ok(Err(not_until)), Verdict::Wait(wait)) => {
                        assert_eq!(not_until.wait_time_from(clock.now()), wait);
                    }
                    (Err(_), Verdict::TooLarge) => {}
                    (theirs, _) => panic!("{per_minute}/min, {n} cells at {now}ns: governor said {theirs:?}"),
                }
            }
        }
    }

    #[test]
    fn tokens_count_the_prompt_and_the_output_cap() {
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": "12345678"}], "max_tokens": 10}"#;
        assert_eq!(estimate_tokens(body), 3 + 10);
        assert_eq!(estimate_tokens(b"not json at all"), 4);
    }
}
