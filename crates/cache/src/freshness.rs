//! How fresh an entry a request accepts: `Cache-Control: max-age` and
//! `min-fresh` on the request (RFC 9111, section 5.2.1). An entry outside
//! them is not served: the request is answered upstream, and the fresh
//! answer replaces it.

use deja_store::Entry;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// `max-age`: the oldest entry served, in milliseconds since it was stored.
    pub max_age_ms: Option<u64>,
    /// `min-fresh`: how long an entry served must still have to live.
    pub min_fresh_ms: Option<u64>,
}

impl Freshness {
    /// Whether `entry` may be served at `now_ms`. Expired entries never are.
    pub fn accepts(&self, entry: &Entry, now_ms: u64) -> bool {
        let age = now_ms.saturating_sub(entry.created_ms);
        let left = entry.expires_ms.saturating_sub(now_ms);
        !entry.is_expired(now_ms)
            && self.max_age_ms.is_none_or(|max| age <= max)
            && self.min_fresh_ms.is_none_or(|min| left >= min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deja_api::CacheKey;
    use deja_store::{EntryKind, EntryUsage};

    fn entry(created_ms: u64, expires_ms: u64) -> Entry {
        Entry {
            id: CacheKey([1; 32]),
            kind: EntryKind::Chat,
            namespace: "default".into(),
            requested_model: "m".into(),
            answered_by: "m".into(),
            request: serde_json::json!([]),
            response: serde_json::json!({}),
            usage: EntryUsage::default(),
            cost_usd: 0.0,
            created_ms,
            expires_ms,
            semantic: None,
        }
    }

    #[test]
    fn max_age_bounds_the_age_and_min_fresh_the_time_left() {
        let e = entry(1_000, 61_000);
        assert!(Freshness::default().accepts(&e, 2_000));
        let max_age = Freshness { max_age_ms: Some(1_000), min_fresh_ms: None };
        assert!(max_age.accepts(&e, 2_000));
        assert!(!max_age.accepts(&e, 2_001), "older than max-age");
        let min_fresh = Freshness { max_age_ms: None, min_fresh_ms: Some(10_000) };
        assert!(min_fresh.accepts(&e, 51_000));
        assert!(!min_fresh.accepts(&e, 51_001), "expires too soon");
        assert!(!Freshness::default().accepts(&e, 61_000), "expired");
    }
}
