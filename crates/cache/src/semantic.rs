//! The semantic stage: an HNSW index (hnsw_rs, cosine) over the vectors of
//! the last user message, searched only among entries with the same context
//! fingerprint, above a cosine-similarity threshold, through the guards.
//!
//! sled is the source of truth: the index is saved beside the store
//! ([`persist`]) and loaded at start-up, or rebuilt from the `vectors` tree
//! when no save can be trusted, and again in the background when deletions
//! pile up. Deleted and expired entries are filtered out of every answer.

mod group;
mod index;
mod manifest;
pub mod persist;

pub use index::{Candidate, SemanticIndex, DEFAULT_SEARCH_BREADTH};
pub use persist::{graphs_dir, IndexStats, PersistError, RestoreReport, SaveReport};

use crate::guards::{GuardSettings, Guards, Refusal};
use deja_api::ContextFingerprint;
use deja_store::{Entry, HitStats, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Thresholds are cosine similarities in [0, 1]: 1 means identical direction.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticSettings {
    /// At or above: served directly (after the guards).
    pub threshold: f32,
    /// From here up to the threshold a candidate that passes the guards is
    /// only served if the verifier agrees; below it, never.
    pub verify_from: f32,
    pub ladder_thresholds: HashMap<String, f32>,
    pub guards: GuardSettings,
    /// Candidates examined per lookup.
    pub candidates: usize,
}

impl SemanticSettings {
    /// The threshold for `requested_model`, raised (never lowered) by the client.
    pub fn threshold_for(&self, requested_model: &str, client_floor: Option<f32>) -> f32 {
        let base = self.ladder_thresholds.get(requested_model).copied().unwrap_or(self.threshold);
        client_floor.map_or(base, |f| base.max(f.min(1.0)))
    }
}

#[derive(Debug, Clone)]
pub struct SemanticHit {
    pub entry: Entry,
    pub stats: HitStats,
    pub similarity: f32,
}

/// One nearest entry, judged: what `/admin/cache/search` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judged {
    pub id: String,
    pub similarity: f32,
    pub text: String,
    /// `None` when it would be served; otherwise why not.
    pub refused_by: Option<String>,
}

/// What a semantic lookup compares: a question, its vector, its context.
pub struct Query<'a> {
    /// The tenant asking: only its own entries may be served.
    pub namespace: &'a str,
    pub fingerprint: &'a ContextFingerprint,
    pub vector: &'a [f32],
    pub text: &'a str,
    pub threshold: f32,
}

/// A live candidate in the grey band (`verify_from ≤ similarity < threshold`)
/// that passed the guards: served only if the verifier says so.
#[derive(Debug, Clone)]
pub struct GreyCandidate {
    pub entry: Entry,
    /// The cached question, verbatim.
    pub text: String,
    pub similarity: f32,
}

/// What one semantic lookup found.
#[derive(Debug, Default)]
pub struct Lookup {
    /// A candidate at or above the threshold that passed the guards.
    pub hit: Option<SemanticHit>,
    /// Best first; empty when there is a hit or nothing to verify.
    pub grey: Vec<GreyCandidate>,
    /// Guards that refused better-scoring candidates on the way.
    pub refusals: Vec<Refusal>,
    /// The best-scoring candidate the index suggested, whatever its verdict.
    pub nearest: Option<Candidate>,
}

/// The best live entry above the threshold that passes the guards, and the
/// guards that refused better-scoring candidates on the way.
pub fn lookup(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    now_ms: u64,
) -> Result<(Option<SemanticHit>, Vec<Refusal>), StoreError> {
    let found = lookup_banded(store, index, query, settings, None, now_ms)?;
    Ok((found.hit, found.refusals))
}

/// [`lookup`], and, with `verify` = `Some((verify_from, max))` and no direct
/// hit, up to `max` grey-band candidates that passed the guards, best first.
/// Grey candidates are not counted as hits.
pub fn lookup_banded(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    verify: Option<(f32, usize)>,
    now_ms: u64,
) -> Result<Lookup, StoreError> {
    let features = Guards::features(query.text);
    let fingerprint_hex = query.fingerprint.to_hex();
    let mut refusals = Vec::new();
    let mut grey = Vec::new();
    let floor = verify.map_or(query.threshold, |(from, _)| from.min(query.threshold));
    let max_grey = verify.map_or(0, |(_, max)| max);
    let candidates = index.search(store, query.fingerprint, query.vector, settings.candidates)?;
    let nearest = candidates.first().copied();
    for cand in candidates {
        if cand.similarity < floor || (cand.similarity < query.threshold && grey.len() >= max_grey) {
            break;
        }
        let Some(entry) = live_entry(store, &cand, now_ms)? else { continue };
        let Some(meta) = &entry.semantic else { continue };
        if !same_context(&entry, query, &fingerprint_hex) {
            refusals.push(Refusal::Context);
            continue;
        }
        if let Some(r) = Guards::check(&settings.guards, &features, &Guards::features(&meta.text)) {
            refusals.push(r);
            continue;
        }
        if cand.similarity < query.threshold {
            let text = meta.text.clone();
            grey.push(GreyCandidate { entry, text, similarity: cand.similarity });
            continue;
        }
        let stats = store.record_hit(&entry.id, now_ms)?;
        let hit = Some(SemanticHit { entry, stats, similarity: cand.similarity });
        return Ok(Lookup { hit, grey: Vec::new(), refusals, nearest });
    }
    Ok(Lookup { hit: None, grey, refusals, nearest })
}

/// The nearest live entries with the verdict each would get, without counting hits.
pub fn judge(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    k: usize,
    now_ms: u64,
) -> Result<Vec<Judged>, StoreError> {
    let features = Guards::features(query.text);
    let fingerprint_hex = query.fingerprint.to_hex();
    let threshold = query.threshold;
    let mut out = Vec::new();
    for cand in index.search(store, query.fingerprint, query.vector, k)? {
        let Some(entry) = live_entry(store, &cand, now_ms)? else { continue };
        let other = entry.semantic.as_ref().map(|m| m.text.clone()).unwrap_or_default();
        let refused_by = if !same_context(&entry, query, &fingerprint_hex) {
            Some(Refusal::Context.as_str().to_string())
        } else if cand.similarity < threshold {
            Some("below_threshold".to_string())
        } else {
            Guards::check(&settings.guards, &features, &Guards::features(&other)).map(|r| r.as_str().to_string())
        };
        out.push(Judged { id: entry.id.to_hex(), similarity: cand.similarity, text: other, refused_by });
    }
    Ok(out)
}

/// Whether the entry read back was stored under the query's namespace and
/// context fingerprint. The index only suggests candidates: a wrong or stale
/// index must never serve another tenant's or another context's answer.
fn same_context(entry: &Entry, query: &Query<'_>, fingerprint_hex: &str) -> bool {
    let fingerprint_matches =
        entry.semantic.as_ref().is_some_and(|m| m.fingerprint.eq_ignore_ascii_case(fingerprint_hex));
    fingerprint_matches && entry.namespace == query.namespace
}

fn live_entry(store: &Store, cand: &Candidate, now_ms: u64) -> Result<Option<Entry>, StoreError> {
    match store.get(&cand.id) {
        Ok(Some(e)) if !e.is_expired(now_ms) => Ok(Some(e)),
        Ok(_) | Err(StoreError::Corrupt(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "semantic/lookup_tests.rs"]
mod tests;
