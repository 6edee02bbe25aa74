//! Finding and comparing a question's candidates: its context searched by
//! the whole question's vector, and, when the entries found share a template
//! with it, the template's own group searched by the vector of the
//! question's own part; every live candidate re-read and compared on what
//! differs ([`crate::compare`]).

use super::{Candidate, Query, Reader, SemanticIndex, SemanticSettings};
use crate::compare::{Compared, Comparer, Unreadable};
use crate::guards::Refusal;
use deja_api::{CacheKey, ContextFingerprint};
use deja_store::{Entry, Store, StoreError};
use std::collections::HashSet;

/// The template a question shares with entries of its context, and the
/// vector of its own part: an entry stored for it goes in the template's
/// group (`deja_api::key::template_fingerprint`) under that vector, so later
/// inputs behind the same template are searched by what they say.
#[derive(Debug, Clone)]
pub struct Template {
    pub fingerprint: ContextFingerprint,
    pub vector: Vec<f32>,
    /// The question's own part, which `vector` was made of.
    pub part: String,
}

/// One candidate read back and compared.
pub(super) struct Examined {
    pub entry: Entry,
    pub whole_similarity: f32,
    pub compared: Compared,
    /// Stored under the namespace and fingerprint it was searched for.
    pub in_context: bool,
}

pub(super) struct Gathered {
    pub examined: Vec<Examined>,
    pub template: Option<Template>,
    pub unreadable: Option<Unreadable>,
    pub nearest: Option<Candidate>,
}

/// Searches the question's context by its whole vector and, when the entries
/// found share a template with it, the template's group by the vector of the
/// question's own part; compares every live candidate down to `floor`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gather(
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
                found.template = Some(Template { fingerprint, vector, part: part.to_string() });
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
        let Some(entry) = live_entry(store, cand, &query.fresh, now_ms)? else { continue };
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
    seen: &mut HashSet<CacheKey>,
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
        let Some(entry) = live_entry(store, &cand, &query.fresh, now_ms)? else { continue };
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
pub(super) fn same_context(entry: &Entry, namespace: &str, fingerprint_hex: &str) -> bool {
    let fingerprint_matches =
        entry.semantic.as_ref().is_some_and(|m| m.fingerprint.eq_ignore_ascii_case(fingerprint_hex));
    fingerprint_matches && entry.namespace == namespace
}

pub(super) fn live_entry(
    store: &Store,
    cand: &Candidate,
    fresh: &crate::Freshness,
    now_ms: u64,
) -> Result<Option<Entry>, StoreError> {
    match store.get(&cand.id) {
        Ok(Some(e)) if fresh.accepts(&e, now_ms) => Ok(Some(e)),
        Ok(_) | Err(StoreError::Corrupt(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
