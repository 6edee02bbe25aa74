//! The conversation index at 100k entries: a lookup scans one coarse
//! context's newest `GROUP_MAX` entries, whatever the store holds; removing
//! an entry is O(1). Measured with all 100k in one busy context (the worst
//! case: one system prompt) and spread over 100 contexts.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_api::{CacheKey, ContextFingerprint};
use deja_benches::{rng, unit_vector};
use deja_cache::conversation::{ConversationIndex, ConversationQuery, Floors, GROUP_MAX};
use deja_cache::semantic::Reader;
use deja_cache::GuardSettings;
use deja_embed::HashEmbedder;
use deja_store::Store;
use std::time::Instant;

const ENTRIES: u32 = 100_000;

fn id(n: u32) -> CacheKey {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&n.to_le_bytes());
    CacheKey(k)
}

fn conversations(c: &mut Criterion) {
    let store = Store::temporary().unwrap_or_else(|e| panic!("{e}"));
    let model = HashEmbedder::new(384);
    let reader = Reader { model: &model, spans: None };
    let mut r = rng();
    let vectors: Vec<Vec<f32>> = (0..1024).map(|_| unit_vector(&mut r, 384)).collect();
    let vector = |n: u32| &vectors[n as usize % vectors.len()];
    let mut group = c.benchmark_group("conversation index, 100k entries");
    group.sample_size(30);
    for contexts in [1u8, 100] {
        let index = ConversationIndex::default();
        let started = Instant::now();
        for n in 0..ENTRIES {
            let coarse = ContextFingerprint([(n % u32::from(contexts)) as u8; 32]);
            index.insert(id(n), &coarse, vector(n), vector(n + 1));
        }
        eprintln!(
            "{contexts} context(s): {ENTRIES} inserts in {:.2}s, {} indexed (at most {GROUP_MAX} per context)",
            started.elapsed().as_secs_f64(),
            index.len()
        );
        let (coarse, fine) = (ContextFingerprint([0; 32]), ContextFingerprint([255; 32]));
        let (question, history) = (unit_vector(&mut r, 384), unit_vector(&mut r, 384));
        let query = ConversationQuery {
            namespace: "default",
            coarse: &coarse,
            fine: &fine,
            question: &question,
            history: &history,
            text: "cancel it",
        };
        let floors = Floors { question: 0.8, history: 0.5, max: 6 };
        let guards = GuardSettings::default();
        group.bench_function(format!("lookup, {contexts} context(s)"), |b| {
            b.iter(|| black_box(index.candidates(&store, &query, &guards, reader, floors, 1).map(|c| c.len())))
        });
        let mut n = 0;
        group.bench_function(format!("remove and insert, {contexts} context(s)"), |b| {
            b.iter(|| {
                let k = ENTRIES - 1 - (n % 1000);
                n += 1;
                index.remove(&id(k));
                index.insert(id(k), &ContextFingerprint([(k % u32::from(contexts)) as u8; 32]), vector(k), vector(k));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, conversations);
criterion_main!(benches);
