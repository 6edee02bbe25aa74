//! One forward pass of all-MiniLM-L6-v2 (int8) on short questions.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_embed::{Embedder, FastEmbedder, ModelPaths};
use std::path::Path;

fn embed(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut group = c.benchmark_group("embedding");
    for threads in [1usize, 2] {
        let model = FastEmbedder::load(&ModelPaths::in_dir(&dir), threads).unwrap_or_else(|e| panic!("{e}"));
        let one = vec!["What time does the store open on Saturdays?".to_string()];
        group.bench_function(format!("1 question, {threads} thread(s)"), |b| {
            b.iter(|| model.embed_batch(black_box(&one)))
        });
        let batch: Vec<String> =
            (0..16).map(|i| format!("What time does store number {i} open on Saturdays?")).collect();
        group.bench_function(format!("batch of 16 questions, {threads} thread(s)"), |b| {
            b.iter(|| model.embed_batch(black_box(&batch)))
        });
    }
    group.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
