//! Start-up of the semantic index: rebuilding it from sled against loading
//! its last save, in the same run, on the same store.
//!
//! `cargo run --release -p deja-benches --bin restart -- 10000 100000`
//!
//! For each size: fill a store on disk (one context, seeded random 384-d
//! unit vectors), rebuild the index from it (what every start did before),
//! save it, then restore it into a fresh index on the reopened store (what a
//! start does now). Then, for both graphs, how often a noisy copy of a stored
//! vector finds that vector first (what a paraphrase lookup relies on),
//! recall@8 against a brute-force scan, and the restored graph's search
//! latency.

use deja_api::ContextFingerprint;
use deja_benches::{dir_mib, fill_store, rng, rss_mib, unit_vector};
use deja_cache::{graphs_dir, SemanticIndex};
use deja_embed::cosine;
use deja_store::Store;
use std::time::Instant;

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    for n in sizes {
        run(n);
    }
}

fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (fp, vectors) = {
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        let (_, fp, vectors) = fill_store(&store, n);
        store.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        (fp, vectors)
    };
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let graphs = graphs_dir(&store).unwrap_or_else(|| panic!("a store on disk"));

    let rss0 = rss_mib();
    let t = Instant::now();
    let rebuilt = SemanticIndex::new();
    rebuilt.rebuild_from(&store).unwrap_or_else(|e| panic!("rebuild: {e}"));
    let rebuild_s = t.elapsed().as_secs_f64();
    let rss_rebuilt = rss_mib() - rss0;

    let t = Instant::now();
    let saved = rebuilt.save(&store, &graphs).unwrap_or_else(|e| panic!("save: {e}"));
    let save_s = t.elapsed().as_secs_f64();
    drop(store);

    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let rss1 = rss_mib();
    let t = Instant::now();
    let loaded = SemanticIndex::new();
    loaded.restore(&store, &graphs).unwrap_or_else(|e| panic!("restore: {e}"));
    let restore_s = t.elapsed().as_secs_f64();
    let rss_loaded = rss_mib() - rss1;

    // Search on the loaded graph: noisy copies of stored vectors, as paraphrases are.
    let mut r = rng();
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|i| {
            let noise = unit_vector(&mut r, 384);
            let base = vectors.get(i * 977 % n).unwrap_or_else(|| panic!("vector"));
            let mut q: Vec<f32> = base.iter().zip(&noise).map(|(a, b)| a + 0.2 * b).collect();
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            q.iter_mut().for_each(|x| *x /= norm);
            q
        })
        .collect();
    let restored = quality(&loaded, &store, &fp, &queries, &vectors, n);
    let before = quality(&rebuilt, &store, &fp, &queries, &vectors, n);
    let mut times = restored.times_ms;
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0.0);
    let sled_mib = dir_mib(dir.path()) - dir_mib(&graphs);
    eprintln!(
        "n={n}: rebuild {rebuild_s:.2}s (+{rss_rebuilt:.0} MiB RSS) | save {save_s:.2}s, {:.0} MiB on disk | \
         restore {restore_s:.2}s (+{rss_loaded:.0} MiB RSS) = {:.1}x faster | search p50 {:.2} ms p99 {:.2} ms | \
         original found first: restored {:.3}, rebuilt {:.3} | recall@8: restored {:.3}, rebuilt {:.3} | sled {sled_mib:.0} MiB",
        saved.bytes as f64 / 1048576.0,
        rebuild_s / restore_s.max(1e-9),
        pct(0.5),
        pct(0.99),
        restored.found_first,
        before.found_first,
        restored.recall_at_8,
        before.recall_at_8,
    );
}

struct Quality {
    times_ms: Vec<f64>,
    /// Share of queries whose first result is the vector they were made from.
    found_first: f64,
    recall_at_8: f64,
}

fn quality(
    index: &SemanticIndex,
    store: &Store,
    fp: &ContextFingerprint,
    queries: &[Vec<f32>],
    vectors: &[Vec<f32>],
    n: usize,
) -> Quality {
    let mut q = Quality { times_ms: Vec::new(), found_first: 0.0, recall_at_8: 0.0 };
    for (i, query) in queries.iter().enumerate() {
        let t = Instant::now();
        let got = index.search(store, fp, query, 8).unwrap_or_else(|e| panic!("search: {e}"));
        q.times_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let original = vectors.get(i * 977 % n).map_or(0.0, |v| cosine(query, v));
        if got.first().is_some_and(|c| c.similarity >= original - 1e-6) {
            q.found_first += 1.0;
        }
        let mut exact: Vec<f32> = vectors.iter().map(|v| cosine(query, v)).collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        let cut = exact.get(7).copied().unwrap_or(1.0) - 1e-6;
        q.recall_at_8 += got.iter().filter(|c| c.similarity >= cut).count().min(8) as f64 / 8.0;
    }
    q.found_first /= queries.len() as f64;
    q.recall_at_8 /= queries.len() as f64;
    q
}
