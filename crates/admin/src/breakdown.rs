//! Stats over time per model and per namespace, for the dashboard: the
//! gateway's in-memory tallies (`deja_gateway::lookups`: hits, upstream
//! answers, dollars saved and spent, by namespace and by the model that
//! answered) sampled with the totals, into rings of their own, and
//! `GET /admin/history/by-model` and `/admin/history/by-namespace`.
//!
//! Memory is bounded: the first [`TRACKED`] models and the first [`TRACKED`]
//! namespaces seen keep their own series, every later one is folded into
//! [`OTHER`]; the fine ring holds an hour of 5 s samples and the coarse one a
//! week of 5 minute samples, about 3 MB when full. Nothing is persisted.

use crate::window::Window;
use deja_gateway::lookups::NamespaceCounts;
use deja_store::nano_to_usd;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

/// Models (and namespaces) with a series of their own.
pub const TRACKED: usize = 10;
/// The series the rest are folded into.
pub const OTHER: &str = "(other)";
/// Slots per dimension: the tracked ones, then [`OTHER`].
const SLOTS: usize = TRACKED + 1;
const FINE_KEEP: usize = 720;
const COARSE_EVERY_MS: u64 = 300_000;
const COARSE_KEEP: usize = 7 * 24 * 12;
/// Points per series in an answer, whatever the window.
pub const BUCKETS: usize = 60;

/// Cumulative counts of one model or namespace since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub exact: u64,
    pub semantic: u64,
    /// Answers from upstream (misses, refreshes, bypasses).
    pub upstream: u64,
    pub misses: u64,
    pub nano_saved: u64,
    pub nano_spent: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.exact = self.exact.saturating_add(o.exact);
        self.semantic = self.semantic.saturating_add(o.semantic);
        self.upstream = self.upstream.saturating_add(o.upstream);
        self.misses = self.misses.saturating_add(o.misses);
        self.nano_saved = self.nano_saved.saturating_add(o.nano_saved);
        self.nano_spent = self.nano_spent.saturating_add(o.nano_spent);
    }

    /// What happened between `earlier` and `self`.
    fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            exact: self.exact.saturating_sub(earlier.exact),
            semantic: self.semantic.saturating_sub(earlier.semantic),
            upstream: self.upstream.saturating_sub(earlier.upstream),
            misses: self.misses.saturating_sub(earlier.misses),
            nano_saved: self.nano_saved.saturating_sub(earlier.nano_saved),
            nano_spent: self.nano_spent.saturating_sub(earlier.nano_spent),
        }
    }

    /// Requests answered: hits and upstream answers (errors have no model).
    pub fn requests(&self) -> u64 {
        self.exact.saturating_add(self.semantic).saturating_add(self.upstream)
    }

    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

impl From<&NamespaceCounts> for Counts {
    fn from(c: &NamespaceCounts) -> Self {
        Counts {
            exact: c.exact,
            semantic: c.semantic,
            upstream: c.upstream,
            misses: c.misses,
            nano_saved: c.nano_usd_saved,
            nano_spent: c.nano_usd_spent,
        }
    }
}

/// Which of models or namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Model,
    Namespace,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Namespace => "namespace",
        }
    }
}

/// Who owns each slot of one dimension: names in the order first seen, up
/// to [`TRACKED`]. A name never loses its slot, so each slot's counts only
/// grow and the [`OTHER`] slot's too.
#[derive(Debug, Default)]
struct Slots {
    names: Vec<String>,
}

impl Slots {
    /// `tallies` folded into slots, giving new names a slot while there is
    /// room (never the gateway's own catch-all).
    fn fold(&mut self, tallies: &BTreeMap<String, NamespaceCounts>) -> [Counts; SLOTS] {
        let mut out = [Counts::default(); SLOTS];
        for (name, c) in tallies {
            let slot = match self.names.iter().position(|n| n == name) {
                Some(i) => i,
                None if self.names.len() < TRACKED && !is_catch_all(name) => {
                    self.names.push(name.clone());
                    self.names.len() - 1
                }
                None => TRACKED,
            };
            if let Some(counts) = out.get_mut(slot) {
                counts.add(&Counts::from(c));
            }
        }
        out
    }

    fn name(&self, slot: usize) -> &str {
        self.names.get(slot).map_or(OTHER, String::as_str)
    }
}

/// Both dimensions at one moment, cumulative.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedSample {
    pub at_ms: u64,
    models: [Counts; SLOTS],
    namespaces: [Counts; SLOTS],
}

impl KeyedSample {
    fn of(&self, d: Dimension) -> &[Counts; SLOTS] {
        match d {
            Dimension::Model => &self.models,
            Dimension::Namespace => &self.namespaces,
        }
    }
}

/// The per-model and per-namespace rings of one running server.
#[derive(Debug, Default)]
pub struct Breakdown {
    models: Slots,
    namespaces: Slots,
    fine: VecDeque<KeyedSample>,
    coarse: VecDeque<KeyedSample>,
}

