//! Durations in config files: `500ms`, `30s`, `5m`, `24h`, `7d`, `1h 30m`
//! (humantime's syntax), or a plain number of seconds.

use std::time::Duration;

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '.') && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return match s.parse::<f64>() {
            Ok(secs) if secs.is_finite() => Ok(Duration::from_secs_f64(secs)),
            _ => Err(format!("`{s}` is not a duration like 30s, 5m or 24h")),
        };
    }
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s, 5m or 24h ({e})"))
}
