//! How long a provider asked to be left alone: OpenAI's `retry-after-ms`, or
//! `Retry-After` as delta-seconds or an HTTP date (RFC 9110, section 10.2.3).

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// The longest wait a provider can ask for; the router caps it further.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait the response asks for, clamped to [`MAX_RETRY_AFTER`]; a date in
/// the past asks for none. A value that is neither a non-negative decimal
/// number nor an HTTP date is ignored, as is an unusable `retry-after-ms`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(ms) = read("retry-after-ms").and_then(decimal) {
        return Some(clamp(ms / 1000.0));
    }
    let value = read("retry-after")?;
    if let Some(secs) = decimal(value) {
        return Some(clamp(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// `digits` or `digits.digits`: RFC 9110's delta-seconds, with the decimals
/// some providers send. No sign, exponent, `inf` or `NaN`.
fn decimal(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    s.parse().ok()
}

/// Seconds to a duration of at most [`MAX_RETRY_AFTER`]; `secs` is finite or
/// `+inf` (a very long digit string) and never negative.
fn clamp(secs: f64) -> Duration {
    if secs >= MAX_RETRY_AFTER.as_secs_f64() {
        return MAX_RETRY_AFTER;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    fn now() -> SystemTime {
        // Tue, 14 Nov 2023 22:13:20 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn seconds(v: &str) -> Option<Duration> {
        retry_after(&headers(&[("retry-after", v)]), now())
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(seconds("0"), Some(Duration::ZERO));
        assert_eq!(seconds("7"), Some(Duration::from_secs(7)));
        assert_eq!(seconds(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(seconds("1.5"), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn huge_delta_seconds_are_clamped() {
        assert_eq!(seconds("3601"), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds("18446744073709551616"), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds(&"9".repeat(400)), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds(&format!("{}.5", "9".repeat(400))), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn garbage_is_ignored() {
        for v in ["1e20", "-1", "-0.5", "NaN", "nan", "inf", "+5", "5s", "1.", ".5", "", "soon", "1,5", "0x10"] {
            assert_eq!(seconds(v), None, "{v:?}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(seconds("Tue, 14 Nov 2023 22:13:50 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(seconds("Tue, 14 Nov 2023 22:13:20 GMT"), Some(Duration::ZERO));
        // Obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(seconds("Tuesday, 14-Nov-23 22:13:50 GMT"), Some(Duration::from_secs(30)));
        assert_eq!(seconds("Tue Nov 14 22:13:50 2023"), Some(Duration::from_secs(30)));
    }

    #[test]
    fn dates_in_the_past_mean_now_and_far_future_dates_are_clamped() {
        assert_eq!(seconds("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(seconds("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds("Tue, 14 Nov 2023 23:13:21 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds("Tue, 14 Nov 2023 25:13:21 GMT"), None);
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "1")]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_millis(250)));
        let h = headers(&[("retry-after-ms", "12.5")]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_micros(12_500)));
        let h = headers(&[("retry-after-ms", "1e20")]);
        assert_eq!(retry_after(&h, now()), None);
        let h = headers(&[("retry-after-ms", "99999999999999999999")]);
        assert_eq!(retry_after(&h, now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn unusable_milliseconds_fall_back_to_seconds() {
        let h = headers(&[("retry-after-ms", "-5"), ("retry-after", "2")]);
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(2)));
    }

    #[test]
    fn absent_or_non_ascii_is_none() {
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
        let mut h = HeaderMap::new();
        h.insert("retry-after", http::HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes"));
        assert_eq!(retry_after(&h, now()), None);
    }
}
