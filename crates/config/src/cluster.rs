//! `[cluster]`: replicas sharing one cache through Redis. Absent, nothing of
//! the fleet runs and sled alone holds the cache.

use super::{invalid, parse_duration, ConfigError};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `redis://host:port/db` or `redis+unix:///path/to/redis.sock`.
    pub redis_url: String,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// The environment variable holding Redis's password, if it needs one.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The longest any one Redis operation may take before it counts as a failure.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Events (tombstones and new semantic entries) kept in the events
    /// stream, trimmed approximately; a replica left behind rebuilds from Redis.
    #[serde(default = "default_stream_max_len")]
    pub stream_max_len: u64,
    /// Whether new semantic entries are published on the stream, and other replicas' indexed here.
    #[serde(default = "default_replicate_semantic")]
    pub replicate_semantic: bool,
    /// How long a starting replica waits for Redis to catch up on deletes before serving.
    #[serde(default = "default_startup_wait")]
    pub startup_wait: String,
    /// How long a replica waits for the replica answering an identical
    /// request before calling upstream itself; `"0s"` turns fleet-wide coalescing off.
    #[serde(default = "default_coalesce_wait")]
    pub coalesce_wait: String,
    /// How often this replica adds its hit, miss and USD counts to the fleet's in Redis.
    #[serde(default = "default_counters_flush")]
    pub counters_flush: String,
    /// Whether a model cooling down here is skipped by the other replicas too.
    #[serde(default = "default_true")]
    pub share_cooldowns: bool,
}

fn default_key_prefix() -> String {
    "deja".into()
}

fn default_timeout() -> String {
    "50ms".into()
}

fn default_stream_max_len() -> u64 {
    100_000
}

fn default_replicate_semantic() -> bool {
    true
}

fn default_startup_wait() -> String {
    "3s".into()
}

fn default_coalesce_wait() -> String {
    "10s".into()
}

fn default_counters_flush() -> String {
    "1s".into()
}

fn default_true() -> bool {
    true
}

/// The validated `[cluster]` section.
#[derive(Clone)]
pub struct ClusterSettings {
    pub redis_url: String,
    pub key_prefix: String,
    /// Read from `password_env` at load; never printed.
    pub password: Option<String>,
    pub timeout: Duration,
    pub stream_max_len: u64,
    pub replicate_semantic: bool,
    pub startup_wait: Duration,
    /// Zero: no fleet-wide coalescing.
    pub coalesce_wait: Duration,
    pub counters_flush: Duration,
    pub share_cooldowns: bool,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("redis_url", &redact_url(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .field("password", &self.password.as_ref().map(|_| "redacted"))
            .field("timeout", &self.timeout)
            .field("stream_max_len", &self.stream_max_len)
            .field("replicate_semantic", &self.replicate_semantic)
            .field("startup_wait", &self.startup_wait)
            .field("coalesce_wait", &self.coalesce_wait)
            .field("counters_flush", &self.counters_flush)
            .field("share_cooldowns", &self.share_cooldowns)
            .finish()
    }
}

impl ClusterSettings {
    /// The Redis URL as it may be logged.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.redis_url)
    }
}

/// The URL without anything between `//` and `@` (a password written inline).
pub fn redact_url(url: &str) -> String {
    match (url.find("//"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let scheme = url.get(..start + 2).unwrap_or_default();
            let rest = url.get(at + 1..).unwrap_or_default();
            format!("{scheme}***@{rest}")
        }
        _ => url.to_string(),
    }
}

/// Below this a replica would fall behind the stream (and rebuild from
/// Redis) at the slightest pause.
const MIN_STREAM_MAX_LEN: u64 = 10;

