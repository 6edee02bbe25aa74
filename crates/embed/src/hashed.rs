//! A deterministic embedder for tests where the model is not the point:
//! hashed word unigrams and character trigrams, so texts sharing words are close.

use crate::{normalize, EmbedError, Embedder};

pub struct HashEmbedder {
    dim: usize,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> Self {
        Self { dim: dim.max(8) }
    }

    /// Adds `weight`, signed by the feature's hash, to the feature's bucket
    /// (`v` is `dim` long, and the bucket is taken modulo `dim`).
    fn add(&self, v: &mut [f32], feature: &str, weight: f32) {
        let h = blake3::hash(feature.as_bytes());
        let b = h.as_bytes();
        let idx = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize % self.dim;
        let sign = if b[4] & 1 == 0 { 1.0 } else { -1.0 };
        if let Some(slot) = v.get_mut(idx) {
            *slot += weight * sign;
        }
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            self.add(&mut v, word, 2.0);
            let chars: Vec<char> = format!(" {word} ").chars().collect();
            for w in chars.windows(3) {
                self.add(&mut v, &w.iter().collect::<String>(), 1.0);
            }
        }
        normalize(v)
    }
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        "hash-test-embedder"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}
