//! What the client's `Cache-Control` asks of Deja.

use http::HeaderMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Look up, and store a miss.
    Normal,
    /// `no-cache`: skip the lookup, store the fresh answer (`refresh`).
    Refresh,
    /// `no-store`: neither read nor write (`bypass`).
    Bypass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub mode: CacheMode,
    /// `max-age=N`: the stored entry's TTL.
    pub ttl: Option<Duration>,
}

impl CachePolicy {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut policy = CachePolicy { mode: CacheMode::Normal, ttl: None };
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
                match directive.split_once('=') {
                    None if directive == "no-store" => policy.mode = CacheMode::Bypass,
                    None if directive == "no-cache" && policy.mode != CacheMode::Bypass => {
                        policy.mode = CacheMode::Refresh
                    }
                    Some(("max-age", n)) => {
                        if let Ok(secs) = n.trim_matches('"').parse::<u64>() {
                            policy.ttl = Some(Duration::from_secs(secs));
                        }
                    }
                    _ => {}
                }
            }
        }
        // max-age=0 means "do not keep this answer".
        if policy.ttl == Some(Duration::ZERO) && policy.mode == CacheMode::Normal {
            policy.mode = CacheMode::Refresh;
        }
        policy
    }

    pub fn reads(&self) -> bool {
        self.mode == CacheMode::Normal
    }

    pub fn writes(&self) -> bool {
        self.mode != CacheMode::Bypass && self.ttl != Some(Duration::ZERO)
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
        CachePolicy::from_headers(&h)
    }

    #[test]
    fn directives_map_to_modes() {
        assert_eq!(CachePolicy::from_headers(&HeaderMap::new()).mode, CacheMode::Normal);
        assert_eq!(policy("no-cache").mode, CacheMode::Refresh);
        assert_eq!(policy("no-store").mode, CacheMode::Bypass);
        assert_eq!(policy("no-cache, no-store").mode, CacheMode::Bypass);
        assert_eq!(policy("max-age=60").ttl, Some(Duration::from_secs(60)));
        assert_eq!(policy("max-age=60").mode, CacheMode::Normal);
        assert!(!policy("max-age=0").writes());
        assert!(!policy("no-store").reads());
    }
}
