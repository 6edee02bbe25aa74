//! Live per-model figures: time to first byte (an EWMA and the p90 of the
//! last few samples), throughput of answer bodies and an error rate over
//! attempts. Durations are measured by the caller and passed in; nothing here
//! reads the clock.
//!
//! Only failures that count against health move the error rate: a request
//! the upstream refused as malformed says nothing about the model.
//!
//! Each time-to-first-byte sample carries the instant it was taken (passed
//! in), so the router can ask for the p90 of recent samples only
//! ([`Latency::recent_p90_ms`]). An attempt cancelled before its first byte
//! (a hedge's loser) records how long it had waited: a lower bound, so a
//! model is never made to look slower than it was.

use crate::FailureKind;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Weight of the newest sample in every EWMA.
pub const ALPHA: f64 = 0.2;
/// Time-to-first-byte samples kept per model for the p90.
pub const RING: usize = 50;
/// How long a time-to-first-byte sample says something about a model now,
/// for ordering ladders and `max_ttfb`.
pub const RECENT: Duration = Duration::from_secs(60);

/// A model's figures at one moment; `None` until a sample arrives.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelFigures {
    pub ttfb_ewma_ms: Option<f64>,
    pub ttfb_p90_ms: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// EWMA of failed attempts (1) and successes (0).
    pub error_rate: f64,
    /// Attempts counted in the error rate since start.
    pub attempts: u64,
}

#[derive(Debug, Default)]
struct ModelLatency {
    ttfb_ewma_ms: Option<f64>,
    /// (milliseconds, when the sample was taken)
    ring: VecDeque<(f64, Instant)>,
    tokens_per_s: Option<f64>,
    error_rate: f64,
    attempts: u64,
}

#[derive(Debug, Default)]
pub struct Latency {
    models: Mutex<HashMap<String, ModelLatency>>,
}

fn ewma(old: Option<f64>, sample: f64) -> f64 {
    match old {
        None => sample,
        Some(o) => o + ALPHA * (sample - o),
    }
}

impl Latency {
    pub fn new() -> Self {
        Self::default()
    }

    /// Time from sending an attempt to its response head (unary) or its
    /// first event (streams), measured at `at`.
    pub fn record_first_byte(&self, model: &str, took: Duration, at: Instant) {
        let ms = took.as_secs_f64() * 1000.0;
        let mut models = lock(&self.models);
        let m = models.entry(model.to_string()).or_default();
        m.ttfb_ewma_ms = Some(ewma(m.ttfb_ewma_ms, ms));
        if m.ring.len() >= RING {
            m.ring.pop_front();
        }
        m.ring.push_back((ms, at));
    }

    /// The p90 of `model`'s samples taken within [`RECENT`] before `now`;
    /// `None` when there is none.
    pub fn recent_p90_ms(&self, model: &str, now: Instant) -> Option<f64> {
        let models = lock(&self.models);
        let recent = models.get(model)?.ring.iter().filter(|(_, at)| now.saturating_duration_since(*at) <= RECENT);
        p90(recent.map(|(ms, _)| *ms))
    }

    /// `tokens` completion tokens arrived over `body` (first byte to end).
    /// Bodies too short to time are ignored.
    pub fn record_throughput(&self, model: &str, tokens: u64, body: Duration) {
        let secs = body.as_secs_f64();
        if tokens == 0 || secs < 0.001 {
            return;
        }
        let mut models = lock(&self.models);
        let m = models.entry(model.to_string()).or_default();
        m.tokens_per_s = Some(ewma(m.tokens_per_s, tokens as f64 / secs));
    }

    /// A failed attempt; only failures that count against the model's
    /// health (not the request's own faults) move the error rate.
    pub fn record_failure(&self, model: &str, kind: FailureKind) {
        if kind.counts_against_health() {
            self.record_attempt(model, false);
        }
    }

    pub fn record_success(&self, model: &str) {
        self.record_attempt(model, true);
    }

    fn record_attempt(&self, model: &str, ok: bool) {
        let mut models = lock(&self.models);
        let m = models.entry(model.to_string()).or_default();
        let sample = if ok { 0.0 } else { 1.0 };
        m.error_rate = if m.attempts == 0 { sample } else { ewma(Some(m.error_rate), sample) };
        m.attempts += 1;
    }

    pub fn figures(&self, model: &str) -> ModelFigures {
        lock(&self.models).get(model).map(figures).unwrap_or_default()
    }

