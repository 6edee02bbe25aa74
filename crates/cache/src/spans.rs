//! Vectors of the differing parts of templated texts, kept for reuse: in
//! templated traffic the same stored inputs are compared with every new one,
//! and re-embedding each on every lookup would dominate its cost.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// A bounded map from a text to its vector, oldest dropped first. Vectors
/// come from one model: a state holds one `SpanVectors` beside its embedder.
pub struct SpanVectors {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    vectors: HashMap<[u8; 32], Vec<f32>>,
    order: VecDeque<[u8; 32]>,
}

impl SpanVectors {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    fn key(text: &str) -> [u8; 32] {
        *blake3::hash(text.as_bytes()).as_bytes()
    }

    pub fn get(&self, text: &str) -> Option<Vec<f32>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.vectors.get(&Self::key(text)).cloned()
    }

    pub fn put(&self, text: &str, vector: Vec<f32>) {
        let key = Self::key(text);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.vectors.insert(key, vector).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.vectors.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_capacity_dropping_the_oldest() {
        let s = SpanVectors::new(2);
        s.put("a", vec![1.0]);
        s.put("b", vec![2.0]);
        s.put("c", vec![3.0]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("a"), None);
        assert_eq!(s.get("c"), Some(vec![3.0]));
    }
}
