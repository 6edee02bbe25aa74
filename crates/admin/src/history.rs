//! Stats over time for the dashboard: a background task samples the store's
//! counters every few seconds into two in-memory rings (fine for the last
//! hour, coarse for the last week), and `GET /admin/history?window=1h|1d|1w`
//! answers the change between consecutive samples. Nothing here is persisted:
//! after a restart the history starts again (the counters themselves do not).
//! The same tick samples the per-model and per-namespace tallies
//! ([`crate::breakdown`]).

use crate::breakdown::{Breakdown, Dimension};
// The breakdown reports over the same windows, so `Window` is in its own
// file that both import; it stays reachable here too.
pub use crate::window::Window;
use deja_gateway::state::AppState;
use deja_store::{nano_to_usd, Counter, StoreError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the sampler runs; the fine ring keeps an hour of these.
pub const FINE_EVERY: Duration = Duration::from_secs(5);
const FINE_KEEP: usize = 720;
/// One coarse sample a minute, a week of them.
const COARSE_EVERY_MS: u64 = 60_000;
const COARSE_KEEP: usize = 7 * 24 * 60;

/// The cumulative counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub at_ms: u64,
    pub requests: u64,
    pub exact: u64,
    pub semantic: u64,
    pub misses: u64,
    pub nano_saved: u64,
    pub nano_spent: u64,
    pub spent_by_model: BTreeMap<String, u64>,
}

impl Sample {
    /// The store's counters now.
    pub fn take(state: &AppState, at_ms: u64) -> Result<Self, StoreError> {
        let s = &state.store;
        Ok(Self {
            at_ms,
            requests: s.counter(Counter::Requests)?,
            exact: s.counter(Counter::ExactHits)?,
            semantic: s.counter(Counter::SemanticHits)?,
            misses: s.counter(Counter::Misses)?,
            nano_saved: s.counter(Counter::NanoUsdSaved)?,
            nano_spent: s.counter(Counter::NanoUsdSpent)?,
            spent_by_model: s.spent_by_model()?,
        })
    }
}

#[derive(Debug, Default)]
struct Rings {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
}

/// The sampled history of one running server.
#[derive(Debug, Default)]
pub struct History {
    rings: Mutex<Rings>,
    by: Mutex<Breakdown>,
}

impl History {
    /// Samples the gateway's per-model and per-namespace tallies.
    pub fn record_breakdown(&self, state: &AppState, at_ms: u64) {
        let tallies = state.lookups.tallies();
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        let sample = by.sample(at_ms, &tallies);
        by.record(sample);
    }

    /// What `GET /admin/history/by-model` (`by-namespace`) answers, up to now.
    pub fn breakdown(&self, state: &AppState, d: Dimension, window: Window, now_ms: u64) -> Value {
        let tallies = state.lookups.tallies();
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        let now = by.sample(now_ms, &tallies);
        by.report(d, window, now)
    }

    pub fn record(&self, sample: Sample) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let coarse_due = rings.coarse.back().is_none_or(|last| sample.at_ms >= last.at_ms + COARSE_EVERY_MS);
        if coarse_due {
            rings.coarse.push_back(sample.clone());
            if rings.coarse.len() > COARSE_KEEP {
                rings.coarse.pop_front();
            }
        }
        rings.fine.push_back(sample);
        if rings.fine.len() > FINE_KEEP {
            rings.fine.pop_front();
        }
    }

    /// The samples inside `window` ending at `now` (coarse ones where the fine
    /// ring does not reach back), oldest first, with `now` appended.
    fn samples(&self, window: Window, now: Sample) -> Vec<Sample> {
        let since = now.at_ms.saturating_sub(window.millis());
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let fine_from = rings.fine.front().map_or(u64::MAX, |s| s.at_ms);
        let mut out: Vec<Sample> =
            rings.coarse.iter().filter(|s| s.at_ms >= since && s.at_ms < fine_from).cloned().collect();
        out.extend(rings.fine.iter().filter(|s| s.at_ms >= since && s.at_ms < now.at_ms).cloned());
        out.push(now);
        out
    }

    /// What `GET /admin/history` answers: one point per interval between
    /// samples (the counts in it), the window's totals and spend per model.
    pub fn report(&self, window: Window, now: Sample) -> Value {
        let samples = self.samples(window, now);
        let points: Vec<Value> = samples
            .windows(2)
            .filter_map(|pair| match pair {
                [a, b] => Some(delta(a, b)),
                _ => None,
            })
            .collect();
        let (first, last) = (samples.first(), samples.last());
        let totals = match (first, last) {
            (Some(a), Some(b)) => delta(a, b),
            _ => json!({}),
        };
        let mut by_model = Map::new();
        if let (Some(a), Some(b)) = (first, last) {
            for (model, spent) in &b.spent_by_model {
                let before = a.spent_by_model.get(model).copied().unwrap_or(0);
                by_model.insert(model.clone(), json!(nano_to_usd(spent.saturating_sub(before))));
            }
        }
        json!({
            "window": window.name(),
            "sample_every_s": FINE_EVERY.as_secs(),
            "from_ms": first.map_or(0, |s| s.at_ms),
            "to_ms": last.map_or(0, |s| s.at_ms),
            "points": points,
            "totals": totals,
            "usd_spent_by_model": by_model,
        })
    }
}

