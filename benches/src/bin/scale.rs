//! The semantic index at scale on real question vectors: start-up (rebuild
//! against restore), memory, disk, search latency and how often a search
//! finds the true nearest entry, for each search breadth.
//!
//! `cargo run --release -p deja-benches --bin scale -- \
//!     --pairs ../shared/data/qqp_pairs.jsonl.gz --sizes 10000,100000 --contexts 1,1000`
//!
//! Every distinct question of the pairs file is embedded once with the
//! shipped model (cached in `--vectors`, so later runs skip it). The last
//! 500 questions are the queries and never stored; the stores are filled
//! from the others, in one context or spread evenly over `--contexts`
//! contexts. Sizes beyond the number of distinct questions are filled with
//! noisy copies of them (cosine ≈ 0.95 to their source), said so in the
//! output.

use clap::Parser;
use deja_api::ContextFingerprint;
use deja_benches::{dir_mib, put_vectors, questions, rss_mib};
use deja_cache::{graphs_dir, SemanticIndex};
use deja_embed::cosine;
use deja_store::Store;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

const QUERIES: usize = 500;

#[derive(Parser)]
struct Args {
    /// Labelled question pairs, JSON lines with `a` and `b` (gzip or plain).
    #[arg(long)]
    pairs: PathBuf,
    /// Where the questions' vectors are cached between runs.
    #[arg(long, default_value = "target/scale-vectors.f32")]
    vectors: PathBuf,
    /// Directory of the embedding model.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "1")]
    contexts: Vec<usize>,
    /// Search breadths (HNSW ef) to measure.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256")]
    breadths: Vec<usize>,
}

fn main() {
    let args = Args::parse();
    let questions = questions::distinct(&questions::read_pairs(&args.pairs));
    let all = questions::vectors_of(&questions, &args.vectors, &args.models);
    let (stored, queries) = all.split_at(all.len().saturating_sub(QUERIES));
    eprintln!("{} distinct questions: {} to store, {} queries", all.len(), stored.len(), queries.len());
    for &contexts in &args.contexts {
        for &n in &args.sizes {
            run(stored, queries, n, contexts.max(1), &args.breadths);
        }
    }
}

fn run(real: &[Vec<f32>], queries: &[Vec<f32>], n: usize, contexts: usize, breadths: &[usize]) {
    let vectors = widen(real, n);
    let synthetic = n.saturating_sub(real.len());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fps: Vec<ContextFingerprint> = (0..contexts).map(fingerprint).collect();
    // Context c holds vectors c, c + contexts, c + 2·contexts, …
    let members: Vec<Vec<usize>> = (0..contexts).map(|c| (c..n).step_by(contexts).collect()).collect();
    let t = Instant::now();
    {
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        for (fp, idx) in fps.iter().zip(&members) {
            let group: Vec<Vec<f32>> = idx.iter().filter_map(|&i| vectors.get(i).cloned()).collect();
            put_vectors(&store, fp, &group);
        }
        store.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    }
    let fill_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let open_s = t.elapsed().as_secs_f64();
    let graphs = graphs_dir(&store).unwrap_or_else(|| panic!("a store on disk"));
    let rss0 = rss_mib();
    let t = Instant::now();
    let rebuilt = SemanticIndex::new();
    rebuilt.rebuild_from(&store).unwrap_or_else(|e| panic!("rebuild: {e}"));
    let rebuild_s = t.elapsed().as_secs_f64();
    let rss_rebuilt = rss_mib() - rss0;
    let saved = rebuilt.save(&store, &graphs).unwrap_or_else(|e| panic!("save: {e}"));
    drop(rebuilt);
    drop(store);

    let rss1 = rss_mib();
    let t = Instant::now();
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let index = SemanticIndex::new();
    index.restore(&store, &graphs).unwrap_or_else(|e| panic!("restore: {e}"));
    let start_s = t.elapsed().as_secs_f64();
    let rss_loaded = rss_mib() - rss1;
    eprintln!(
        "n={n} ({synthetic} noisy copies) in {contexts} context(s): fill {fill_s:.1}s | store open {open_s:.2}s | \
         rebuild {rebuild_s:.2}s (+{rss_rebuilt:.0} MiB) | start from save {start_s:.2}s (+{rss_loaded:.0} MiB, \
         RSS {:.0} MiB) | disk: sled {:.0} MiB + graphs {:.0} MiB",
        rss_mib(),
        dir_mib(dir.path()) - dir_mib(&graphs),
        saved.bytes as f64 / 1048576.0,
    );

    // Each query searches one context, round robin; the truth is a brute-force scan of it.
    let truth: Vec<(usize, f32)> = queries
        .iter()
        .enumerate()
        .map(|(q, v)| {
            let c = q % contexts;
            let best = members[c].iter().map(|&i| cosine(v, &vectors[i])).fold(f32::MIN, f32::max);
            (c, best)
        })
        .collect();
    let top8: Vec<f32> = queries
        .iter()
        .zip(&truth)
        .map(|(v, (c, _))| {
            let mut s: Vec<f32> = members[*c].iter().map(|&i| cosine(v, &vectors[i])).collect();
            s.sort_by(|a, b| b.total_cmp(a));
            s.get(7).copied().unwrap_or(f32::MIN)
        })
        .collect();
    for &ef in breadths {
        index.set_search_breadth(ef);
        let (mut times, mut first, mut recall, mut hits_lost) = (Vec::new(), 0usize, 0.0, 0usize);
        for (q, v) in queries.iter().enumerate() {
            let (c, best) = truth[q];
            let t = Instant::now();
            let got = index.search(&store, &fps[c], v, 8).unwrap_or_else(|e| panic!("search: {e}"));
            times.push(t.elapsed().as_secs_f64() * 1e3);
            let found = got.first().map_or(f32::MIN, |c| c.similarity);
            if found >= best - 1e-5 {
                first += 1;
            } else if best >= 0.80 && found < 0.80 {
                // The true neighbour was in the verifier's band or above, and the search fell below it.
                hits_lost += 1;
            }
            recall += got.iter().filter(|g| g.similarity >= top8[q] - 1e-5).count().min(8) as f64 / 8.0;
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0.0);
        eprintln!(
            "  ef {ef:>4}: search p50 {:.3} ms p99 {:.3} ms | nearest found {:.3} | recall@8 {:.3} | \
             candidates ≥ 0.80 lost {hits_lost}",
            pct(0.5),
            pct(0.99),
            first as f64 / queries.len() as f64,
            recall / queries.len() as f64,
        );
    }
}

fn fingerprint(c: usize) -> ContextFingerprint {
    let mut fp = [0u8; 32];
    fp[..8].copy_from_slice(&(c as u64 + 1).to_le_bytes());
    ContextFingerprint(fp)
}

/// `real`, then noisy copies of it until there are `n`.
fn widen(real: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(deja_benches::SEED);
    (0..n)
        .map(|i| {
            let base = &real[i % real.len()];
            if i < real.len() {
                return base.clone();
            }
            let noise = deja_benches::unit_vector(&mut rng, base.len());
            let scale = rng.gen_range(0.25f32..0.4);
            let mut v: Vec<f32> = base.iter().zip(&noise).map(|(a, b)| a + scale * b).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}
