//! Labelled question pairs and their vectors, for the benchmarks that need
//! real questions: read once, embedded once with the shipped model and
//! cached on disk between runs.

use deja_embed::{Embedder, FastEmbedder, ModelPaths};
use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::Instant;

pub const DIM: usize = 384;

/// One labelled pair: `same` when the two questions have the same answer.
pub struct Pair {
    pub a: String,
    pub b: String,
    pub same: bool,
}

/// JSON lines with `a`, `b` and `same` (gzip or plain).
pub fn read_pairs(path: &Path) -> Vec<Pair> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(reader).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let text = |k: &str| v.get(k).and_then(|q| q.as_str()).map(str::to_string);
        if let (Some(a), Some(b)) = (text("a"), text("b")) {
            out.push(Pair { a, b, same: v.get("same").and_then(|s| s.as_bool()).unwrap_or(false) });
        }
    }
    out
}

/// Every distinct question, in the order first seen.
pub fn distinct(pairs: &[Pair]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in pairs {
        for q in [&p.a, &p.b] {
            if seen.insert(q.as_str()) {
                out.push(q.clone());
            }
        }
    }
    out
}

/// The questions' vectors, from the cache file when it holds exactly as many.
pub fn vectors_of(questions: &[String], cache: &Path, models: &Path) -> Vec<Vec<f32>> {
    if let Ok(bytes) = std::fs::read(cache) {
        if bytes.len() == questions.len() * DIM * 4 {
            return bytes
                .chunks_exact(DIM * 4)
                .map(|c| c.chunks_exact(4).map(|f| f32::from_le_bytes([f[0], f[1], f[2], f[3]])).collect())
                .collect();
        }
    }
    let embedder = FastEmbedder::load(&ModelPaths::in_dir(models), 2).unwrap_or_else(|e| panic!("model: {e}"));
    let t = Instant::now();
    let mut out = Vec::with_capacity(questions.len());
    for (i, chunk) in questions.chunks(256).enumerate() {
        out.extend(embedder.embed_batch(chunk).unwrap_or_else(|e| panic!("embed: {e}")));
        if i % 40 == 0 {
            eprintln!("embedded {} of {} in {:.0}s", out.len(), questions.len(), t.elapsed().as_secs_f64());
        }
    }
    let mut file = std::fs::File::create(cache).unwrap_or_else(|e| panic!("{}: {e}", cache.display()));
    for v in &out {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        file.write_all(&bytes).unwrap_or_else(|e| panic!("write: {e}"));
    }
    out
}
