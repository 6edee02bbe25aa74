//! `GET /admin/lookups`: the threshold explorer's data. The recent semantic
//! lookups the gateway kept in memory, their best similarities as a
//! histogram over [0, 1], the near misses (best similarity within
//! [`NEAR`] below the threshold in force) next to the entry each nearly hit,
//! the configured thresholds, and hits per namespace since start. Reads
//! only: moving the dashboard's slider changes nothing.

use deja_api::ApiError;
use deja_cache::semantic::Judged;
use deja_cache::{Guards, SemanticSettings};
use deja_gateway::lookups::{Seen, Verdict};
use deja_gateway::state::AppState;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// How far below the threshold a miss counts as a near miss.
pub const NEAR: f32 = 0.05;
/// Histogram buckets over [0, 1].
const BUCKETS: usize = 20;
/// Near misses listed at most.
const NEAR_SHOWN: usize = 50;

/// Rounds a similarity for display and for stable JSON.
fn round(x: f32) -> f64 {
    (f64::from(x) * 1e4).round() / 1e4
}

pub fn report(state: &AppState, query: &str) -> Result<Value, ApiError> {
    let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let limit = match q.get("limit") {
        None => 500,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_request("limit is a whole number", Some("limit")))?
            .clamp(1, deja_gateway::lookups::KEEP),
    };
    let wanted = |field: &str, value: &str| q.get(field).is_none_or(|w| w.is_empty() || w == value);
    let recent: Vec<Seen> = state
        .lookups
        .recent(deja_gateway::lookups::KEEP)
        .into_iter()
        .filter(|s| wanted("namespace", &s.namespace) && wanted("model", &s.model))
        .take(limit)
        .collect();

    let mut buckets = vec![(0u64, 0u64); BUCKETS];
    for s in &recent {
        let Some((_, sim)) = s.best else { continue };
        let i = ((sim.clamp(0.0, 1.0) * BUCKETS as f32) as usize).min(BUCKETS - 1);
        if let Some(b) = buckets.get_mut(i) {
            b.0 += 1;
            b.1 += u64::from(s.verdict.is_hit());
        }
    }
    let histogram: Vec<Value> = buckets
        .iter()
        .enumerate()
        .map(|(i, (count, hits))| {
            let from = i as f64 / BUCKETS as f64;
            json!({"from": from, "to": from + 1.0 / BUCKETS as f64, "count": count, "hits": hits})
        })
        .collect();

    let near: Vec<Value> = recent
        .iter()
        .filter(|s| is_near_miss(s))
        .take(NEAR_SHOWN)
        .map(|s| {
            let mut v = describe(s);
            if let (Some((id, _)), Some(fields)) = (s.best, v.as_object_mut()) {
                // The entry it nearly hit, read now: it may have gone since.
                let entry = state.store.get(&id).ok().flatten();
                let text = entry.as_ref().and_then(|e| e.semantic.as_ref()).map(|m| m.text.clone());
                fields.insert("entry_text".into(), json!(text));
                fields.insert("entry_exists".into(), json!(entry.is_some()));
            }
            v
        })
        .collect();

    let config = state.config();
    let settings = &config.cache.semantic;
    let ladder: Map<String, Value> =
        settings.ladder_thresholds.iter().map(|(k, v)| (k.clone(), json!(round(*v)))).collect();
    let namespaces: Map<String, Value> = state
        .lookups
        .namespaces()
        .into_iter()
        .map(|(ns, c)| (ns, json!({"exact_hits": c.exact, "semantic_hits": c.semantic, "semantic_lookups": c.lookups})))
        .collect();
    Ok(json!({
        "threshold": round(settings.threshold),
        "verify_from": round(settings.verify_from),
        "verifier": config.cache.verifier.is_some(),
        "ladder_thresholds": ladder,
        "near_band": round(NEAR),
        "count": recent.len(),
        "histogram": histogram,
        "near_misses": near,
        "lookups": recent.iter().map(describe).collect::<Vec<_>>(),
        "by_namespace": namespaces,
    }))
}

