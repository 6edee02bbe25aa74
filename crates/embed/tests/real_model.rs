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

/// The model quantizes activations per call, so each text runs alone: its
/// vector must not depend on what else is in the batch.
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
    assert_eq!(one[0], many[1]);
}

/// The built int8 model against the independently exported baseline of the
/// same weights: quantization moves the vectors a little, never far.
#[test]
fn the_int8_model_agrees_with_the_baseline_export() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let baseline =
        FastEmbedder::load(&ModelPaths::baseline_in_dir(&dir), 1).expect("baseline fetched by models/fetch.py");
    let m = model();
    let texts: Vec<String> = [
        "How do I reset my password?",
        "Why was I charged twice for my March invoice?",
        "Can I bring a second carry-on bag on flights to Madrid?",
        "hi",
        "Does the unlimited plan include roaming in Mexico and Canada at no extra cost?",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (a, b) = (m.embed_batch(&texts).expect("embed"), baseline.embed_batch(&texts).expect("embed"));
    for ((x, y), t) in a.iter().zip(&b).zip(&texts) {
        let c = cosine(x, y);
        assert!(c > 0.97, "{t:?}: cosine to the baseline {c}");
    }
    assert_ne!(m.name(), baseline.name());
}
