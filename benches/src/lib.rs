//! Shared, seeded fixtures for the benchmarks.

pub mod load;
pub mod questions;

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
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| unit_vector(&mut rng, 384)).collect();
    let ids = put_vectors(store, &fp, &vectors);
    (ids, fp, vectors)
}

/// Writes one FAQ-sized entry per vector into `store`, all under `fp`.
pub fn put_vectors(store: &Store, fp: &ContextFingerprint, vectors: &[Vec<f32>]) -> Vec<CacheKey> {
    let mut ids = Vec::with_capacity(vectors.len());
    for (i, v) in vectors.iter().enumerate() {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        id[8..16].copy_from_slice(&fp.0[..8]);
        let id = CacheKey(id);
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
                vector_of: None,
            }),
        };
        store.put(&entry, Some(v)).unwrap_or_else(|e| panic!("put: {e}"));
        ids.push(id);
    }
    ids
}

/// Bytes under `path`, in MiB.
pub fn dir_mib(path: &std::path::Path) -> f64 {
    let mut total = 0u64;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += (dir_mib(&e.path()) * 1048576.0) as u64,
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64 / 1048576.0
}

/// Resident memory of this process, from /proc.
pub fn rss_mib() -> f64 {
    rss_mib_of("self")
}

/// Resident memory of process `pid` ("self" for this one), from /proc.
pub fn rss_mib_of(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}
