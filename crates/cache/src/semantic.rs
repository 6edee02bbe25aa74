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

use crate::compare::{Compared, Comparer, Unreadable};
use crate::guards::{GuardSettings, Refusal};
use crate::spans::SpanVectors;
use deja_api::ContextFingerprint;
use deja_embed::Embedder;
use deja_store::{Entry, HitStats, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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
    /// The cosine of the two whole texts' vectors.
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

/// The template a question shares with entries of its context, and the
/// vector of its own part: an entry stored for it goes in the template's
/// group (`deja_api::key::template_fingerprint`) under that vector, so later
/// inputs behind the same template are searched by what they say.
#[derive(Debug, Clone)]
pub struct Template {
    pub fingerprint: ContextFingerprint,
    pub vector: Vec<f32>,
}

/// One candidate read back and compared.
struct Examined {
    entry: Entry,
    whole_similarity: f32,
    compared: Compared,
    /// Stored under the namespace and fingerprint it was searched for.
    in_context: bool,
}

struct Gathered {
    examined: Vec<Examined>,
    template: Option<Template>,
    unreadable: Option<Unreadable>,
    nearest: Option<Candidate>,
}

/// Searches the question's context by its whole vector and, when the entries
/// found share a template with it, the template's group by the vector of the
/// question's own part; compares every live candidate down to `floor`.
#[allow(clippy::too_many_arguments)]
fn gather(
    store: &Store,
    index: &SemanticIndex,
    query: &Query<'_>,
    settings: &SemanticSettings,
    reader: Reader<'_>,
    k: usize,
    floor: f32,
    now_ms: u64,
) -> Result<Gathered, StoreError> {
    let comparer = Comparer::new(reader.model, &settings.guards, reader.spans, query.text);
    let whole_unreadable = comparer.query_unreadable();
    let mut found = Gathered { examined: Vec::new(), template: None, unreadable: whole_unreadable, nearest: None };
    // Unknown pieces stay unknown in any part of the text: nothing to search for.
    if whole_unreadable == Some(Unreadable::UnknownTokens) {
        return Ok(found);
    }
    let first = index.search(store, query.fingerprint, query.vector, k)?;
    found.nearest = first.first().copied();
    // Read before comparing: a short template leaves the whole texts' cosine
    // below the floor, yet the entries found still show the template.
    let template = shared_template(store, query, &first, now_ms)?;
    let mut seen = HashSet::new();
    examine(store, &comparer, query, query.fingerprint, first, floor, now_ms, &mut seen, &mut found.examined)?;
    if let Some((template, part)) = template {
        let fingerprint = deja_api::key::template_fingerprint(*query.fingerprint, &template);
        match comparer.part_vector(&part) {
            Ok(vector) => {
                let more = index.search(store, &fingerprint, &vector, k)?;
                if found.nearest.is_none() {
                    found.nearest = more.first().copied();
                }
                examine(store, &comparer, query, &fingerprint, more, floor, now_ms, &mut seen, &mut found.examined)?;
                found.template = Some(Template { fingerprint, vector });
            }
            Err(e) => tracing::warn!(error = %e, "embedding the question's own part failed"),
        }
    }
    // Too long as a whole, and no candidate shared the segments that would set the excess aside.
    let set_aside = found.examined.iter().any(|e| e.compared.framed && e.compared.refusal != Some(Refusal::TooLong));
    if set_aside {
        found.unreadable = None;
    }
    // The explorer shows the best comparison, not the best whole-text cosine.
    let best = found
        .examined
        .iter()
        .filter(|e| e.in_context)
        .max_by(|a, b| a.compared.similarity.total_cmp(&b.compared.similarity));
    if let Some(e) = best {
        found.nearest = Some(Candidate { id: e.entry.id, similarity: e.compared.similarity });
    }
    Ok(found)
}

/// The template the question shares with most of the live entries of its
/// context among `candidates` (the first found on a tie), and the question's
/// own part. Text only: nothing is embedded here.
fn shared_template(
    store: &Store,
    query: &Query<'_>,
    candidates: &[Candidate],
    now_ms: u64,
) -> Result<Option<(String, String)>, StoreError> {
    let fingerprint_hex = query.fingerprint.to_hex();
    let mut counts: Vec<(String, String, usize)> = Vec::new();
    for cand in candidates {
        let Some(entry) = live_entry(store, cand, now_ms)? else { continue };
        if !same_context(&entry, query.namespace, &fingerprint_hex) {
            continue;
        }
        let Some(text) = entry.semantic.as_ref().map(|m| m.text.as_str()) else { continue };
        let d = crate::compare::differing(query.text, text);
        if d.shared_bytes == 0 || d.query.is_empty() || d.candidate.is_empty() {
            continue;
        }
        let template = d.template(query.text);
        match counts.iter_mut().find(|(seen, _, _)| *seen == template) {
            Some(c) => c.2 += 1,
            None => counts.push((template, d.query.to_string(), 1)),
        }
    }
    let best = counts.into_iter().fold(None::<(String, String, usize)>, |best, c| match best {
        Some(b) if b.2 >= c.2 => Some(b),
        _ => Some(c),
    });
    Ok(best.map(|(t, p, _)| (t, p)))
}

/// Reads back and compares `candidates` (best first) down to `floor`.
#[allow(clippy::too_many_arguments)]
fn examine(
    store: &Store,
    comparer: &Comparer<'_>,
    query: &Query<'_>,
    fingerprint: &ContextFingerprint,
    candidates: Vec<Candidate>,
    floor: f32,
    now_ms: u64,
    seen: &mut HashSet<deja_api::CacheKey>,
    out: &mut Vec<Examined>,
) -> Result<(), StoreError> {
    let fingerprint_hex = fingerprint.to_hex();
    for cand in candidates {
        // The whole texts' cosine is at least what differs scores, in all but
        // rare cases: below the floor, nothing further down can be served.
        if cand.similarity < floor {
            break;
        }
        if !seen.insert(cand.id) {
            continue;
        }
        let Some(entry) = live_entry(store, &cand, now_ms)? else { continue };
        let Some(text) = entry.semantic.as_ref().map(|m| m.text.clone()) else { continue };
        let in_context = same_context(&entry, query.namespace, &fingerprint_hex);
        let compared = match comparer.compare(&text, cand.similarity) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "embedding what differs failed; candidate skipped");
                continue;
            }
        };
        out.push(Examined { entry, whole_similarity: cand.similarity, compared, in_context });
    }
    Ok(())
}

/// Whether the entry read back was stored under the query's namespace and
/// context fingerprint. The index only suggests candidates: a wrong or stale
/// index must never serve another tenant's or another context's answer.
fn same_context(entry: &Entry, namespace: &str, fingerprint_hex: &str) -> bool {
    let fingerprint_matches =
        entry.semantic.as_ref().is_some_and(|m| m.fingerprint.eq_ignore_ascii_case(fingerprint_hex));
    fingerprint_matches && entry.namespace == namespace
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