    /// Every model seen so far, by name.
    pub fn all(&self) -> BTreeMap<String, ModelFigures> {
        lock(&self.models).iter().map(|(name, m)| (name.clone(), figures(m))).collect()
    }
}

fn figures(m: &ModelLatency) -> ModelFigures {
    ModelFigures {
        ttfb_ewma_ms: m.ttfb_ewma_ms,
        ttfb_p90_ms: p90(m.ring.iter().map(|(ms, _)| *ms)),
        tokens_per_s: m.tokens_per_s,
        error_rate: m.error_rate,
        attempts: m.attempts,
    }
}

/// The nearest-rank 90th percentile.
fn p90(samples: impl Iterator<Item = f64>) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.collect();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() * 9).div_ceil(10);
    sorted.get(rank.checked_sub(1)?).copied()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update leaves the map consistent: a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ttfb_ewma_starts_at_the_first_sample_and_moves_by_alpha() {
        let l = Latency::new();
        assert_eq!(l.figures("a").ttfb_ewma_ms, None);
        l.record_first_byte("a", ms(100), Instant::now());
        assert_eq!(l.figures("a").ttfb_ewma_ms, Some(100.0));
        l.record_first_byte("a", ms(200), Instant::now());
        let e = l.figures("a").ttfb_ewma_ms.unwrap_or_default();
        assert!((e - 120.0).abs() < 1e-9, "{e}");
        assert_eq!(l.figures("b"), ModelFigures::default());
    }

    #[test]
    fn p90_covers_only_the_last_samples() {
        let l = Latency::new();
        for i in 1..=10 {
            l.record_first_byte("a", ms(i * 10), Instant::now());
        }
        assert_eq!(l.figures("a").ttfb_p90_ms, Some(90.0));
        // Old slow samples fall out of the ring.
        for _ in 0..10 {
            l.record_first_byte("b", ms(5000), Instant::now());
        }
        for _ in 0..RING {
            l.record_first_byte("b", ms(20), Instant::now());
        }
        assert_eq!(l.figures("b").ttfb_p90_ms, Some(20.0));
        l.record_first_byte("c", ms(7), Instant::now());
        assert_eq!(l.figures("c").ttfb_p90_ms, Some(7.0));
    }

    #[test]
    fn recent_p90_ignores_samples_older_than_the_window() {
        let l = Latency::new();
        let t0 = Instant::now();
        for _ in 0..10 {
            l.record_first_byte("a", ms(900), t0);
        }
        l.record_first_byte("a", ms(50), t0 + Duration::from_secs(30));
        assert_eq!(l.recent_p90_ms("a", t0 + Duration::from_secs(30)), Some(900.0));
        assert_eq!(l.recent_p90_ms("a", t0 + RECENT + Duration::from_secs(1)), Some(50.0));
        assert_eq!(l.recent_p90_ms("a", t0 + Duration::from_secs(200)), None);
        assert_eq!(l.recent_p90_ms("b", t0), None);
        // The displayed figures keep the whole ring.
        assert_eq!(l.figures("a").ttfb_p90_ms, Some(900.0));
    }

    #[test]
    fn error_rate_is_an_ewma_over_attempts() {
        let l = Latency::new();
        l.record_failure("a", FailureKind::Status(503));
        assert_eq!(l.figures("a").error_rate, 1.0);
        l.record_success("a");
        assert!((l.figures("a").error_rate - 0.8).abs() < 1e-9);
        for _ in 0..50 {
            l.record_success("a");
        }
        assert!(l.figures("a").error_rate < 0.01);
        assert_eq!(l.figures("a").attempts, 52);
    }

    #[test]
    fn error_rate_ignores_client_faults() {
        let l = Latency::new();
        l.record_success("a");
        for status in [400, 404, 413, 422] {
            l.record_failure("a", FailureKind::Status(status));
        }
        assert_eq!(l.figures("a").error_rate, 0.0);
        assert_eq!(l.figures("a").attempts, 1);
        l.record_failure("a", FailureKind::FirstByteTimeout);
        assert!((l.figures("a").error_rate - ALPHA).abs() < 1e-9);
    }

    #[test]
    fn throughput_ignores_empty_and_untimed_bodies() {
        let l = Latency::new();
        l.record_throughput("a", 0, ms(100));
        l.record_throughput("a", 10, Duration::ZERO);
        assert_eq!(l.figures("a").tokens_per_s, None);
        l.record_throughput("a", 50, ms(500));
        assert_eq!(l.figures("a").tokens_per_s, Some(100.0));
        assert_eq!(l.all().len(), 1);
    }
}
