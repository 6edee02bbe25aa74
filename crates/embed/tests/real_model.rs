//! The real all-MiniLM-L6-v2 model, loaded from `models/` as `deja serve` does.

use deja_embed::{cosine, Embedder, FastEmbedder, ModelPaths};
use std::path::Path;

fn model() -> FastEmbedder {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    FastEmbedder::load(&ModelPaths::in_dir(&dir), 1).expect("models fetched by models/fetch.py")
}

#[test]
fn paraphrases_are_closer_than_unrelated_questions() {
    let m = model();
    assert_eq!(m.dim(), 384);
    let texts: Vec<String> = ["when do you open?", "what time does the store open?", "how do I reset my password?"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = m.embed_batch(&texts).expect("embed");
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");
    }
    let para = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(para > 0.6, "paraphrase similarity {para}");
    assert!(para > unrelated + 0.3, "paraphrase {para} vs unrelated {unrelated}");
}

#[test]
fn batching_does_not_change_the_vectors() {
    let m = model();
    let one = m.embed_batch(&["cancel my subscription".to_string()]).expect("embed");
    let many = m
        .embed_batch(&[
            "a much longer sentence that forces padding in the batch".to_string(),
            "cancel my subscription".to_string(),
        ])
        .expect("embed");
    assert!(cosine(&one[0], &many[1]) > 0.9999);
}