impl Breakdown {
    /// The gateway's tallies (by namespace, by model) at `at_ms`, in slots.
    pub fn sample(
        &mut self,
        at_ms: u64,
        (namespaces, models): &(BTreeMap<String, NamespaceCounts>, BTreeMap<String, NamespaceCounts>),
    ) -> KeyedSample {
        KeyedSample { at_ms, models: self.models.fold(models), namespaces: self.namespaces.fold(namespaces) }
    }

    pub fn record(&mut self, sample: KeyedSample) {
        if self.coarse.back().is_none_or(|last| sample.at_ms >= last.at_ms + COARSE_EVERY_MS) {
            self.coarse.push_back(sample.clone());
            if self.coarse.len() > COARSE_KEEP {
                self.coarse.pop_front();
            }
        }
        self.fine.push_back(sample);
        if self.fine.len() > FINE_KEEP {
            self.fine.pop_front();
        }
    }

    /// What `GET /admin/history/by-model|by-namespace` answers: for every
    /// model (namespace) active in the window, its totals and [`BUCKETS`]
    /// points (the counts in each equal slice of the window), busiest first
    /// and [`OTHER`] last.
    pub fn report(&self, d: Dimension, window: Window, now: KeyedSample) -> Value {
        let since = now.at_ms.saturating_sub(window.millis());
        let fine_from = self.fine.front().map_or(u64::MAX, |s| s.at_ms);
        let mut samples: Vec<&KeyedSample> =
            self.coarse.iter().filter(|s| s.at_ms >= since && s.at_ms < fine_from).collect();
        samples.extend(self.fine.iter().filter(|s| s.at_ms >= since && s.at_ms < now.at_ms));
        samples.push(&now);
        let from = samples.first().map_or(now.at_ms, |s| s.at_ms);
        let bucket_ms = now.at_ms.saturating_sub(from).div_ceil(BUCKETS as u64).max(1);

        let mut buckets = vec![[Counts::default(); SLOTS]; BUCKETS];
        for pair in samples.windows(2) {
            let [a, b] = pair else { continue };
            // An interval counts in the slice its end falls in.
            let i = (b.at_ms.saturating_sub(from).saturating_sub(1) / bucket_ms) as usize;
            let Some(bucket) = buckets.get_mut(i.min(BUCKETS - 1)) else { continue };
            for ((slot, later), earlier) in bucket.iter_mut().zip(b.of(d)).zip(a.of(d)) {
                slot.add(&later.since(earlier));
            }
        }
        let first = samples.first().map_or(&now, |s| *s);
        let slots = match d {
            Dimension::Model => &self.models,
            Dimension::Namespace => &self.namespaces,
        };
        let mut series: Vec<(Counts, Value)> = (0..SLOTS)
            .filter_map(|slot| {
                let total = now.of(d).get(slot)?.since(first.of(d).get(slot)?);
                if total.is_zero() {
                    return None;
                }
                let column = |f: &dyn Fn(&Counts) -> Value| -> Vec<Value> {
                    buckets.iter().map(|b| b.get(slot).map_or(json!(0), f)).collect()
                };
                let v = json!({
                    "key": slots.name(slot),
                    "other": slot == TRACKED,
                    "totals": figures(&total),
                    "requests": column(&|c| json!(c.requests())),
                    "exact": column(&|c| json!(c.exact)),
                    "semantic": column(&|c| json!(c.semantic)),
                    "misses": column(&|c| json!(c.misses)),
                    "usd_saved": column(&|c| json!(nano_to_usd(c.nano_saved))),
                    "usd_spent": column(&|c| json!(nano_to_usd(c.nano_spent))),
                });
                Some((total, v))
            })
            .collect();
        // Busiest first, then by name; the rest last.
        series.sort_by_key(|(total, v)| {
            (v["other"] == json!(true), std::cmp::Reverse(total.requests()), v["key"].as_str().map(str::to_string))
        });
        let t_ms: Vec<u64> = (1..=BUCKETS as u64).map(|i| from.saturating_add(i * bucket_ms).min(now.at_ms)).collect();
        json!({
            "window": window.name(),
            "by": d.name(),
            "from_ms": from,
            "to_ms": now.at_ms,
            "bucket_ms": bucket_ms,
            "t_ms": t_ms,
            "tracked": TRACKED,
            "series": series.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        })
    }
}

/// Where the gateway counts names past its own cap.
fn is_catch_all(name: &str) -> bool {
    name == deja_gateway::lookups::OTHER_NAMESPACES || name == deja_gateway::lookups::OTHER_MODELS
}

