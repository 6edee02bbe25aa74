//! Recent semantic lookups, kept in memory for the dashboard's threshold
//! explorer: the question, the best candidate and its similarity, the
//! threshold in force and what happened. Also hit and lookup counts per
//! namespace since start. Bounded, never persisted, never on sled.

use crate::ctx::ChatCtx;
use crate::reply::Outcome;
use deja_api::CacheKey;
use deja_cache::semantic::Lookup;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many recent lookups are kept.
pub const KEEP: usize = 2000;
/// Questions are kept up to this many characters.
const QUESTION_CHARS: usize = 200;
/// Namespaces counted one by one; later ones are counted together.
const NAMESPACES_COUNTED: usize = 1000;
/// Where namespaces past [`NAMESPACES_COUNTED`] are counted.
pub const OTHER_NAMESPACES: &str = "(other namespaces)";

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

/// Hits and semantic lookups of one namespace since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceCounts {
    pub exact: u64,
    pub semantic: u64,
    /// Semantic lookups made (each request that reached the semantic stage).
    pub lookups: u64,
}

/// The ring of recent lookups and the per-namespace counts.
#[derive(Debug, Default)]
pub struct Lookups {
    ring: Mutex<VecDeque<Seen>>,
    namespaces: Mutex<BTreeMap<String, NamespaceCounts>>,
}

impl Lookups {
    pub fn record(&self, seen: Seen) {
        self.count(&seen.namespace, |c| c.lookups += 1);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= KEEP {
            ring.pop_front();
        }
        ring.push_back(seen);
    }

    /// Counts a cache hit in `namespace`.
    pub fn count_hit(&self, namespace: &str, semantic: bool) {
        self.count(namespace, |c| if semantic { c.semantic += 1 } else { c.exact += 1 });
    }

    fn count(&self, namespace: &str, f: impl FnOnce(&mut NamespaceCounts)) {
        let mut map = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        // A namespace already counted costs no allocation: this runs on every hit.
        if let Some(counts) = map.get_mut(namespace) {
            return f(counts);
        }
        let name = if map.len() < NAMESPACES_COUNTED { namespace } else { OTHER_NAMESPACES };
        f(map.entry(name.to_string()).or_default());
    }

    /// The most recent `limit` lookups, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Seen> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().take(limit).cloned().collect()
    }

    pub fn namespaces(&self) -> BTreeMap<String, NamespaceCounts> {
        self.namespaces.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A lookup whose verdict waits on the verifier.
#[must_use]
pub struct Pending {
    lookups: Option<(Arc<crate::state::AppState>, Seen)>,
}

impl Pending {
    /// Records the verifier's verdict: an answer is a verified hit.
    pub fn finish(self, verified: Option<Outcome>) -> Option<Outcome> {
        if let Some((state, mut seen)) = self.lookups {
            seen.verdict = if verified.is_some() { Verdict::Verified } else { Verdict::GreyRejected };
            state.lookups.record(seen);
        }
        verified
    }
}

/// Records what the semantic stage found for `ctx` at `threshold`; a lookup
/// with grey-band candidates is recorded when [`Pending::finish`] is called.
pub fn note(ctx: &ChatCtx, threshold: f32, found: &Lookup) -> Pending {
    let (best, verdict) = match (&found.hit, found.nearest) {
        (Some(hit), _) => (Some((hit.entry.id, hit.similarity)), Some(Verdict::Served)),
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
    let question = ctx.question.as_deref().unwrap_or("").chars().take(QUESTION_CHARS).collect();
    let seen = Seen {
        at_ms: deja_cache::now_ms(),
        namespace: ctx.namespace.as_str().to_string(),
        model: ctx.req.model.clone(),
        question,
        best,
        threshold,
        verdict: verdict.unwrap_or(Verdict::GreyRejected),
    };
    if verdict.is_some() {
        ctx.state.lookups.record(seen);
        return Pending { lookups: None };
    }
    Pending { lookups: Some((ctx.state.clone(), seen)) }
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
            l.count_hit(&format!("ns{i}"), i % 2 == 0);
        }
        l.count_hit("ns0", false);
        let counts = l.namespaces();
        assert_eq!(counts.len(), NAMESPACES_COUNTED + 1);
        assert_eq!(counts.get("ns0").map(|c| (c.exact, c.semantic)), Some((1, 1)));
        let other = counts.get(OTHER_NAMESPACES).copied().unwrap_or_default();
        assert_eq!(other.exact + other.semantic, 5);
    }
}
