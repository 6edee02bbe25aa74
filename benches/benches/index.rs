//! Semantic index search and rebuild at growing sizes. 1M entries is opt-in
//! (`DEJA_BENCH_1M=1`): it needs several GiB and many minutes on two cores.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use deja_benches::{filled_store, rng, unit_vector};
use deja_cache::SemanticIndex;
use std::time::Instant;

fn index(c: &mut Criterion) {
    let mut sizes = vec![10_000usize, 100_000];
    if std::env::var_os("DEJA_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    let mut group = c.benchmark_group("semantic index");
    group.sample_size(20);
    for n in sizes {
        let (store, _, fp, vectors) = filled_store(n);
        let index = SemanticIndex::new();
        let rss_before = rss_mib();
        let started = Instant::now();
        index.rebuild_from(&store).unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "rebuild of {n} vectors from sled: {:.2}s, index memory ~{:.0} MiB (RSS growth)",
            started.elapsed().as_secs_f64(),
            rss_mib() - rss_before
        );
        let mut r = rng();
        let queries: Vec<Vec<f32>> = (0..64)
            .map(|i| {
                // Near-duplicates of stored vectors, as paraphrases are.
                let noise = unit_vector(&mut r, 384);
                let mut q: Vec<f32> = vectors[i * 97 % n].iter().zip(&noise).map(|(a, b)| a + 0.2 * b).collect();
                let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                q.iter_mut().for_each(|x| *x /= norm);
                q
            })
            .collect();
        let mut i = 0;
        group.bench_with_input(BenchmarkId::new("search k=8", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.search(&store, black_box(&fp), black_box(&queries[i]), 8).unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    group.finish();
}

/// Resident memory of this process, from /proc.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

criterion_group!(benches, index);
criterion_main!(benches);
