//! The shipped defaults (threshold and guards from config/deja.toml) on a
//! labelled set of customer-support paraphrases and near-misses, with the
//! real model: near-misses are never served, paraphrases mostly are.

use deja::config::Config;
use deja::eval;
use std::path::Path;

#[test]
fn defaults_serve_paraphrases_and_refuse_near_misses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = Config::load(&root.join("config/deja.toml")).expect("shipped config");
    let pairs = eval::read_pairs(&root.join("tests/data/faq_pairs.jsonl"), 0).expect("pairs");
    let sims = eval::similarities(deja_testkit::real_embedder().as_ref(), &pairs, 32).expect("embeddings");
    let scored = eval::score(&pairs, &sims);
    let mask = eval::mask_of(&config.guard_settings());
    let (served, wrong) = eval::rates(&scored, config.cache.semantic.threshold, mask);
    assert_eq!(wrong, 0.0, "a near-miss was served");
    assert!(served >= 0.5, "only {:.0}% of paraphrases served", served * 100.0);
    let (_, wrong_without_guards) = eval::rates(&scored, config.cache.semantic.threshold, [false; 4]);
    assert!(wrong_without_guards > 0.0, "the set must contain near-misses the threshold alone lets through");
}

/// The hand-written support set's tuning split (never the held-out one):
/// at the shipped threshold the guards let no trap with another number or
/// another entity through, and the grey band is where paraphrases worded
/// differently land, so a verifier there is what serves them.
#[test]
fn support_traps_with_other_numbers_or_entities_are_never_served() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = Config::load(&root.join("config/deja.toml")).expect("shipped config");
    let labelled = eval::read_labelled(&root.join("tests/data/support_pairs.tune.jsonl"), 0).expect("pairs");
    assert!(labelled.len() >= 250);
    let pairs: Vec<(String, String, bool)> = labelled.iter().map(|p| (p.a.clone(), p.b.clone(), p.same)).collect();
    let sims = eval::similarities(deja_testkit::real_embedder().as_ref(), &pairs, 32).expect("embeddings");
    let scored = eval::score(&pairs, &sims);
    let mask = eval::mask_of(&config.guard_settings());
    let sem = &config.cache.semantic;
    for (p, s) in labelled.iter().zip(&scored) {
        let kind = p.kind.as_deref().unwrap_or_default();
        if kind == "number" || kind == "entity" {
            assert!(
                !(s.similarity >= sem.threshold && s.passes(mask)),
                "{kind} trap served at {:.3}: {} | {}",
                s.similarity,
                p.a,
                p.b
            );
        }
    }
    let o = eval::bands::outcome(&scored, mask, sem.threshold, sem.verify_from, None);
    assert!(o.false_direct() < 0.05, "{:.1}% of traps served", o.false_direct() * 100.0);
    assert!(
        o.served_with_perfect_verifier() >= 0.45,
        "only {:.0}% of paraphrases reach the grey band",
        o.served_with_perfect_verifier() * 100.0
    );
}
