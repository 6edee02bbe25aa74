//! The threshold explorer's data (`GET /admin/lookups`) and the verifier band
//! in "what would this hit?": recent semantic lookups as a histogram, near
//! misses next to the entry they nearly hit, hits per namespace.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, TestConfig};
use reqwest::Method;
use serde_json::{json, Value};

const ORIGINAL: &str = "How do I reset my password?";
const PARAPHRASE: &str = "How can I reset my password?";

/// How similar the test embedder finds `stored` and `asked`, as "what would this hit?" reports it.
async fn similarity(stored: &str, asked: &str) -> f64 {
    let h = spawn_proxy(TestConfig::default()).await;
    chat(&h, &ask(stored)).await;
    let r = admin_send(&h, Method::POST, "/admin/cache/search", &json!({"prompt": asked})).await;
    r.body["results"][0]["similarity"].as_f64().expect("a candidate")
}

#[tokio::test]
async fn lookups_need_the_token_and_show_near_misses_next_to_the_entry() {
    // A threshold just above the paraphrase's similarity: it nearly hits.
    let sim = similarity(ORIGINAL, PARAPHRASE).await;
    let threshold = ((sim + 0.01) * 100.0).ceil() / 100.0;
    let config =
        TestConfig { threshold: threshold as f32, verify_from: Some(threshold as f32), ..TestConfig::default() };
    let h = spawn_proxy(config).await;
    for path in ["/admin/lookups", "/admin/lookups?limit=5"] {
        let r = client().get(h.url(path)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client().get(h.url(path)).bearer_auth("wrong").send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }

    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "miss");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "exact");
    assert_eq!(chat_with(&h, &ask(ORIGINAL), &[("x-deja-namespace", "team")]).await.cache(), "miss");

    let r = admin_get(&h, "/admin/lookups").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["count"], 3, "the exact hit never reached the semantic stage: {b}");
    assert_eq!(b["threshold"].as_f64().map(|t| (t * 100.0).round()), Some((threshold * 100.0).round()));
    let histogram = b["histogram"].as_array().cloned().unwrap_or_default();
    assert_eq!(histogram.len(), 20);
    assert_eq!(histogram.first().map(|h| h["from"].clone()), Some(json!(0.0)));
    let counted: u64 = histogram.iter().filter_map(|h| h["count"].as_u64()).sum();
    assert_eq!(counted, 1, "only the paraphrase had a candidate: {b}");

    let near = b["near_misses"].as_array().cloned().unwrap_or_default();
    assert_eq!(near.len(), 1, "{b}");
    let n = &near[0];
    assert_eq!(n["question"], PARAPHRASE);
    assert_eq!(n["entry_text"], ORIGINAL);
    assert_eq!(n["verdict"], "below_threshold");
    assert_eq!(n["namespace"], "default");
    assert!((n["similarity"].as_f64().unwrap_or(0.0) - sim).abs() < 1e-3, "{n}");
    let verdicts: Vec<Value> =
        b["lookups"].as_array().cloned().unwrap_or_default().iter().map(|l| l["verdict"].clone()).collect();
    assert_eq!(verdicts, [json!("no_candidate"), json!("below_threshold"), json!("no_candidate")]);

    let ns = &b["by_namespace"];
    assert_eq!(ns["default"], json!({"exact_hits": 1, "semantic_hits": 0, "semantic_lookups": 2}));
    assert_eq!(ns["default/team"]["semantic_lookups"], 1);

    // Narrowed by namespace or model; a bad limit is refused.
    assert_eq!(admin_get(&h, "/admin/lookups?namespace=default/team").await.body["count"], 1);
    assert_eq!(admin_get(&h, "/admin/lookups?model=nobody").await.body["count"], 0);
    assert_eq!(admin_get(&h, "/admin/lookups?limit=1").await.body["count"], 1);
    let bad = admin_get(&h, "/admin/lookups?limit=many").await;
    assert_eq!((bad.status, bad.body["error"]["param"].clone()), (400, json!("limit")));
}

#[tokio::test]
async fn served_lookups_are_counted_as_hits_in_the_histogram() {
    let h = spawn_proxy(TestConfig::default()).await;
    chat(&h, &ask(ORIGINAL)).await;
    let hit = chat_with(&h, &ask(ORIGINAL), &[("cache-control", "no-cache")]).await;
    assert_eq!(hit.cache(), "refresh");
    let b = admin_get(&h, "/admin/lookups").await.body;
    let last = b["histogram"].as_array().and_then(|h| h.last().cloned()).unwrap_or_default();
    assert_eq!(last["count"], 0, "a refresh reads nothing: {b}");
    let sem = chat(&h, &ask("how do i reset my password")).await;
    assert_eq!(sem.cache(), "semantic");
    let b = admin_get(&h, "/admin/lookups").await.body;
    let served = b["lookups"][0].clone();
    assert_eq!(served["verdict"], "served", "{b}");
    let hits: u64 =
        b["histogram"].as_array().cloned().unwrap_or_default().iter().filter_map(|h| h["hits"].as_u64()).sum();
    assert_eq!(hits, 1);
    assert_eq!(b["by_namespace"]["default"]["semantic_hits"], 1);
}

#[tokio::test]
async fn what_would_this_hit_labels_the_verifier_band() {
    for (verifier, label) in [(true, "would_be_verified"), (false, "below_threshold")] {
        let table = if verifier { "\n[cache.semantic.verifier]\nmodel = \"judge\"\n" } else { "" };
        let config = TestConfig {
            threshold: 0.95,
            verify_from: Some(0.80),
            extra_toml: format!("{JUDGE}{table}"),
            ..TestConfig::default()
        };
        let h = spawn_proxy(config).await;
        chat(&h, &ask(ORIGINAL)).await;
        let r = admin_send(&h, Method::POST, "/admin/cache/search", &json!({"prompt": PARAPHRASE})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let first = &r.body["results"][0];
        assert_eq!(first["refused_by"], label, "verifier {verifier}: {}", r.body);
        assert_eq!(first["would_serve"], false);
        assert_eq!(r.body["verify_from"], if verifier { json!(0.8) } else { Value::Null });
    }
}