fn delta(a: &Sample, b: &Sample) -> Value {
    let d = |x: u64, y: u64| y.saturating_sub(x);
    json!({
        "from_ms": a.at_ms,
        "t_ms": b.at_ms,
        "requests": d(a.requests, b.requests),
        "exact": d(a.exact, b.exact),
        "semantic": d(a.semantic, b.semantic),
        "misses": d(a.misses, b.misses),
        "usd_saved": nano_to_usd(d(a.nano_saved, b.nano_saved)),
        "usd_spent": nano_to_usd(d(a.nano_spent, b.nano_spent)),
    })
}

/// Starts sampling `state` every [`FINE_EVERY`] until it stops or is dropped.
pub fn spawn(state: &Arc<AppState>) -> Arc<History> {
    let history = Arc::new(History::default());
    let (weak, h): (Weak<AppState>, _) = (Arc::downgrade(state), history.clone());
    tokio::spawn(async move {
        loop {
            // Hold the state only while sampling, so a stopping server is not kept alive.
            {
                let Some(state) = weak.upgrade() else { return };
                if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let now = deja_cache::now_ms();
                match Sample::take(&state, now) {
                    Ok(sample) => h.record(sample),
                    Err(e) => tracing::warn!(error = %e, "could not sample stats for the dashboard"),
                }
                h.record_breakdown(&state, now);
            }
            tokio::time::sleep(FINE_EVERY).await;
        }
    });
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, requests: u64, exact: u64) -> Sample {
        Sample { at_ms: ms, requests, exact, misses: requests - exact, ..Default::default() }
    }

    #[test]
    fn points_are_the_counts_between_samples() {
        let h = History::default();
        h.record(at(1_000, 0, 0));
        h.record(at(6_000, 4, 1));
        let r = h.report(Window::Hour, at(11_000, 10, 5));
        let points = r["points"].as_array().cloned().unwrap_or_default();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0]["requests"], 4);
        assert_eq!(points[1]["exact"], 4);
        assert_eq!(r["totals"]["requests"], 10);
        assert_eq!(r["totals"]["misses"], 5);
    }

    #[test]
    fn the_fine_ring_is_bounded_and_old_samples_fall_out_of_the_window() {
        let h = History::default();
        for i in 0..(FINE_KEEP as u64 + 50) {
            h.record(at(i * 5_000, i, 0));
        }
        let now = at(FINE_KEEP as u64 * 5_000 + 250_000, 0, 0);
        let fine = h.rings.lock().map(|r| r.fine.len()).unwrap_or(0);
        assert_eq!(fine, FINE_KEEP);
        let hour = h.report(Window::Hour, now.clone());
        assert!(hour["points"].as_array().map_or(0, Vec::len) <= FINE_KEEP);
        // The day window reaches back with coarse (minute) samples.
        let day = h.report(Window::Day, now);
        assert!(day["from_ms"].as_u64() < hour["from_ms"].as_u64());
    }

    #[test]
    fn windows_parse() {
        assert_eq!(Window::parse("1h"), Some(Window::Hour));
        assert_eq!(Window::parse("7d"), Some(Window::Week));
        assert_eq!(Window::parse("1y"), None);
    }
}
