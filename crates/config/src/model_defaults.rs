//! Semantic defaults per embedding model. A cosine of one model is not a
//! cosine of another, so the threshold and the grey band are chosen per
//! model with `deja eval` on a tuning split and reported on a held-out split
//! (benches/README.md, "Per-model defaults").
//!
//! With a verifier configured, a candidate above the threshold is served
//! without asking it, so the threshold moves up to where almost nothing but
//! paraphrases lies, and the band below it goes to the verifier.

use deja_embed::EmbeddingModel;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticDefaults {
    pub threshold: f32,
    pub verify_from: f32,
}

/// The defaults for `model` (`None`: the hashed test embedder, treated as
/// MiniLM), with or without a verifier.
pub fn semantic_defaults(model: Option<EmbeddingModel>, verifier: bool) -> SemanticDefaults {
    let (threshold, verify_from) = match (model.unwrap_or(EmbeddingModel::MiniLm), verifier) {
        (EmbeddingModel::MiniLm, false) => (0.94, 0.80),
        (EmbeddingModel::MiniLm, true) => (0.985, 0.75),
        (EmbeddingModel::Gemma, false) => (0.965, 0.85),
        (EmbeddingModel::Gemma, true) => (0.98, 0.85),
    };
    SemanticDefaults { threshold, verify_from }
}

/// The threshold with no verifier, for the model Deja ships by default.
pub fn default_threshold() -> f32 {
    semantic_defaults(None, false).threshold
}
