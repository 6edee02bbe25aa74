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
pub use fast::{FastEmbedder, ModelPaths};
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
