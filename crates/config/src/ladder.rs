//! A ladder's latency options (`strategy`, `max_ttfb`, `hedge_after`),
//! checked against the ladder and `[routing]`.

use super::{invalid, parse_duration, raw::RawLadder, ConfigError};
use deja_router::{LatencyPolicy, Strategy};
use std::time::Duration;

pub fn latency_policy(i: usize, l: &RawLadder, first_byte_timeout: Duration) -> Result<LatencyPolicy, ConfigError> {
    let path = |field: &str| format!("ladders[{i}].{field}");
    let strategy = match l.strategy.as_deref() {
        None => Strategy::Cost,
        Some(s) => Strategy::parse(s)
            .ok_or_else(|| invalid(path("strategy"), format!("`{s}` is not one of \"cost\", \"latency\"")))?,
    };
    let positive = |field: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        match v.as_deref().map(parse_duration) {
            None => Ok(None),
            Some(Ok(d)) if d.is_zero() => Err(invalid(path(field), "must be longer than 0s")),
            Some(Ok(d)) => Ok(Some(d)),
            Some(Err(m)) => Err(invalid(path(field), m)),
        }
    };
    let max_ttfb = positive("max_ttfb", &l.max_ttfb)?;
    let hedge_after = positive("hedge_after", &l.hedge_after)?;
    if let Some(h) = hedge_after {
        if l.rungs.len() < 2 {
            return Err(invalid(path("hedge_after"), "a hedge needs a second rung to start"));
        }
        if h >= first_byte_timeout {
            return Err(invalid(
                path("hedge_after"),
                format!(
                    "must be shorter than routing.first_byte_timeout ({}), or no attempt lives long enough to hedge",
                    humantime::format_duration(first_byte_timeout)
                ),
            ));
        }
    }
    Ok(LatencyPolicy { strategy, max_ttfb, hedge_after })
}