fn figures(c: &Counts) -> Value {
    json!({
        "requests": c.requests(),
        "exact": c.exact,
        "semantic": c.semantic,
        "misses": c.misses,
        "usd_saved": nano_to_usd(c.nano_saved),
        "usd_spent": nano_to_usd(c.nano_spent),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tallies = (BTreeMap<String, NamespaceCounts>, BTreeMap<String, NamespaceCounts>);

    fn tallies(models: &[(&str, u64, u64)]) -> Tallies {
        let mut by_model = BTreeMap::new();
        let mut by_ns = BTreeMap::new();
        for (name, exact, upstream) in models {
            let c = NamespaceCounts {
                exact: *exact,
                upstream: *upstream,
                misses: *upstream,
                nano_usd_spent: upstream * 1_000,
                ..Default::default()
            };
            by_model.insert(name.to_string(), c);
            by_ns.insert(format!("ns-{name}"), c);
        }
        (by_ns, by_model)
    }

    fn as_refs(v: &[(String, u64, u64)]) -> Vec<(&str, u64, u64)> {
        v.iter().map(|(n, e, u)| (n.as_str(), *e, *u)).collect()
    }

    fn series(r: &Value) -> Vec<Value> {
        r["series"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn each_model_gets_its_own_series_of_what_happened_in_the_window() {
        let mut b = Breakdown::default();
        let s = b.sample(0, &tallies(&[("cheap", 1, 1)]));
        b.record(s);
        let s = b.sample(5_000, &tallies(&[("cheap", 3, 1), ("mid", 0, 2)]));
        b.record(s);
        let now = b.sample(10_000, &tallies(&[("cheap", 3, 2), ("mid", 4, 2)]));
        let r = b.report(Dimension::Model, Window::Hour, now.clone());
        let s = series(&r);
        assert_eq!(s.len(), 2, "{r}");
        // Busiest first: mid answered 6 in the window, cheap 3 (its first 2 came before).
        assert_eq!((s[0]["key"].as_str(), s[0]["totals"]["requests"].as_u64()), (Some("mid"), Some(6)));
        assert_eq!((s[1]["key"].as_str(), s[1]["totals"]["requests"].as_u64()), (Some("cheap"), Some(3)));
        assert_eq!(s[1]["totals"]["exact"], 2);
        assert_eq!(s[0]["totals"]["usd_spent"].as_f64(), Some(nano_to_usd(2_000)));
        for one in &s {
            let points = one["requests"].as_array().cloned().unwrap_or_default();
            assert_eq!(points.len(), BUCKETS);
            let sum = points.iter().filter_map(Value::as_u64).sum::<u64>();
            assert_eq!(Some(sum), one["totals"]["requests"].as_u64());
        }
        assert_eq!(r["t_ms"].as_array().map(Vec::len), Some(BUCKETS));
        let ns = b.report(Dimension::Namespace, Window::Hour, now);
        let keys: Vec<_> = series(&ns).iter().filter_map(|s| s["key"].as_str().map(str::to_string)).collect();
        assert_eq!(keys, ["ns-mid", "ns-cheap"]);
    }

    #[test]
    fn names_past_the_cap_share_the_other_series_and_memory_stays_bounded() {
        let mut b = Breakdown::default();
        let many: Vec<(String, u64, u64)> = (0..TRACKED + 5).map(|i| (format!("m{i:02}"), 0, 0)).collect();
        let s = b.sample(0, &tallies(&as_refs(&many)));
        b.record(s);
        let busy: Vec<(String, u64, u64)> = many.iter().map(|(n, _, _)| (n.clone(), 1, 0)).collect();
        let now = b.sample(5_000, &tallies(&as_refs(&busy)));
        let r = b.report(Dimension::Model, Window::Hour, now);
        let s = series(&r);
        assert_eq!(s.len(), TRACKED + 1);
        let other = s.last().expect("the other series, last");
        assert_eq!(other["key"], OTHER);
        assert_eq!(other["totals"]["requests"], 5);
        assert_eq!(other["other"], true);
        assert_eq!(b.models.names.len(), TRACKED);

        for i in 0..(FINE_KEEP as u64 + 10) {
            let s = b.sample(10_000 + i * 5_000, &tallies(&[]));
            b.record(s);
        }
        assert_eq!(b.fine.len(), FINE_KEEP);
        assert!(b.coarse.len() <= COARSE_KEEP);
    }

    #[test]
    fn the_gateways_catch_all_never_takes_a_slot() {
        let mut b = Breakdown::default();
        let mut t = tallies(&[("cheap", 1, 0)]);
        t.0.insert(deja_gateway::lookups::OTHER_NAMESPACES.into(), NamespaceCounts { exact: 7, ..Default::default() });
        let s = b.sample(0, &Default::default());
        b.record(s);
        let now = b.sample(1_000, &t);
        let r = b.report(Dimension::Namespace, Window::Day, now);
        let keys: Vec<_> = series(&r).iter().filter_map(|s| s["key"].as_str().map(str::to_string)).collect();
        assert_eq!(keys, ["ns-cheap", OTHER]);
    }
}
