//! Recent semantic lookups, kept in memory for the dashboard's threshold
//! explorer: the question, the best candidate and its similarity, the
//! threshold in force and what happened. Also what was answered per
//! namespace and per model since start (hits, upstream answers, dollars
//! saved and spent), which the dashboard samples into its per-model and
//! per-namespace history. Bounded, never persisted, never on sled.

use crate::reply::Outcome;
use deja_api::CacheKey;
use deja_cache::semantic::Lookup;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many recent lookups are kept.
pub const KEEP: usize = 2000;
/// Questions are kept up to this many characters.
const QUESTION_CHARS: usize = 200;
/// Namespaces (and models) counted one by one; later ones are counted together.
const NAMESPACES_COUNTED: usize = 1000;
/// Where namespaces past [`NAMESPACES_COUNTED`] are counted.
pub const OTHER_NAMESPACES: &str = "(other namespaces)";
/// Where models past [`NAMESPACES_COUNTED`] are counted.
pub const OTHER_MODELS: &str = "(other models)";

/// What became of one semantic lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At or above the threshold, through the guards: served.
    Served,
    /// In the grey band and served on the verifier's yes.
    Verified,
    /// The best candidates above the floor were refused by this guard.
    RefusedBy(&'static str),
    /// The best candidate scored below the grey band (or the threshold, with no verifier).
    BelowThreshold,
    /// Grey-band candidates the verifier rejected (or could not judge).
    GreyRejected,
    /// No entry with this context to compare with.
    NoCandidate,
    /// The embedding model cannot read the question (why: `too_long`,
    /// `unknown_tokens`): only its exact key can be served.
    CannotMatch(&'static str),
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::Verified => "verified",
            Self::RefusedBy(_) => "refused_by_guard",
            Self::BelowThreshold => "below_threshold",
            Self::GreyRejected => "grey_band_rejected",
            Self::NoCandidate => "no_candidate",
            Self::CannotMatch(_) => "cannot_match",
        }
    }

    /// Whether the lookup was answered from the cache.
    pub fn is_hit(self) -> bool {
        matches!(self, Self::Served | Self::Verified)
    }
}

/// One recorded lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub at_ms: u64,
    pub namespace: String,
    pub model: String,
    pub question: String,
    /// The best candidate and its similarity.
    pub best: Option<(CacheKey, f32)>,
    pub threshold: f32,
    pub verdict: Verdict,
}

/// What one namespace (or one model) was answered since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceCounts {
    /// Exact hits, coalesced answers included (as in the store's counters).
    pub exact: u64,
    pub semantic: u64,
    /// Semantic lookups made (each request that reached the semantic stage);
    /// counted per namespace only.
    pub lookups: u64,
    /// Answers from upstream: misses, refreshes and bypasses.
    pub upstream: u64,
    /// Of those, misses (a normal request the cache could not answer).
    pub misses: u64,
    pub nano_usd_saved: u64,
    pub nano_usd_spent: u64,
}

/// Counts by namespace and by model, behind one lock.
#[derive(Debug, Default)]
struct Tallies {
    namespaces: BTreeMap<String, NamespaceCounts>,
    models: BTreeMap<String, NamespaceCounts>,
}

/// The ring of recent lookups and the per-namespace and per-model counts.
#[derive(Debug, Default)]
pub struct Lookups {
    ring: Mutex<VecDeque<Seen>>,
    tallies: Mutex<Tallies>,
}

impl Lookups {
    pub fn record(&self, seen: Seen) {
        {
            let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
            count(&mut t.namespaces, &seen.namespace, OTHER_NAMESPACES, |c| c.lookups += 1);
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= KEEP {
            ring.pop_front();
        }
        ring.push_back(seen);
    }

    /// Counts a cache hit in `namespace` of an answer `model` gave, and what it saved.
    pub fn count_hit(&self, namespace: &str, model: &str, semantic: bool, nano_usd_saved: u64) {
        let add = |c: &mut NamespaceCounts| {
            if semantic {
                c.semantic += 1;
            } else {
                c.exact += 1;
            }
            c.nano_usd_saved = c.nano_usd_saved.saturating_add(nano_usd_saved);
        };
        let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut t.namespaces, namespace, OTHER_NAMESPACES, add);
        count(&mut t.models, model, OTHER_MODELS, add);
    }

    /// Counts an answer `model` gave from upstream in `namespace` (`miss`:
    /// a normal request, not a refresh or bypass).
    pub fn count_upstream(&self, namespace: &str, model: &str, miss: bool) {
        let add = |c: &mut NamespaceCounts| {
            c.upstream += 1;
            c.misses += u64::from(miss);
        };
        let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut t.namespaces, namespace, OTHER_NAMESPACES, add);
        count(&mut t.models, model, OTHER_MODELS, add);
    }

    /// Counts what a call to `model` made for `namespace` cost.
    pub fn count_spend(&self, namespace: &str, model: &str, nano_usd_spent: u64) {
        let add = |c: &mut NamespaceCounts| c.nano_usd_spent = c.nano_usd_spent.saturating_add(nano_usd_spent);
        let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut t.namespaces, namespace, OTHER_NAMESPACES, add);
        count(&mut t.models, model, OTHER_MODELS, add);
    }

    /// The most recent `limit` lookups, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Seen> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }

    pub fn namespaces(&self) -> BTreeMap<String, NamespaceCounts> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner()).namespaces.clone()
    }

    /// Per namespace and per model, read together.
    pub fn tallies(&self) -> (BTreeMap<String, NamespaceCounts>, BTreeMap<String, NamespaceCounts>) {
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        (t.namespaces.clone(), t.models.clone())
    }
}

