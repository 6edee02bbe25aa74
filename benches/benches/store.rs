use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deja_benches::filled_store;

fn store(c: &mut Criterion) {
    let (store, ids, _, _) = filled_store(10_000);
    let mut i = 0usize;
    c.bench_function("exact lookup hit (10k entries, counts the hit)", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            deja_cache::exact::lookup(&store, black_box(&ids[i]), 2).unwrap_or_else(|e| panic!("{e}"))
        })
    });
    let missing = deja_api::CacheKey([0xee; 32]);
    c.bench_function("exact lookup miss (10k entries)", |b| {
        b.iter(|| deja_cache::exact::lookup(&store, black_box(&missing), 2).unwrap_or_else(|e| panic!("{e}")))
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
