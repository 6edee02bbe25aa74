//! Durations in config files: `500ms`, `30s`, `5m`, `24h`, `7d`, `1h 30m`
//! (humantime's syntax), or a plain number of seconds. None is longer than
//! [`MAX_DURATION`], so adding one to an `Instant` or a `SystemTime` on the
//! request path cannot overflow; fields with a tighter natural bound check
//! it with [`parse_duration_at_most`].

use std::time::Duration;

/// Ten (Julian) years: the longest duration any field accepts (a TTL).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 36_525 * 86_400 / 100);

/// A timeout of more than a day is a typo, not a policy.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_at_most(s, MAX_DURATION)
}

/// [`parse_duration`] for a field that allows at most `max`.
pub fn parse_duration_at_most(s: &str, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let d = if s.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        // `try_from`: a number of seconds past `u64::MAX` is an error, not a panic.
        match s.parse::<f64>().ok().and_then(|secs| Duration::try_from_secs_f64(secs).ok()) {
            Some(d) => d,
            None => return Err(format!("`{s}` is not a duration like 30s, 5m or 24h")),
        }
    } else {
        humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 24h ({e})"))?
    };
    if d > max {
        return Err(format!("`{s}` is longer than the most this field allows, {}", humantime::format_duration(max)));
    }
    Ok(d)
}
