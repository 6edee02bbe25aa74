//! Sentence embeddings for the semantic cache.
//!
//! [`Embedder`] is the small synchronous trait backends implement;
//! [`EmbedService`] runs one on a dedicated thread, off the async runtime,
//! and folds concurrent requests into micro-batches.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod batch;
mod fast;
mod hashed;

pub use batch::{BatchObserver, EmbedService};
pub use fast::{EmbeddingModel, FastEmbedder, ModelPaths};
pub use hashed::HashEmbedder;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files: {0}")]
    Files(String),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("the embedding worker has stopped")]
    Stopped,
}

/// Turns texts into unit-length vectors of `dim()` dimensions.
pub trait Embedder: Send + Sync {
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// The most tokens (special tokens included) the model reads of one
    /// text; the rest of a longer text does not reach its vector.
    fn window(&self) -> usize {
        usize::MAX
    }

    /// What the model reads of `text`. The default suits embedders that
    /// read every word and know every character.
    fn read(&self, text: &str) -> Reading {
        Reading { tokens: text.split_whitespace().count(), unknown: 0, unknown_digest: 0 }
    }
}

/// How much of a text a model can see: its length in the model's tokens and
/// the pieces its vocabulary cannot represent (they all become one unknown
/// token, so two texts differing only there get the same vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// Tokens, the model's special tokens included.
    pub tokens: usize,
    /// Tokens the vocabulary maps to its unknown token.
    pub unknown: usize,
    /// A digest of the unknown pieces' own text, in order: two texts whose
    /// unknown pieces differ have different digests.
    pub unknown_digest: u64,
}

impl Reading {
    /// The share of the tokens the model cannot represent.
    pub fn unknown_share(&self) -> f32 {
        if self.tokens == 0 {
            0.0
        } else {
            self.unknown as f32 / self.tokens as f32
        }
    }
}

/// Cosine similarity of two unit vectors (their dot product), with eight
/// accumulators so the compiler vectorises it.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

pub(crate) fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
