//! Per-model health: consecutive failures put a model in cooldown, during
//! which ladders skip it. Time is passed in, never read here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSettings {
    /// Consecutive failures that start a cooldown.
    pub failures_to_cool: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Default, Clone, Copy)]
struct ModelHealth {
    consecutive_failures: u32,
    cooling_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Health {
    settings: Mutex<HealthSettings>,
    models: Mutex<HashMap<String, ModelHealth>>,
}

impl Health {
    pub fn new(settings: HealthSettings) -> Self {
        Self { settings: Mutex::new(settings), models: Mutex::new(HashMap::new()) }
    }

    pub fn set_settings(&self, settings: HealthSettings) {
        *lock(&self.settings) = settings;
    }

    pub fn is_cooling(&self, model: &str, now: Instant) -> bool {
        lock(&self.models).get(model).and_then(|h| h.cooling_until).is_some_and(|t| t > now)
    }

    pub fn record_success(&self, model: &str) {
        if let Some(h) = lock(&self.models).get_mut(model) {
            *h = ModelHealth::default();
        }
    }

    /// Counts a failure; `retry_after` (already capped) cools the model at
    /// least that long, as the provider asked.
    pub fn record_failure(&self, model: &str, now: Instant, retry_after: Option<Duration>) {
        let settings = *lock(&self.settings);
        let mut models = lock(&self.models);
        let h = models.entry(model.to_string()).or_default();
        h.consecutive_failures += 1;
        let mut until = h.cooling_until.filter(|t| *t > now);
        if h.consecutive_failures >= settings.failures_to_cool {
            until = until.max(Some(now + settings.cooldown));
        }
        if let Some(ra) = retry_after {
            until = until.max(Some(now + ra));
        }
        h.cooling_until = until;
    }

    /// Cools `model` until `until` (or longer, if it already is) without
    /// counting a failure here: a cooldown learned from another replica.
    pub fn cool(&self, model: &str, until: Instant) {
        let mut models = lock(&self.models);
        let h = models.entry(model.to_string()).or_default();
        h.cooling_until = h.cooling_until.max(Some(until));
    }

    /// Models cooling at `now`, with the time left, for metrics and stats.
    pub fn cooling(&self, now: Instant) -> Vec<(String, Duration)> {
        lock(&self.models)
            .iter()
            .filter_map(|(m, h)| h.cooling_until.filter(|t| *t > now).map(|t| (m.clone(), t - now)))
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cools_after_threshold_and_recovers() {
        let h = Health::new(HealthSettings { failures_to_cool: 2, cooldown: Duration::from_secs(10) });
        let t0 = Instant::now();
        h.record_failure("a", t0, None);
        assert!(!h.is_cooling("a", t0));
        h.record_failure("a", t0, None);
        assert!(h.is_cooling("a", t0 + Duration::from_secs(9)));
        assert!(!h.is_cooling("a", t0 + Duration::from_secs(11)));
        h.record_success("a");
        h.record_failure("a", t0, None);
        assert!(!h.is_cooling("a", t0));
    }

    #[test]
    fn a_learned_cooldown_counts_no_failure() {
        let h = Health::new(HealthSettings { failures_to_cool: 2, cooldown: Duration::from_secs(10) });
        let t0 = Instant::now();
        h.cool("a", t0 + Duration::from_secs(5));
        assert!(h.is_cooling("a", t0 + Duration::from_secs(4)));
        assert!(!h.is_cooling("a", t0 + Duration::from_secs(6)));
        // A shorter one never cuts a longer one short.
        h.cool("a", t0 + Duration::from_secs(1));
        assert!(h.is_cooling("a", t0 + Duration::from_secs(4)));
        h.record_failure("a", t0 + Duration::from_secs(6), None);
        assert!(!h.is_cooling("a", t0 + Duration::from_secs(6)));
    }

    #[test]
    fn retry_after_cools_even_below_threshold() {
        let h = Health::new(HealthSettings { failures_to_cool: 5, cooldown: Duration::from_secs(10) });
        let t0 = Instant::now();
        h.record_failure("a", t0, Some(Duration::from_secs(3)));
        assert!(h.is_cooling("a", t0 + Duration::from_secs(2)));
        assert!(!h.is_cooling("a", t0 + Duration::from_secs(4)));
    }
}
