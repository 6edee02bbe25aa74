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
