//! The semantic stage: an HNSW index (hnsw_rs, cosine) over the vectors of
//! the last user message, searched only among entries with the same context
//! fingerprint (or, behind a shared template, the template's group, by the
//! vector of the message's own part: [`gather`]); each candidate is decided
//! on what differs between the two texts ([`crate::compare`]), above a
//! cosine-similarity threshold, through the guards.
//!
//! sled is the source of truth: the index is saved beside the store
//! ([`persist`]) and loaded at start-up, or rebuilt from the `vectors` tree
//! when no save can be trusted, and again in the background when deletions
//! pile up. Deleted and expired entries are filtered out of every answer.

mod gather;
mod group;
mod index;
mod manifest;
pub mod persist;
mod saved;

pub use gather::Template;
pub use index::{Candidate, SemanticIndex, DEFAULT_SEARCH_BREADTH};
pub use persist::{graphs_dir, IndexStats, PersistError, RestoreReport, SaveReport};

use crate::compare::{Compared, Unreadable};
use crate::guards::{GuardSettings, Refusal};
use crate::spans::SpanVectors;
use deja_api::ContextFingerprint;
use deja_embed::Embedder;
use deja_store::{Entry, HitStats, Store, StoreError};
use gather::{gather, Examined, Gathered};
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
    /// The similarity of what differs between the two texts ([`Compared`]).
    pub similarity: f32,
}

/// One nearest entry, judged: what `/admin/cache/search` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judged {
    pub id: String,
    /// The similarity the decision rests on (of the differing parts when
    /// the texts share segments).
    pub similarity: f32,
    /// The index's cosine: of the two whole texts' vectors, or, in a
    /// template's group, of the two parts' vectors.
    pub whole_similarity: f32,
    pub text: String,
    /// What was compared when the texts share segments: the query's part and
    /// the entry's part; `None` when the whole texts were compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared: Option<(String, String)>,
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
    /// How fresh an entry the request accepts (its `max-age`, `min-fresh`).
    pub fresh: crate::Freshness,
}

/// The model that made the vectors, to read texts and embed what differs.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub model: &'a dyn Embedder,
    /// Vectors of differing parts already computed.
    pub spans: Option<&'a SpanVectors>,
}

/// A live candidate in the grey band (`verify_from ≤ similarity < threshold`)
/// that passed the guards: served only if the verifier says so.
#[derive(Debug, Clone)]
pub struct GreyCandidate {
    pub entry: Entry,
    /// The cached question, verbatim.
    pub text: String,
    pub similarity: f32,
    /// What was compared: the parts of both texts that differ.
    pub compared: Compared,
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
    /// The best-scoring candidate the index suggested, whatever its verdict,
    /// with the similarity of what differs.
    pub nearest: Option<Candidate>,
    /// Why the question cannot be matched at all: the model cannot read it
    /// (and no candidate shared segments that set the unreadable part aside).
    pub unreadable: Option<Unreadable>,
    /// The template the question shares with entries of its context, if any:
    /// its answer is stored in the template's group, under its part's vector.
    pub template: Option<Template>,
}

/// The best live entry above the threshold that passes the guards, and the
/// guards that refused better-scoring candidates on the way.
pub fn lookup(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    reader: Reader<'_>,
    now_ms: u64,
) -> Result<(Option<SemanticHit>, Vec<Refusal>), StoreError> {
    let found = lookup_banded(store, index, query, settings, reader, None, now_ms)?;
    Ok((found.hit, found.refusals))
}

/// [`lookup`], and, with `verify` = `Some((verify_from, max))` and no direct
/// hit, up to `max` grey-band candidates that passed the guards, best first.
/// Grey candidates are not counted as hits.
///
/// Every candidate the index suggests above the floor is compared on what
/// differs ([`compare`](crate::compare)), and the best comparison decides:
/// the whole texts' cosine only chooses which entries are looked at.
pub fn lookup_banded(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    reader: Reader<'_>,
    verify: Option<(f32, usize)>,
    now_ms: u64,
) -> Result<Lookup, StoreError> {
    let floor = verify.map_or(query.threshold, |(from, _)| from.min(query.threshold));
    let max_grey = verify.map_or(0, |(_, max)| max);
    let found = gather(store, index, query, settings, reader, settings.candidates, floor, now_ms)?;
    let Gathered { mut examined, template, unreadable, nearest } = found;
    let refusals: Vec<Refusal> = examined
        .iter()
        .filter_map(|e| if e.in_context { e.compared.refusal } else { Some(Refusal::Context) })
        .collect();
    examined.retain(|e| e.in_context && e.compared.refusal.is_none());
    examined.sort_by(|a, b| b.compared.similarity.total_cmp(&a.compared.similarity));
    let threshold = query.threshold;
    let mut grey = Vec::new();
    for Examined { entry, compared, .. } in examined {
        if served_at(compared.similarity, threshold) {
            let stats = store.record_hit(&entry.id, now_ms)?;
            let hit = Some(SemanticHit { entry, stats, similarity: compared.similarity });
            return Ok(Lookup { hit, grey: Vec::new(), refusals, nearest, unreadable: None, template });
        }
        if compared.similarity >= floor && grey.len() < max_grey {
            let text = entry.semantic.as_ref().map(|m| m.text.clone()).unwrap_or_default();
            grey.push(GreyCandidate { entry, text, similarity: compared.similarity, compared });
        }
    }
    Ok(Lookup { hit: None, grey, refusals, nearest, unreadable, template })
}

/// Whether `similarity` is served at `threshold`. A client's floor of 1.0
/// asks for the identical text, which alone scores exactly 1.
fn served_at(similarity: f32, threshold: f32) -> bool {
    if threshold >= 1.0 {
        similarity >= 1.0
    } else {
        similarity >= threshold
    }
}

/// The nearest live entries with the verdict each would get, without counting
/// hits, and why the question cannot be matched at all, if it cannot.
pub fn judge(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    reader: Reader<'_>,
    k: usize,
    now_ms: u64,
) -> Result<(Vec<Judged>, Option<Unreadable>), StoreError> {
    let found = gather(store, index, query, settings, reader, k, f32::NEG_INFINITY, now_ms)?;
    let mut out: Vec<Judged> = found
        .examined
        .into_iter()
        .map(|Examined { entry, whole_similarity, compared, in_context }| {
            let refused_by = match compared.refusal {
                _ if !in_context => Some(Refusal::Context.as_str().to_string()),
                Some(r) => Some(r.as_str().to_string()),
                None if !served_at(compared.similarity, query.threshold) => Some("below_threshold".to_string()),
                None => None,
            };
            let text = entry.semantic.as_ref().map(|m| m.text.clone()).unwrap_or_default();
            Judged {
                id: entry.id.to_hex(),
                similarity: compared.similarity,
                whole_similarity,
                text,
                compared: compared.framed.then_some((compared.query_part, compared.candidate_part)),
                refused_by,
            }
        })
        .collect();
    out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    out.truncate(k);
    Ok((out, found.unreadable))
}

#[cfg(test)]
#[path = "semantic/lookup_tests.rs"]
mod tests;
