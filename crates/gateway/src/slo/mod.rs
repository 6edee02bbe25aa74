//! The live quality SLO of the semantic cache (`[cache.semantic.slo]`).
//!
//! A sampled semantic hit is served from the cache as usual and also asked
//! upstream in the background ([`shadow`]). The fresh answer is compared with
//! the served one; a disagreement is a false hit. Per namespace this module
//! keeps the samples, the false hits, a 95% Wilson score interval of the
//! false-hit rate and the recent disagreements, and raises the namespace's
//! serve threshold by `step` (up to `max_threshold`) when the interval's
//! lower bound exceeds `max_false_hit_rate` after `min_samples` samples.
//! Everything is in memory and cleared by a config reload.

pub mod shadow;

pub use shadow::{Sampler, Served};

use crate::config::SloSettings;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::metrics::SloMetrics;

/// The normal quantile for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;
/// Disagreements kept per namespace, the oldest forgotten first.
pub const DISAGREEMENTS_KEPT: usize = 50;
/// Shadow calls in flight at once; a hit sampled beyond it is not checked.
const MAX_IN_FLIGHT: usize = 16;
/// Namespaces tracked at once (namespaces are client-chosen): past it the
/// least recently checked one without a threshold raise is forgotten, so a
/// raise is kept as long as any namespace without one can go instead.
pub const NAMESPACES_TRACKED: usize = 1000;

/// A false-hit rate and its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The Wilson score interval (95%) of `false_hits` out of `samples`; with
/// no samples, the estimate is 0 and the interval [0, 1].
pub fn wilson(false_hits: u64, samples: u64) -> Interval {
    if samples == 0 {
        return Interval { estimate: 0.0, lower: 0.0, upper: 1.0 };
    }
    let n = samples as f64;
    let p = false_hits.min(samples) as f64 / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = p + z2 / (2.0 * n);
    let margin = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval {
        estimate: p,
        lower: ((centre - margin) / denominator).clamp(0.0, 1.0),
        upper: ((centre + margin) / denominator).clamp(0.0, 1.0),
    }
}

/// The adjustment rule: the namespace's new threshold raise, or `None` to
/// keep it. A raise needs `min_samples` samples since the last one and an
/// interval whose lower bound exceeds `max_false_hit_rate`; it never takes
/// `base + raise` past `max_threshold`.
pub fn next_raise(raise: f32, base: f32, interval: Interval, samples: u64, s: &SloSettings) -> Option<f32> {
    if samples < s.min_samples || interval.lower <= s.max_false_hit_rate {
        return None;
    }
    let headroom = (s.max_threshold - base).max(0.0);
    let next = (raise + s.step).min(headroom);
    (next > raise + 1e-6).then_some(next)
}

/// One shadow call's verdict on a served hit.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub question: String,
    pub cached_answer: String,
    pub fresh_answer: String,
    /// Cosine of the two answers' embeddings, when the embedder answered.
    pub similarity: Option<f32>,
    /// The verifier's word (`true`: same), when one is configured and answered.
    pub verifier_agreed: Option<bool>,
    pub false_hit: bool,
    pub at_ms: u64,
}

#[derive(Default)]
struct Namespace {
    /// Since the last adjustment (or reload): what the estimate describes.
    samples: u64,
    false_hits: u64,
    samples_total: u64,
    false_hits_total: u64,
    raise: f32,
    raised_at_ms: Option<u64>,
    disagreements: VecDeque<Check>,
    /// When it was last checked, in the tracker's own order.
    last_used: u64,
}

