//! The live quality SLO: sampled semantic hits are asked upstream again in
//! the background and compared with what was served. The hash embedder puts
//! "How do I reset my password?" and "How can I reset my password?" at a
//! cosine of about 0.83, above this file's threshold (0.80); the mock's
//! fresh answer to the paraphrase names the paraphrase, so it differs from
//! the cached answer to the original: the two answers are at a cosine of
//! about 0.89, so this file's `answer_similarity` floor is 0.95 (identical
//! answers are at 1.0).

mod common;

use common::*;
use deja_mock_upstream::JUDGE_MODEL;
use deja_testkit::{eventually, spawn_proxy, Embedding, Harness, TestConfig};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const ORIGINAL: &str = "How do I reset my password?";
const PARAPHRASE: &str = "How can I reset my password?";

fn config() -> TestConfig {
    TestConfig {
        embedding: Embedding::Hash,
        threshold: 0.80,
        extra_toml: "\n[cache.semantic.slo]\nsample_rate = 1.0\nmax_false_hit_rate = 0.02\n\
                     answer_similarity = 0.95\nmax_threshold = 0.99\nstep = 0.1\nmin_samples = 3\n"
            .into(),
        ..Default::default()
    }
}

fn cheap_calls(h: &Harness) -> u64 {
    h.mock.control.calls("cheap")
}

async fn slo(h: &Harness) -> Value {
    admin_get(h, "/admin/slo").await.body
}

/// Waits until the default namespace has `n` samples in total.
async fn samples_reach(h: &Harness, n: u64) {
    let reached = eventually(Duration::from_secs(5), || async {
        slo(h).await["by_namespace"]["default"]["samples_total"].as_u64() == Some(n)
    })
    .await;
    assert!(reached, "{n} samples never recorded: {}", slo(h).await);
}

#[tokio::test]
async fn a_sampled_hit_is_served_at_once_and_shadowed_once() {
    let h = spawn_proxy(config()).await;
    let first = chat(&h, &ask(ORIGINAL)).await;
    assert_eq!(first.cache(), "miss");
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "semantic", "{:?}", para.headers);
    assert_eq!(para.content(), first.content(), "served from the cache as usual");
    assert!(eventually(Duration::from_secs(5), || async { cheap_calls(&h) == 2 }).await, "one shadow call");
    samples_reach(&h, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(cheap_calls(&h), 2, "exactly one shadow call");

    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["misses"], 1, "a shadow call is not a client miss: {stats}");
    assert_eq!(stats["hits"]["semantic"], 1);
    assert_eq!(stats["entries"], 1, "a shadow answer is never cached");
    assert_eq!(stats["slo"]["shadow_calls"], 1, "{stats}");
    assert!(stats["slo"]["shadow_usd"].as_f64().unwrap_or(0.0) > 0.0, "{stats}");

    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_slo_shadow_calls_total{namespace=\"default\"} 1"), "{metrics}");
    assert!(metrics.contains("deja_slo_samples_total{namespace=\"default\"} 1"), "{metrics}");
    assert!(metrics.contains("deja_slo_false_hit_rate_upper{namespace=\"default\"}"), "{metrics}");
}