/// Not served, with a best candidate within [`NEAR`] below the threshold in force.
fn is_near_miss(s: &Seen) -> bool {
    !s.verdict.is_hit() && s.best.is_some_and(|(_, sim)| sim < s.threshold && sim >= s.threshold - NEAR)
}

fn describe(s: &Seen) -> Value {
    let (guard, reason) = match s.verdict {
        Verdict::RefusedBy(g) => (Some(g), None),
        Verdict::CannotMatch(why) => (None, Some(why)),
        _ => (None, None),
    };
    json!({
        "at_ms": s.at_ms,
        "namespace": s.namespace,
        "model": s.model,
        "question": s.question,
        "entry": s.best.map(|(id, _)| id.to_hex()),
        "similarity": s.best.map(|(_, sim)| round(sim)),
        "threshold": round(s.threshold),
        "verdict": s.verdict.as_str(),
        "guard": guard,
        "reason": reason,
    })
}

/// What "what would this hit?" reports for a candidate in the verifier's
/// grey band (`verify_from` ≤ similarity < threshold, `grey` = `Some(verify_from)`
/// when a verifier is configured): `would_be_verified` when the guards pass,
/// rather than `below_threshold`.
pub fn grey_band(mut j: Judged, grey: Option<f32>, question: &str, settings: &SemanticSettings) -> Judged {
    let in_band = grey.is_some_and(|from| j.similarity >= from);
    if in_band && j.refused_by.as_deref() == Some("below_threshold") {
        j.refused_by = Some(match Guards::check_texts(&settings.guards, question, &j.text) {
            Some(r) => r.as_str().to_string(),
            None => "would_be_verified".to_string(),
        });
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use deja_api::CacheKey;

    fn seen(similarity: f32, verdict: Verdict) -> Seen {
        Seen {
            at_ms: 1,
            namespace: "default".into(),
            model: "auto".into(),
            question: "q".into(),
            best: Some((CacheKey([1; 32]), similarity)),
            threshold: 0.9,
            verdict,
        }
    }

    #[test]
    fn near_misses_are_misses_just_below_the_threshold() {
        assert!(is_near_miss(&seen(0.87, Verdict::BelowThreshold)));
        assert!(is_near_miss(&seen(0.86, Verdict::GreyRejected)));
        assert!(!is_near_miss(&seen(0.84, Verdict::BelowThreshold)));
        assert!(!is_near_miss(&seen(0.88, Verdict::Verified)));
        assert!(!is_near_miss(&seen(0.95, Verdict::RefusedBy("numbers"))));
    }

    #[test]
    fn grey_band_candidates_are_labelled_would_be_verified() {
        let settings = SemanticSettings {
            threshold: 0.9,
            verify_from: 0.8,
            ladder_thresholds: Default::default(),
            guards: Default::default(),
            candidates: 8,
        };
        let judged = |similarity: f32, text: &str| Judged {
            id: "x".into(),
            similarity,
            whole_similarity: similarity,
            text: text.into(),
            compared: None,
            refused_by: Some("below_threshold".into()),
        };
        let q = "when do you open on sunday";
        let label = |j: Judged, grey| grey_band(j, grey, q, &settings).refused_by;
        assert_eq!(label(judged(0.85, "when are you open on sunday"), Some(0.8)).as_deref(), Some("would_be_verified"));
        assert_eq!(label(judged(0.85, "when are you open on sunday"), None).as_deref(), Some("below_threshold"));
        assert_eq!(label(judged(0.7, "when are you open on sunday"), Some(0.8)).as_deref(), Some("below_threshold"));
        assert_eq!(label(judged(0.85, "when do you open on 2 sundays"), Some(0.8)).as_deref(), Some("numbers"));
    }
}