pub fn validate(raw: Option<RawCluster>) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let schemes = ["redis://", "redis+unix://", "unix://"];
    if !schemes.iter().any(|s| raw.redis_url.starts_with(s)) {
        return Err(invalid("cluster.redis_url", "must start with redis://, redis+unix:// or unix://"));
    }
    if raw.key_prefix.is_empty() || raw.key_prefix.contains(|c: char| c.is_whitespace() || "*?[]".contains(c)) {
        return Err(invalid("cluster.key_prefix", "must be non-empty, without spaces or *?[]"));
    }
    let timeout = parse_duration(&raw.timeout).map_err(|m| invalid("cluster.timeout", m))?;
    if timeout.is_zero() {
        return Err(invalid("cluster.timeout", "must be greater than 0"));
    }
    let startup_wait = parse_duration(&raw.startup_wait).map_err(|m| invalid("cluster.startup_wait", m))?;
    let coalesce_wait = parse_duration(&raw.coalesce_wait).map_err(|m| invalid("cluster.coalesce_wait", m))?;
    let counters_flush = parse_duration(&raw.counters_flush).map_err(|m| invalid("cluster.counters_flush", m))?;
    if counters_flush < Duration::from_millis(100) {
        return Err(invalid("cluster.counters_flush", "must be at least 100ms"));
    }
    if raw.stream_max_len < MIN_STREAM_MAX_LEN {
        return Err(invalid("cluster.stream_max_len", format!("must be at least {MIN_STREAM_MAX_LEN}")));
    }
    let password = match &raw.password_env {
        None => None,
        Some(var) => match std::env::var(var).ok().filter(|v| !v.is_empty()) {
            Some(p) => Some(p),
            None => return Err(invalid("cluster.password_env", "the environment variable is unset or empty")),
        },
    };
    Ok(Some(ClusterSettings {
        redis_url: raw.redis_url,
        key_prefix: raw.key_prefix,
        password,
        timeout,
        stream_max_len: raw.stream_max_len,
        replicate_semantic: raw.replicate_semantic,
        startup_wait,
        coalesce_wait,
        counters_flush,
        share_cooldowns: raw.share_cooldowns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Option<ClusterSettings>, ConfigError> {
        #[derive(Deserialize)]
        struct Wrap {
            cluster: Option<RawCluster>,
        }
        let w: Wrap = toml::from_str(toml_text).map_err(|e| invalid("cluster", e.to_string()))?;
        validate(w.cluster)
    }

    #[test]
    fn defaults_and_absence() {
        assert!(parse("").expect("no section").is_none());
        let c = parse("[cluster]\nredis_url = \"redis+unix:///tmp/r.sock\"").expect("valid").expect("some");
        assert_eq!(c.key_prefix, "deja");
        assert_eq!(c.timeout, Duration::from_millis(50));
        assert_eq!(c.coalesce_wait, Duration::from_secs(10));
        assert!(c.share_cooldowns);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[cluster]\nredis_url = \"http://x\"").expect_err("bad scheme").to_string();
        assert!(e.starts_with("cluster.redis_url"), "{e}");
        let e = parse("[cluster]\nredis_url = \"redis://x\"\npassword_env = \"DEJA_TEST_SURELY_UNSET_PW\"")
            .expect_err("unset")
            .to_string();
        assert!(e.starts_with("cluster.password_env"), "{e}");
        let e = parse("[cluster]\nredis_url = \"redis://x\"\ntimeout = \"0ms\"").expect_err("zero").to_string();
        assert!(e.starts_with("cluster.timeout"), "{e}");
        let e = parse("[cluster]\nredis_url = \"redis://x\"\ncounters_flush = \"10ms\"").expect_err("fast").to_string();
        assert!(e.starts_with("cluster.counters_flush"), "{e}");
        let e = parse("[cluster]\nredis_url = \"redis://x\"\ncoalesce_wait = \"soon\"").expect_err("bad").to_string();
        assert!(e.starts_with("cluster.coalesce_wait"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = ClusterSettings {
            redis_url: "redis://user:hunter2@host:6379".into(),
            key_prefix: "deja".into(),
            password: Some("s3cret".into()),
            timeout: Duration::from_millis(50),
            stream_max_len: 1000,
            replicate_semantic: true,
            startup_wait: Duration::from_secs(1),
            coalesce_wait: Duration::from_secs(10),
            counters_flush: Duration::from_secs(1),
            share_cooldowns: true,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
    }
}
