//! all-MiniLM-L6-v2 on short questions: the model Deja loads
//! (`minilm/model.onnx`, int8 with integer kernels, one forward pass per
//! text) against the baseline export kept beside it
//! (`minilm/baseline-int8-storage.onnx`, weights dequantized to fp32 on every
//! call, a batch in one pass), in the same run.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_embed::{Embedder, FastEmbedder, ModelPaths};
use std::path::Path;

fn embed(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let models = [("int8-dynamic", ModelPaths::in_dir(&dir)), ("baseline", ModelPaths::baseline_in_dir(&dir))];
    let mut group = c.benchmark_group("embedding");
    for (label, paths) in &models {
        for threads in [1usize, 2] {
            let model = FastEmbedder::load(paths, threads).unwrap_or_else(|e| panic!("{e}"));
            let one = vec!["What time does the store open on Saturdays?".to_string()];
            group.bench_function(format!("{label}: 1 question, {threads} thread(s)"), |b| {
                b.iter(|| model.embed_batch(black_box(&one)))
            });
            let batch: Vec<String> =
                (0..16).map(|i| format!("What time does store number {i} open on Saturdays?")).collect();
            group.bench_function(format!("{label}: batch of 16 questions, {threads} thread(s)"), |b| {
                b.iter(|| model.embed_batch(black_box(&batch)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
