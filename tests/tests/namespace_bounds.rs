//! Client-chosen namespaces cannot grow Deja's state without bound: the
//! `x-deja-namespace` header is bounded in length and characters, and only
//! the first namespaces get `/metrics` series (and store counters) of their
//! own; the rest are counted together as `(other)`.

mod common;

use common::*;
use deja_testkit::{eventually, spawn_proxy, Embedding, TestConfig};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test]
async fn a_namespace_header_is_an_identifier_not_free_text() {
    let h = spawn_proxy(exact_only()).await;
    let long = "n".repeat(129);
    for bad in [long.as_str(), "user name", "ünïcode", "a\"b", "team,other"] {
        let r = chat_with(&h, &ask("When do you open?"), &[("x-deja-namespace", bad)]).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "invalid_namespace", "{}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    let fine = "n".repeat(128);
    for good in [fine.as_str(), "team-b", "user@example.com", "eu/west:prod"] {
        let r = chat_with(&h, &ask("When do you open?"), &[("x-deja-namespace", good)]).await;
        assert_eq!(r.status, 200, "{good:?}: {}", r.text);
    }
    assert_eq!(h.mock.control.total_calls(), 4, "a refused request never reaches the upstream");
}

/// Namespace label values of the series named `family` in a scrape.
fn namespaces(metrics: &str, family: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(family))
        .filter_map(|l| l.split("namespace=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_client_varying_its_namespace_cannot_grow_the_scrape() {
    let h = spawn_proxy(TestConfig {
        embedding: Embedding::Hash,
        threshold: 0.80,
        extra_toml: "\n[cache.semantic.slo]\nsample_rate = 1.0\n".into(),
        ..Default::default()
    })
    .await;
    let namespaces_sent = 130;
    for i in 0..namespaces_sent {
        let ns = [("x-deja-namespace", format!("user-{i}@example.com"))];
        let ns: Vec<(&str, &str)> = ns.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(chat_with(&h, &ask("How do I reset my password?"), &ns).await.cache(), "miss");
        // A semantic hit, sampled: its shadow call is counted per namespace.
        assert_eq!(chat_with(&h, &ask("How can I reset my password?"), &ns).await.cache(), "semantic");
    }
    let scrape =
        || async { client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text") };
    let all_counted = eventually(Duration::from_secs(10), || async {
        admin_get(&h, "/admin/stats").await.body["slo"]["shadow_calls"].as_u64() == Some(namespaces_sent)
    })
    .await;
    assert!(all_counted, "{}", admin_get(&h, "/admin/stats").await.body);
    let metrics = scrape().await;
    let labelled = namespaces(&metrics, "deja_slo_shadow_calls_total");
    assert_eq!(labelled.len(), 101, "100 namespaces and (other): {labelled:?}");
    assert!(labelled.contains("(other)"));
    let other: u64 = metrics
        .lines()
        .find(|l| l.starts_with("deja_slo_shadow_calls_total{namespace=\"(other)\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert_eq!(other, namespaces_sent - 100, "{metrics}");
}
