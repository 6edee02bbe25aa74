//! `deja eval`: how a threshold and the guards trade served duplicates
//! against wrong answers, on a labelled pairs file (`{"a","b","same"}` JSONL,
//! optionally gzipped; an optional `"kind"` names what a pair tests).
//!
//! `a` is the question already cached, `b` the new request. `report.rs`
//! prints the threshold curve, `bands.rs` the three bands (served, asked the
//! verifier, missed) and what the verifier costs, `judge.rs` replays pairs
//! through the configured verifier.

pub mod bands;
pub mod judge;
mod report;

pub use report::{by_kind, report};

use deja_cache::{Comparer, GuardSettings, Guards};
use deja_embed::{cosine, Embedder};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One labelled pair.
#[derive(Debug, Clone, Deserialize)]
pub struct Pair {
    /// The cached question.
    pub a: String,
    /// The new request.
    pub b: String,
    /// Whether `a`'s correct answer is `b`'s.
    pub same: bool,
    /// What the pair tests ("paraphrase", "negation", "entity", ...), if labelled.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub similarity: f32,
    pub same: bool,
    /// Per guard (numbers, negation, entities, question_type): would it refuse?
    pub refused: [bool; 4],
}

/// Reads up to `limit` pairs, spread evenly over the file.
pub fn read_pairs(path: &Path, limit: usize) -> Result<Vec<(String, String, bool)>, String> {
    Ok(read_labelled(path, limit)?.into_iter().map(|p| (p.a, p.b, p.same)).collect())
}

/// Reads up to `limit` pairs with their labels, spread evenly over the file.
pub fn read_labelled(path: &Path, limit: usize) -> Result<Vec<Pair>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut all = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let p: Pair = serde_json::from_str(&line).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        all.push(p);
    }
    if limit == 0 || all.len() <= limit {
        return Ok(all);
    }
    let step = all.len() as f64 / limit as f64;
    Ok((0..limit).filter_map(|i| all.get((i as f64 * step) as usize).cloned()).collect())
}

/// The similarity a lookup decides each pair on, `batch` pairs per forward
/// pass: the whole texts' cosine, or, when they share segments, that of what
/// differs (`deja_cache::compare`). A pair the model cannot read, or where one
/// text adds segments to a long shared one, scores 0: it is never served.
pub fn similarities(
    embedder: &dyn Embedder,
    pairs: &[(String, String, bool)],
    batch: usize,
) -> Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(pairs.len());
    // The guards are judged per pair by `score`, with each setting.
    let guards = GuardSettings::none();
    for chunk in pairs.chunks(batch.max(1)) {
        let texts: Vec<String> = chunk.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        let vectors = embedder.embed_batch(&texts).map_err(|e| e.to_string())?;
        if vectors.len() != texts.len() {
            return Err(format!("the embedder returned {} vectors for {} texts", vectors.len(), texts.len()));
        }
        for ((a, b, _), v) in chunk.iter().zip(vectors.chunks_exact(2)) {
            let whole = match v {
                [va, vb] => cosine(va, vb),
                _ => 0.0,
            };
            let compared = Comparer::new(embedder, &guards, None, b).compare(a, whole).map_err(|e| e.to_string())?;
            out.push(if compared.refusal.is_some() { 0.0 } else { compared.similarity });
        }
    }
    Ok(out)
}

impl Scored {
    /// Whether every guard on in `mask` lets the pair through.
    pub fn passes(&self, mask: [bool; 4]) -> bool {
        !self.refused.iter().zip(mask).any(|(r, m)| *r && m)
    }
}

/// Judges every pair with every guard alone, on what differs between its texts.
pub fn score(pairs: &[(String, String, bool)], similarities: &[f32]) -> Vec<Scored> {
    pairs
        .iter()
        .zip(similarities)
        .map(|((a, b, same), &similarity)| {
            // As a lookup runs them: on what differs when the texts share segments.
            let d = deja_cache::compare::differing(b, a);
            let framed = d.shared_bytes > 0 && !d.query.is_empty() && !d.candidate.is_empty();
            let (a, b) = if framed { (d.candidate, d.query) } else { (a.as_str(), b.as_str()) };
            let (fa, fb) = (Guards::features(a), Guards::features(b));
            let only = |f: fn(&mut GuardSettings)| {
                let mut s = GuardSettings::none();
                f(&mut s);
                Guards::check(&s, &fa, &fb).is_some()
            };
            Scored {
                similarity,
                same: *same,
                refused: [
                    only(|s| s.numbers = true),
                    only(|s| s.negation = true),
                    only(|s| s.entities = true),
                    only(|s| s.question_type = true),
                ],
            }
        })
        .collect()
}

/// Similarities saved by an earlier run for the same pairs and model, so
/// guard settings can be re-evaluated without embedding everything again.
pub fn load_similarities(path: &Path, expected: usize) -> Option<Vec<f32>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Vec<f32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    (v.len() == expected).then_some(v)
}

pub fn save_similarities(path: &Path, sims: &[f32]) -> std::io::Result<()> {
    let text: String = sims.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(path, text)
}

/// (duplicates served, non-duplicates served) as fractions at `threshold`,
/// with the guards in `mask` on.
pub fn rates(scored: &[Scored], threshold: f32, mask: [bool; 4]) -> (f64, f64) {
    let (mut dup, mut dup_hit, mut non, mut non_hit) = (0usize, 0usize, 0usize, 0usize);
    for s in scored {
        let served = s.similarity >= threshold && s.passes(mask);
        if s.same {
            dup += 1;
            dup_hit += usize::from(served);
        } else {
            non += 1;
            non_hit += usize::from(served);
        }
    }
    (dup_hit as f64 / dup.max(1) as f64, non_hit as f64 / non.max(1) as f64)
}

/// The lowest threshold (0.001 steps) whose false-hit rate is at most `target`.
pub fn threshold_for(scored: &[Scored], target: f64, mask: [bool; 4]) -> (f32, f64, f64) {
    let mut t = 0.70f32;
    while t < 1.0 {
        let (recall, fh) = rates(scored, t, mask);
        if fh <= target {
            return (t, recall, fh);
        }
        t += 0.001;
    }
    (1.0, 0.0, 0.0)
}

/// The area under the ROC curve of the raw similarity: the chance that a
/// duplicate pair scores above a non-duplicate one (ties count half).
pub fn auc(scored: &[Scored]) -> f64 {
    let mut by_sim: Vec<(f32, bool)> = scored.iter().map(|s| (s.similarity, s.same)).collect();
    by_sim.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut below, mut sum, mut i) = (0usize, 0.0f64, 0usize);
    while i < by_sim.len() {
        let mut j = i;
        while by_sim.get(j).is_some_and(|x| x.0 == by_sim.get(i).map_or(f32::NAN, |y| y.0)) {
            j += 1;
        }
        let tied = by_sim.get(i..j).unwrap_or_default();
        let (dups, non) = (tied.iter().filter(|x| x.1).count(), tied.iter().filter(|x| !x.1).count());
        sum += dups as f64 * (below as f64 + non as f64 / 2.0);
        below += non;
        i = j;
    }
    let dups = scored.iter().filter(|s| s.same).count();
    let non = scored.len() - dups;
    if dups == 0 || non == 0 {
        return 0.5;
    }
    sum / (dups as f64 * non as f64)
}

pub fn mask_of(g: &GuardSettings) -> [bool; 4] {
    [g.numbers, g.negation, g.entities, g.question_type]
}

pub const GUARD_NAMES: [&str; 4] = ["numbers", "negation", "entities", "question_type"];
