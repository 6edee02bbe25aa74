//! What the client's `Cache-Control` (RFC 9111, request directives) and
//! `x-deja-ttl` ask of Deja.
//!
//! `max-age=N` and `min-fresh=N` bound what may be served: an entry older
//! than N seconds, or with less than N seconds to live, is not served and the
//! request goes upstream (its answer replaces the entry). `max-age=0` and
//! `no-cache` serve nothing cached and store the fresh answer (`refresh`);
//! `no-store` neither reads nor writes (`bypass`). `max-stale` is accepted
//! and has no effect: an expired entry is never served. How long an answer
//! is kept is the config's `cache.default_ttl`, or `x-deja-ttl` (a duration
//! such as `10m`), never past `cache.max_ttl`.

use deja_api::ApiError;
use deja_cache::Freshness;
use http::HeaderMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Look up, and store a miss.
    Normal,
    /// `no-cache` or `max-age=0`: skip the lookup, store the fresh answer (`refresh`).
    Refresh,
    /// `no-store`: neither read nor write (`bypass`).
    Bypass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub mode: CacheMode,
    /// `x-deja-ttl`: how long the answer is kept (capped by `cache.max_ttl` when stored).
    pub ttl: Option<Duration>,
    /// `max-age`, `min-fresh`: what may be served.
    pub fresh: Freshness,
}

/// Seconds in a delta-seconds directive; a value past what fits is the
/// largest ("a very large number", RFC 9111 section 1.2.2).
fn delta_seconds(value: &str) -> Option<u64> {
    let v = value.trim_matches('"');
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u64>().unwrap_or(u64::MAX))
}

impl CachePolicy {
    /// Reads the request's headers; an `x-deja-ttl` that is not a duration is a 400.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut policy = CachePolicy { mode: CacheMode::Normal, ttl: None, fresh: Freshness::default() };
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                match directive.split_once('=') {
                    None if directive == "no-store" => policy.mode = CacheMode::Bypass,
                    None if directive == "no-cache" && policy.mode != CacheMode::Bypass => {
                        policy.mode = CacheMode::Refresh
                    }
                    Some(("max-age", n)) => {
                        policy.fresh.max_age_ms = delta_seconds(n).map(|s| s.saturating_mul(1000));
                    }
                    Some(("min-fresh", n)) => {
                        policy.fresh.min_fresh_ms = delta_seconds(n).map(|s| s.saturating_mul(1000));
                    }
                    _ => {}
                }
            }
        }
        // max-age=0: nothing stored is fresh enough; the answer is.
        if policy.fresh.max_age_ms == Some(0) && policy.mode == CacheMode::Normal {
            policy.mode = CacheMode::Refresh;
        }
        if let Some(v) = headers.get("x-deja-ttl") {
            let ttl = v
                .to_str()
                .ok()
                .and_then(|v| crate::config::parse_duration(v).ok())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ApiError::invalid_request("x-deja-ttl must be a duration such as 30s, 10m or 24h", None)
                        .with_code("invalid_ttl")
                })?;
            policy.ttl = Some(ttl);
        }
        Ok(policy)
    }

    pub fn reads(&self) -> bool {
        self.mode == CacheMode::Normal
    }

    pub fn writes(&self) -> bool {
        self.mode != CacheMode::Bypass
    }

    /// How long an answer is kept: the client's `x-deja-ttl` or `default`, at most `max`.
    pub fn ttl(&self, default: Duration, max: Duration) -> Duration {
        self.ttl.unwrap_or(default).min(max)
    }

    /// The `x-deja-cache` value for an answer that came from upstream.
    pub fn miss_label(&self) -> &'static str {
        match self.mode {
            CacheMode::Normal => "miss",
            CacheMode::Refresh => "refresh",
            CacheMode::Bypass => "bypass",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: &str) -> CachePolicy {
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, v.parse().expect("header"));
        CachePolicy::from_headers(&h).expect("policy")
    }

    #[test]
    fn directives_map_to_modes() {
        assert_eq!(CachePolicy::from_headers(&HeaderMap::new()).expect("policy").mode, CacheMode::Normal);
        assert_eq!(policy("no-cache").mode, CacheMode::Refresh);
        assert_eq!(policy("no-store").mode, CacheMode::Bypass);
        assert_eq!(policy("no-cache, no-store").mode, CacheMode::Bypass);
        assert_eq!(policy("max-age=60").mode, CacheMode::Normal);
        assert_eq!(policy("max-age=0").mode, CacheMode::Refresh);
        assert!(policy("max-age=0").writes(), "the fresh answer is stored");
        assert!(!policy("no-store").reads());
    }

    #[test]
    fn max_age_and_min_fresh_bound_what_is_served_not_how_long_it_is_kept() {
        let p = policy("max-age=60, min-fresh=5");
        assert_eq!(p.fresh, Freshness { max_age_ms: Some(60_000), min_fresh_ms: Some(5_000) });
        assert_eq!(p.ttl, None);
        let day = Duration::from_secs(86_400);
        assert_eq!(p.ttl(day, 7 * day), day, "the config's TTL");
        assert_eq!(policy("max-age=99999999999999999999999").fresh.max_age_ms, Some(u64::MAX));
        assert_eq!(policy("max-age=abc").fresh.max_age_ms, None, "not delta-seconds: ignored");
    }

    #[test]
    fn a_clients_ttl_is_capped_and_must_be_a_duration() {
        let mut h = HeaderMap::new();
        h.insert("x-deja-ttl", "10m".parse().expect("header"));
        let p = CachePolicy::from_headers(&h).expect("policy");
        let (day, hour) = (Duration::from_secs(86_400), Duration::from_secs(3_600));
        assert_eq!(p.ttl(day, day), Duration::from_secs(600));
        h.insert("x-deja-ttl", "500000000y".parse().expect("header"));
        assert!(CachePolicy::from_headers(&h).is_err(), "past any cap: refused");
        h.insert("x-deja-ttl", "30d".parse().expect("header"));
        assert_eq!(CachePolicy::from_headers(&h).expect("policy").ttl(day, hour), hour, "capped");
        for bad in ["soon", "0", "-1s"] {
            h.insert("x-deja-ttl", bad.parse().expect("header"));
            let e = CachePolicy::from_headers(&h).expect_err(bad);
            assert_eq!(e.code.as_deref(), Some("invalid_ttl"));
        }
    }
}
