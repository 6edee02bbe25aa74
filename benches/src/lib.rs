//! Shared, seeded fixtures for the benchmarks.

pub mod load;

use deja_api::{CacheKey, ChatRequest, ContextFingerprint};
use deja_store::{Entry, EntryKind, EntryUsage, SemanticMeta, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const SEED: u64 = 0x00de_1a00;

/// A typical FAQ request: system prompt, two earlier turns, a question.
pub fn faq_request(i: usize) -> ChatRequest {
    let body = json!({
        "model": "auto",
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are the support assistant of Acme Inc. Answer briefly and politely."},
            {"role": "user", "content": "Hi, I have a question about my order."},
            {"role": "assistant", "content": "Of course, what would you like to know?"},
            {"role": "user", "content": format!("When will order number {i} arrive?")}
        ]
    });
    ChatRequest::parse(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// A random unit vector.
pub fn unit_vector(rng: &mut SmallRng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

pub fn rng() -> SmallRng {
    SmallRng::seed_from_u64(SEED)
}

/// Fills a store with `n` entries (one fingerprint, random 384-d vectors).
pub fn filled_store(n: usize) -> (Store, Vec<CacheKey>, ContextFingerprint, Vec<Vec<f32>>) {
    let store = Store::temporary().unwrap_or_else(|e| panic!("store: {e}"));
    let (ids, fp, vectors) = fill_store(&store, n);
    (store, ids, fp, vectors)
}

/// Writes `n` entries (one fingerprint, random 384-d vectors) into `store`.
pub fn fill_store(store: &Store, n: usize) -> (Vec<CacheKey>, ContextFingerprint, Vec<Vec<f32>>) {
    let fp = ContextFingerprint([9; 32]);
    let mut rng = rng();
    let mut ids = Vec::with_capacity(n);
    let mut vectors = Vec::with_capacity(n);
    for i in 0..n {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let id = CacheKey(id);
        let v = unit_vector(&mut rng, 384);
        let entry = Entry {
            id,
            kind: EntryKind::Chat,
            namespace: "default".into(),
            requested_model: "auto".into(),
            answered_by: "glm-4-plus".into(),
            request: json!([{"role": "user", "content": format!("question {i}")}]),
            response: json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "glm-4-plus",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer of typical FAQ length, a sentence or two long, politely worded."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 30, "total_tokens": 90}}),
            usage: EntryUsage { prompt_tokens: 60, completion_tokens: 30 },
            cost_usd: 0.00004,
            created_ms: 1,
            expires_ms: u64::MAX,
            semantic: Some(SemanticMeta {
                fingerprint: fp.to_hex(),
                text: format!("question {i}"),
                conversation: None,
            }),
        };
        store.put(&entry, Some(&v)).unwrap_or_else(|e| panic!("put: {e}"));
        ids.push(id);
        vectors.push(v);
    }
    (ids, fp, vectors)
}
