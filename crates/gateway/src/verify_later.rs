//! `mode = "async"`: a grey-band candidate is verified after the request
//! was answered upstream (after Krites): the critical path is the threshold
//! alone, and the verifier's yes is served from the wording's next ask.

use crate::config::Config;
use crate::verify::Rejections;
use crate::verify::{verify, Payer};
use crate::walker::Calls;
use deja_api::CacheKey;
use deja_store::Store;
use std::sync::Arc;

/// A grey-band question verified after its answer went (`mode = "async"`).
pub struct Later {
    pub calls: Arc<Calls>,
    pub rejections: Arc<Rejections>,
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub key: CacheKey,
    pub payer: Payer,
    /// Whether the request's cache policy allows learning an alias.
    pub learn: bool,
    pub template: Option<String>,
    pub question: String,
    pub texts: Vec<String>,
    /// The candidates' ids and similarities, in the order of `texts`.
    pub candidates: Vec<(CacheKey, f32)>,
}

/// Asks the verifier in the background: a yes learns the question's key as
/// an alias of the chosen entry (served from the wording's next ask); a no,
/// or a verification that failed, is remembered so the pair is never asked
/// again and the wording's next answer is stored as its own (as a failed
/// synchronous verification leaves it). Concurrent asks of the same wording
/// are verified once. True when a verdict for this wording is coming, so
/// its answer now must not be stored.
pub fn verify_later(later: Later) -> bool {
    let Some(settings) = later.config.cache.verifier.clone() else { return false };
    match later.rejections.start_verifying(later.key) {
        crate::verify::Claim::Started => {}
        crate::verify::Claim::Pending => return true,
        crate::verify::Claim::Full => return false,
    }
    tokio::spawn(async move {
        let Later { calls, rejections, store, config, key, payer, learn, template, question, texts, candidates } =
            later;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let verdict = verify(&calls, &config, &payer, &settings, template.as_deref(), &question, &refs).await;
        let verdict = match verdict {
            Ok(v) => v,
            // Past the client's budget nothing was asked: ask again another time.
            Err(e) if matches!(e.kind, deja_api::ErrorKind::InsufficientQuota) => {
                rejections.done_verifying(&key);
                return;
            }
            Err(e) => {
                calls.ledger.verification(&payer.namespace, 0.0);
                tracing::warn!(error = %e, "background verification failed; the wording gets its own answer");
                for (id, _) in &candidates {
                    rejections.insert(key, *id);
                }
                rejections.done_verifying(&key);
                return;
            }
        };
        match verdict.chosen.and_then(|i| candidates.get(i)).copied() {
            Some((id, similarity)) if learn => {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.add_alias(&key, &id, similarity)).await {
                    Ok(Ok(_)) => tracing::debug!(similarity, "background verification learned an alias"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
                    Err(e) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
                }
            }
            Some(_) => {}
            None => {
                for (id, _) in &candidates {
                    rejections.insert(key, *id);
                }
            }
        }
        rejections.done_verifying(&key);
    });
    true
}