/// Applies `f` to `name`'s counts, or to `other`'s once the map is full.
fn count(map: &mut BTreeMap<String, NamespaceCounts>, name: &str, other: &str, f: impl FnOnce(&mut NamespaceCounts)) {
    // A name already counted costs no allocation: this runs on every hit.
    if let Some(counts) = map.get_mut(name) {
        return f(counts);
    }
    let name = if map.len() < NAMESPACES_COUNTED { name } else { other };
    f(map.entry(name.to_string()).or_default());
}

/// A lookup whose verdict waits on the verifier.
#[must_use]
pub struct Pending {
    lookups: Option<(Arc<Lookups>, Seen)>,
}

impl Pending {
    /// Records the verifier's verdict: an answer is a verified hit.
    pub fn finish(self, verified: Option<Outcome>) -> Option<Outcome> {
        if let Some((lookups, mut seen)) = self.lookups {
            seen.verdict = if verified.is_some() { Verdict::Verified } else { Verdict::GreyRejected };
            lookups.record(seen);
        }
        verified
    }
}

/// The request a lookup was made for.
pub struct Asked<'a> {
    pub namespace: &'a str,
    pub model: &'a str,
    pub question: Option<&'a str>,
}

/// Records what the semantic stage found for a request at `threshold`; a
/// lookup with grey-band candidates is recorded when [`Pending::finish`] is called.
pub fn note(lookups: &Arc<Lookups>, asked: Asked<'_>, threshold: f32, found: &Lookup) -> Pending {
    let (best, verdict) = match (&found.hit, found.nearest) {
        (Some(hit), _) => (Some((hit.entry.id, hit.similarity)), Some(Verdict::Served)),
        (None, nearest) if found.unreadable.is_some() && found.grey.is_empty() => {
            let why = found.unreadable.map_or("", |u| u.as_str());
            (nearest.map(|c| (c.id, c.similarity)), Some(Verdict::CannotMatch(why)))
        }
        (None, None) => (None, Some(Verdict::NoCandidate)),
        (None, Some(c)) => {
            let verdict = if !found.grey.is_empty() {
                None
            } else if let Some(r) = found.refusals.first() {
                Some(Verdict::RefusedBy(r.as_str()))
            } else {
                Some(Verdict::BelowThreshold)
            };
            (Some((c.id, c.similarity)), verdict)
        }
    };
    let question = asked.question.unwrap_or("").chars().take(QUESTION_CHARS).collect();
    let seen = Seen {
        at_ms: deja_cache::now_ms(),
        namespace: asked.namespace.to_string(),
        model: asked.model.to_string(),
        question,
        best,
        threshold,
        verdict: verdict.unwrap_or(Verdict::GreyRejected),
    };
    if verdict.is_some() {
        lookups.record(seen);
        return Pending { lookups: None };
    }
    Pending { lookups: Some((lookups.clone(), seen)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ns: &str, similarity: f32) -> Seen {
        Seen {
            at_ms: 1,
            namespace: ns.into(),
            model: "auto".into(),
            question: "q".into(),
            best: Some((CacheKey([7; 32]), similarity)),
            threshold: 0.9,
            verdict: Verdict::BelowThreshold,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_lookups() {
        let l = Lookups::default();
        for i in 0..(KEEP + 10) {
            l.record(seen("a", i as f32 / 10_000.0));
        }
        let recent = l.recent(usize::MAX);
        assert_eq!(recent.len(), KEEP);
        assert_eq!(recent.first().and_then(|s| s.best).map(|b| b.1), Some((KEEP + 9) as f32 / 10_000.0));
        assert_eq!(l.recent(3).len(), 3);
        assert_eq!(l.namespaces().get("a").map(|c| c.lookups), Some((KEEP + 10) as u64));
    }

    #[test]
    fn namespaces_past_the_cap_are_counted_together() {
        let l = Lookups::default();
        for i in 0..(NAMESPACES_COUNTED + 5) {
            l.count_hit(&format!("ns{i}"), "cheap", i % 2 == 0, 1);
        }
        l.count_hit("ns0", "cheap", false, 1);
        let counts = l.namespaces();
        assert_eq!(counts.len(), NAMESPACES_COUNTED + 1);
        assert_eq!(counts.get("ns0").map(|c| (c.exact, c.semantic)), Some((1, 1)));
        let other = counts.get(OTHER_NAMESPACES).copied().unwrap_or_default();
        assert_eq!(other.exact + other.semantic, 5);
        let (_, models) = l.tallies();
        let cheap = models.get("cheap").copied().unwrap_or_default();
        assert_eq!(cheap.exact + cheap.semantic, NAMESPACES_COUNTED as u64 + 6);
        assert_eq!(cheap.nano_usd_saved, NAMESPACES_COUNTED as u64 + 6);
    }

    #[test]
    fn hits_and_upstream_answers_are_counted_by_namespace_and_by_model() {
        let l = Lookups::default();
        l.count_hit("a", "cheap", true, 30);
        l.count_upstream("a", "mid", true);
        l.count_spend("a", "mid", 100);
        l.count_upstream("b", "mid", false);
        l.count_spend("b", "mid", 50);
        let (namespaces, models) = l.tallies();
        let a = namespaces.get("a").copied().unwrap_or_default();
        assert_eq!((a.semantic, a.upstream, a.misses, a.nano_usd_saved, a.nano_usd_spent), (1, 1, 1, 30, 100));
        let b = namespaces.get("b").copied().unwrap_or_default();
        assert_eq!((b.upstream, b.misses, b.nano_usd_spent), (1, 0, 50), "a bypass is not a miss");
        let mid = models.get("mid").copied().unwrap_or_default();
        assert_eq!((mid.upstream, mid.misses, mid.nano_usd_spent, mid.exact), (2, 1, 150, 0));
        assert_eq!(models.get("cheap").map(|c| c.semantic), Some(1));
    }
}