#[tokio::test]
async fn disagreements_are_recorded_raise_the_threshold_and_a_reload_resets_it() {
    let h = spawn_proxy(config()).await;
    let first = chat(&h, &ask(ORIGINAL)).await;
    assert_eq!(first.cache(), "miss");
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "semantic");
    samples_reach(&h, 1).await;

    let report = slo(&h).await;
    let ns = &report["by_namespace"]["default"];
    assert_eq!(ns["false_hits"], 1, "{report}");
    let seen = &ns["disagreements"][0];
    assert_eq!(seen["question"], PARAPHRASE);
    assert_eq!(seen["cached_answer"].as_str(), Some(first.content()));
    assert!(seen["fresh_answer"].as_str().is_some_and(|a| a.contains(PARAPHRASE)), "{seen}");
    let similarity = seen["similarity"].as_f64().unwrap_or(1.0);
    assert!((0.80..0.95).contains(&similarity), "{similarity}");
    let stats = admin_get(&h, "/admin/stats").await.body;
    let ns = &stats["slo"]["by_namespace"]["default"];
    assert_eq!(ns["estimate"], 1.0, "{stats}");
    assert!(ns["lower"].as_f64().unwrap_or(0.0) > 0.0 && ns["upper"] == 1.0, "{stats}");
    assert!(ns.get("disagreements").is_none(), "only /admin/slo lists them");
    assert_eq!(ns["threshold_raise"], 0.0, "fewer than min_samples");

    // Two more false hits: min_samples reached, the lower bound above 2%.
    for n in [2, 3] {
        assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "semantic");
        samples_reach(&h, n).await;
    }
    let stats = admin_get(&h, "/admin/stats").await.body;
    let ns = &stats["slo"]["by_namespace"]["default"];
    assert!((ns["threshold_raise"].as_f64().unwrap_or(0.0) - 0.1).abs() < 1e-6, "{stats}");
    assert_eq!(ns["false_hits_total"], 3);
    assert_eq!(ns["samples"], 0, "the estimate starts again at the new threshold");
    assert_eq!(stats["misses"], 1, "shadow calls are counted apart: {stats}");
    assert_eq!(stats["slo"]["shadow_calls"], 3);

    let raised = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(raised.cache(), "miss", "0.83 is now under the raised threshold (0.90)");
    assert!(raised.content().contains(PARAPHRASE));
    // Another namespace keeps the configured threshold.
    let team = [("x-deja-namespace", "team-b")];
    assert_eq!(chat_with(&h, &ask(ORIGINAL), &team).await.cache(), "miss");
    assert_eq!(chat_with(&h, &ask(PARAPHRASE), &team).await.cache(), "semantic");

    // Drop the paraphrase's own answer so the next ask meets only the original.
    let newest = admin_get(&h, "/admin/cache?limit=10&namespace=default").await.body;
    let id = newest["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["preview"].as_str().is_some_and(|p| p.contains("can I"))))
        .and_then(|e| e["id"].as_str())
        .expect("the paraphrase's entry")
        .to_string();
    assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{id}"), &json!({})).await.status, 204);

    let reload = admin_send(&h, Method::POST, "/admin/reload", &json!({})).await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert!(stats["slo"]["by_namespace"].get("default").is_none(), "a reload forgets the SLO state: {stats}");
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "semantic", "the configured threshold again");
}

#[tokio::test]
async fn a_configured_verifier_judges_the_two_answers() {
    let mut c = config();
    c.extra_toml.push_str(
        "\n[[models]]\nname = \"judge\"\nprovider = \"mock\"\ninput_usd_per_mtok = 1.0\n\
         output_usd_per_mtok = 2.0\ncontext_window = 128000\n\n[cache.semantic.verifier]\nmodel = \"judge\"\n",
    );
    let h = spawn_proxy(c).await;
    h.mock.control.set_judge_verdict("1");
    let first = chat(&h, &ask(ORIGINAL)).await;
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "semantic");
    samples_reach(&h, 1).await;
    let report = slo(&h).await;
    assert_eq!(report["by_namespace"]["default"]["false_hits"], 0, "the judge agreed, whatever the cosine: {report}");
    assert_eq!(h.mock.control.calls(JUDGE_MODEL), 1);
    let asked = h.mock.control.requests().into_iter().rfind(|r| r["model"] == JUDGE_MODEL).expect("judge request");
    let text = asked["messages"].to_string();
    assert!(text.contains(first.content()) && text.contains("Simulated answer to: How can I"), "{text}");

    h.mock.control.set_judge_verdict("none");
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "semantic");
    samples_reach(&h, 2).await;
    assert_eq!(slo(&h).await["by_namespace"]["default"]["false_hits"], 1, "the judge disagreed");
}