/// The SLO's in-memory state, shared by the request path and the shadow tasks.
pub struct Tracker {
    /// Bumped by every reset: a shadow call started before it records nothing.
    generation: AtomicU64,
    namespaces: Mutex<HashMap<String, Namespace>>,
    shadow_calls: AtomicU64,
    shadow_nano_usd: AtomicU64,
    in_flight: AtomicUsize,
    rng: AtomicU64,
    /// Orders checks for the least-recently-used bound.
    clock: AtomicU64,
    /// Namespaces forgotten to keep within [`NAMESPACES_TRACKED`].
    forgotten: AtomicU64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    pub fn new() -> Self {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x5EED, |d| d.as_nanos() as u64);
        Self {
            generation: AtomicU64::new(0),
            namespaces: Mutex::new(HashMap::new()),
            shadow_calls: AtomicU64::new(0),
            shadow_nano_usd: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            rng: AtomicU64::new(seed),
            clock: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Namespace>> {
        self.namespaces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every namespace's samples and threshold raise (a config reload).
    pub fn reset(&self, metrics: &SloMetrics) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.lock().clear();
        for gauge in [&metrics.estimate, &metrics.lower, &metrics.upper, &metrics.threshold_raise] {
            gauge.clear();
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The threshold `namespace`'s lookups use: `base` plus its raise,
    /// never past `max_threshold` (nor below `base`).
    pub fn threshold(&self, namespace: &str, base: f32, settings: &SloSettings) -> f32 {
        let raise = self.lock().get(namespace).map_or(0.0, |n| n.raise);
        if raise <= 0.0 {
            return base;
        }
        (base + raise).min(settings.max_threshold).max(base)
    }

    /// True for a share `rate` of calls (splitmix64 over a counter).
    pub fn should_sample(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        if rate >= 1.0 {
            return true;
        }
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    /// Takes a shadow-call slot, if one is free.
    fn begin(&self) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_IN_FLIGHT).then_some(n + 1))
            .is_ok()
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn count_shadow(&self, metrics: &SloMetrics, namespace: &str, usd: f64) {
        self.shadow_calls.fetch_add(1, Ordering::Relaxed);
        self.shadow_nano_usd.fetch_add(deja_store::usd_to_nano(usd), Ordering::Relaxed);
        let labels = metrics.namespaces.label(namespace);
        metrics.shadow_calls.get_or_create(&labels).inc();
        metrics.shadow_usd.get_or_create(&labels).inc_by(usd.max(0.0));
    }

    /// Records one check made under `generation`, adjusting the namespace's
    /// threshold when the rule says so. Returns the new raise, if any.
    pub fn record(
        &self,
        generation: u64,
        namespace: &str,
        check: Check,
        base: f32,
        settings: &SloSettings,
        metrics: &SloMetrics,
    ) -> Option<f32> {
        if generation != self.generation() {
            return None;
        }
        let labels = metrics.namespaces.label(namespace);
        metrics.samples.get_or_create(&labels).inc();
        if check.false_hit {
            metrics.false_hits.get_or_create(&labels).inc();
        }
        let mut map = self.lock();
        if !map.contains_key(namespace) && map.len() >= NAMESPACES_TRACKED {
            self.forget_one(&mut map, metrics);
        }
        let ns = map.entry(namespace.to_string()).or_default();
        ns.last_used = self.clock.fetch_add(1, Ordering::Relaxed);
        ns.samples += 1;
        ns.samples_total += 1;
        if check.false_hit {
            ns.false_hits += 1;
            ns.false_hits_total += 1;
            if ns.disagreements.len() >= DISAGREEMENTS_KEPT {
                ns.disagreements.pop_front();
            }
            ns.disagreements.push_back(check);
        }
        let interval = wilson(ns.false_hits, ns.samples);
        let raised = next_raise(ns.raise, base, interval, ns.samples, settings);
        if let Some(raise) = raised {
            ns.raise = raise;
            ns.raised_at_ms = Some(deja_cache::now_ms());
            // The estimate now describes the new threshold: start counting again.
            ns.samples = 0;
            ns.false_hits = 0;
        }
        let shown = wilson(ns.false_hits, ns.samples);
        metrics.estimate.get_or_create(&labels).set(shown.estimate);
        metrics.lower.get_or_create(&labels).set(shown.lower);
        metrics.upper.get_or_create(&labels).set(shown.upper);
        metrics.threshold_raise.get_or_create(&labels).set(f64::from(ns.raise));
        raised
    }

    /// Forgets the least recently checked namespace, one without a raise if
    /// there is one, and its gauges.
    fn forget_one(&self, map: &mut HashMap<String, Namespace>, metrics: &SloMetrics) {
        let oldest = |raised: bool| {
            map.iter()
                .filter(|(_, n)| (n.raise > 0.0) == raised)
                .min_by_key(|(_, n)| n.last_used)
                .map(|(k, _)| k.clone())
        };
        let Some(name) = oldest(false).or_else(|| oldest(true)) else { return };
        map.remove(&name);
        // Folded namespaces share one series: it stays.
        let labels = metrics.namespaces.label(&name);
        if labels.namespace == crate::metrics::OTHER_NAMESPACES {
            self.forgotten.fetch_add(1, Ordering::Relaxed);
            return;
        }
        for gauge in [&metrics.estimate, &metrics.lower, &metrics.upper, &metrics.threshold_raise] {
            gauge.remove(&labels);
        }
        self.forgotten.fetch_add(1, Ordering::Relaxed);
    }

    /// The SLO as `/admin/stats` (`slo`) and `/admin/slo` (with the
    /// recorded disagreements) report it.
    pub fn report(&self, settings: &SloSettings, base: f32, with_disagreements: bool) -> Value {
        let map = self.lock();
        let mut by_namespace = serde_json::Map::new();
        for (name, ns) in map.iter() {
            let interval = wilson(ns.false_hits, ns.samples);
            let mut v = json!({
                "samples": ns.samples,
                "false_hits": ns.false_hits,
                "samples_total": ns.samples_total,
                "false_hits_total": ns.false_hits_total,
                "estimate": interval.estimate,
                "lower": interval.lower,
                "upper": interval.upper,
                "confidence": 0.95,
                "threshold_raise": ns.raise,
                "threshold": (base + ns.raise).min(settings.max_threshold.max(base)),
                "raised_at_ms": ns.raised_at_ms,
            });
            if let (true, Some(fields)) = (with_disagreements, v.as_object_mut()) {
                fields.insert("disagreements".into(), json!(ns.disagreements));
            }
            by_namespace.insert(name.clone(), v);
        }
        json!({
            "enabled": settings.enabled(),
            "sample_rate": settings.sample_rate,
            "max_false_hit_rate": settings.max_false_hit_rate,
            "answer_similarity": settings.answer_similarity,
            "max_threshold": settings.max_threshold,
            "step": settings.step,
            "min_samples": settings.min_samples,
            "shadow_calls": self.shadow_calls.load(Ordering::Relaxed),
            "shadow_usd": deja_store::nano_to_usd(self.shadow_nano_usd.load(Ordering::Relaxed)),
            "shadow_in_flight": self.in_flight.load(Ordering::Relaxed),
            "namespaces_tracked": map.len(),
            "namespaces_tracked_max": NAMESPACES_TRACKED,
            "namespaces_forgotten": self.forgotten.load(Ordering::Relaxed),
            "by_namespace": by_namespace,
        })
    }
}

#[cfg(test)]
mod tests;
