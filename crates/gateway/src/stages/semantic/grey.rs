//! The grey band: candidates between `verify_from` and the threshold, asked
//! of the verifier. A yes is served, learned as an alias and counted; a no
//! is remembered; a failure is a miss. Past the client's budget the
//! verifier is not asked at all.

use super::Semantic;
use crate::hits::Found;
use crate::reply::Outcome;
use crate::respond::HitKind;
use crate::stages::{Accepted, Looked};
use deja_cache::semantic::GreyCandidate;
use deja_store::Entry;

pub(super) struct Grey<'a> {
    pub semantic: &'a Semantic,
    pub request: &'a Accepted,
    pub looked: &'a Looked,
    pub question: &'a str,
}

impl Grey<'_> {
    /// The verified hit, if any, and whether a verdict is coming in the
    /// background (`mode = "async"`), so this answer must not be stored.
    pub async fn verify(&self, grey: Vec<GreyCandidate>) -> (Option<Outcome>, bool) {
        let (request, semantic) = (self.request, self.semantic);
        let config = request.config.clone();
        let Some(settings) = config.cache.verifier.as_ref() else { return (None, false) };
        // Past its budget a client gets no call made for it: a miss, which its
        // budget then refuses or sends to the cheapest rung.
        if semantic.calls.ledger.reached(request.budget.as_ref()) {
            return (None, false);
        }
        let asked: Vec<GreyCandidate> = grey
            .into_iter()
            .filter(|c| !semantic.rejections.contains(&request.key, &c.entry.id))
            .take(settings.max_candidates)
            .collect();
        if asked.is_empty() {
            return (None, false);
        }
        // Texts sharing a template: the verifier sees the template once and what
        // differs, for the candidates whose differing part of the question is the
        // best one's.
        let framed = asked.first().filter(|c| c.compared.framed).map(|c| c.compared.query_part.clone());
        let asked: Vec<GreyCandidate> = match &framed {
            Some(part) => asked.into_iter().filter(|c| c.compared.framed && &c.compared.query_part == part).collect(),
            None => asked.into_iter().filter(|c| !c.compared.framed).collect(),
        };
        let template = asked.first().and_then(|c| c.compared.template.clone());
        let shown = framed.as_deref().unwrap_or(self.question);
        let texts: Vec<&str> = asked
            .iter()
            .map(|c| if c.compared.framed { c.compared.candidate_part.as_str() } else { c.text.as_str() })
            .collect();
        if settings.mode == crate::config::VerifierMode::Async {
            let candidates = asked.iter().map(|c| (c.entry.id, c.similarity)).collect();
            let verdict_coming = crate::verify_later::verify_later(crate::verify_later::Later {
                calls: semantic.calls.clone(),
                rejections: semantic.rejections.clone(),
                store: semantic.store.clone(),
                config: config.clone(),
                key: request.key,
                payer: request.payer(),
                learn: request.policy.writes(),
                template,
                question: shown.to_string(),
                texts: texts.iter().map(|t| t.to_string()).collect(),
                candidates,
            });
            // The verdict decides what this wording is served next: a yes its
            // alias to the entry, a no (remembered) an answer of its own, stored
            // when it is next asked. Storing this answer now would shadow the alias.
            return (None, verdict_coming);
        }
        let payer = request.payer();
        let verdict =
            crate::verify::verify(&semantic.calls, &config, &payer, settings, template.as_deref(), shown, &texts).await;
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                semantic.calls.ledger.verification(request.namespace.as_str(), 0.0);
                tracing::warn!(error = %e, "verification failed; treating as a miss");
                return (None, false);
            }
        };
        let Some(chosen) = verdict.chosen.and_then(|i| asked.get(i)) else {
            for c in &asked {
                semantic.rejections.insert(request.key, c.entry.id);
            }
            return (None, false);
        };
        (Some(self.serve_verified(&chosen.entry, chosen.similarity, verdict.cost_usd).await), false)
    }

    /// Serves an entry the verifier said yes to, counts the hit and learns
    /// the request's key as an alias of the entry.
    pub async fn serve_verified(&self, entry: &Entry, similarity: f32, cost_usd: f64) -> Outcome {
        let (request, semantic) = (self.request, self.semantic);
        let now = deja_cache::now_ms();
        if let Err(e) = semantic.store.record_hit(&entry.id, now) {
            tracing::warn!(error = %e, "could not count a verified hit");
        }
        // A cache-control that forbids storing also forbids learning an alias.
        // The alias is a sled transaction: written on a blocking thread, before
        // the answer goes, so the next identical request finds it.
        if request.policy.writes() {
            let (store, key, id) = (semantic.store.clone(), request.key, entry.id);
            match tokio::task::spawn_blocking(move || store.add_alias(&key, &id, similarity)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
                Err(e) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
            }
        }
        let found = Found {
            kind: HitKind::Semantic { similarity },
            entry,
            now_ms: now,
            verification_usd: Some(cost_usd),
            route: self.looked.route.as_deref(),
        };
        semantic.hits.entry(request, found)
    }
}
