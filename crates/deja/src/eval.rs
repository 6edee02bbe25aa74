//! `deja eval`: how a threshold and the guards trade served duplicates
//! against wrong answers, on a labelled pairs file (`{"a","b","same"}` JSONL,
//! optionally gzipped).

use deja_cache::{GuardSettings, Guards};
use deja_embed::{cosine, Embedder};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    same: bool,
}

pub struct Scored {
    pub similarity: f32,
    pub same: bool,
    /// Per guard (numbers, negation, entities, question_type): would it refuse?
    pub refused: [bool; 4],
}

/// Reads up to `limit` pairs, spread evenly over the file.
pub fn read_pairs(path: &Path, limit: usize) -> Result<Vec<(String, String, bool)>, String> {
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
        all.push((p.a, p.b, p.same));
    }
    if limit == 0 || all.len() <= limit {
        return Ok(all);
    }
    let step = all.len() as f64 / limit as f64;
    Ok((0..limit).filter_map(|i| all.get((i as f64 * step) as usize).cloned()).collect())
}

/// Cosine similarity of every pair, `batch` pairs per forward pass.
pub fn similarities(
    embedder: &dyn Embedder,
    pairs: &[(String, String, bool)],
    batch: usize,
) -> Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let texts: Vec<String> = chunk.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]).collect();
        let vectors = embedder.embed_batch(&texts).map_err(|e| e.to_string())?;
        if vectors.len() != texts.len() {
            return Err(format!("the embedder returned {} vectors for {} texts", vectors.len(), texts.len()));
        }
        out.extend(vectors.chunks_exact(2).map(|v| match v {
            [a, b] => cosine(a, b),
            _ => 0.0,
        }));
    }
    Ok(out)
}

/// Judges every pair with every guard alone.
pub fn score(pairs: &[(String, String, bool)], similarities: &[f32]) -> Vec<Scored> {
    pairs
        .iter()
        .zip(similarities)
        .map(|((a, b, same), &similarity)| {
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
        let served = s.similarity >= threshold && !s.refused.iter().zip(mask).any(|(r, m)| *r && m);
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

pub fn mask_of(g: &GuardSettings) -> [bool; 4] {
    [g.numbers, g.negation, g.entities, g.question_type]
}

pub const GUARD_NAMES: [&str; 4] = ["numbers", "negation", "entities", "question_type"];

/// The human-readable report `deja eval` prints.
pub fn report(scored: &[Scored], guards: &GuardSettings, configured_threshold: f32, target: f64) -> String {
    use std::fmt::Write;
    let mask = mask_of(guards);
    let none = [false; 4];
    let dups = scored.iter().filter(|s| s.same).count();
    let mut out = String::new();
    let _ = writeln!(out, "pairs: {} ({} duplicates, {} non-duplicates)", scored.len(), dups, scored.len() - dups);
    let _ = writeln!(out, "\ncosine >=  | threshold alone        | with guards ({})", enabled_names(mask));
    let _ = writeln!(out, "            | dups served  false hits | dups served  false hits");
    for i in 0..=20 {
        let t = 0.80 + i as f32 * 0.01;
        let (r0, f0) = rates(scored, t, none);
        let (r1, f1) = rates(scored, t, mask);
        let _ = writeln!(
            out,
            "  {t:.2}      | {:>9.1}%  {:>9.2}% | {:>9.1}%  {:>9.2}%",
            r0 * 100.0,
            f0 * 100.0,
            r1 * 100.0,
            f1 * 100.0
        );
    }
    let (t0, r0, f0) = threshold_for(scored, target, none);
    let (t1, r1, f1) = threshold_for(scored, target, mask);
    let _ = writeln!(out, "\nfor at most {:.1}% false hits:", target * 100.0);
    let _ = writeln!(
        out,
        "  threshold alone: threshold {t0:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        r0 * 100.0,
        f0 * 100.0
    );
    let _ = writeln!(
        out,
        "  with guards:     threshold {t1:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        r1 * 100.0,
        f1 * 100.0
    );
    let (rc, fc) = rates(scored, configured_threshold, mask);
    let _ = writeln!(
        out,
        "  configured:      threshold {configured_threshold:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        rc * 100.0,
        fc * 100.0
    );
    let _ = writeln!(out, "\neach guard alone at threshold {configured_threshold:.3}:");
    for (g, name) in GUARD_NAMES.iter().enumerate() {
        let mut m = none;
        if let Some(on) = m.get_mut(g) {
            *on = true;
        }
        let (r, f) = rates(scored, configured_threshold, m);
        let _ = writeln!(out, "  {name:<14} dups served {:>5.1}%  false hits {:>5.2}%", r * 100.0, f * 100.0);
    }
    let (r, f) = rates(scored, configured_threshold, none);
    let _ = writeln!(out, "  {:<14} dups served {:>5.1}%  false hits {:>5.2}%", "(no guard)", r * 100.0, f * 100.0);
    out
}

fn enabled_names(mask: [bool; 4]) -> String {
    let names: Vec<&str> = GUARD_NAMES.iter().zip(mask).filter(|(_, m)| *m).map(|(n, _)| *n).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
