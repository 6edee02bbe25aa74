//! Fleet counters under client-chosen namespaces: two replicas on a real
//! `redis-server`, a client varying `x-deja-namespace` across both. Redis
//! keeps per-namespace hashes for the first `server.metrics_namespaces`
//! namespaces of the whole fleet and counts the rest under `(other)`, like
//! each replica's own `/metrics` and store, so neither Redis nor a scrape
//! grows with the namespaces sent, and nothing counted is lost.

mod common;

use common::{ask, client};
use deja_testkit::{eventually, spawn_proxy, spawn_replica, Embedding, RedisServer, TestConfig};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// `server.metrics_namespaces`' default.
const CAP: usize = 100;

fn config(redis: &RedisServer) -> TestConfig {
    TestConfig {
        embedding: Embedding::Hash,
        threshold: 0.80,
        // Every semantic hit sampled: its shadow call gets a series per namespace.
        extra_toml: format!(
            "\n[cache.semantic.slo]\nsample_rate = 1.0\n\n{}counters_flush = \"200ms\"\n",
            redis.cluster_toml()
        ),
        ..Default::default()
    }
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("redis connection")
}

/// Hits and misses in one counters hash.
fn lookups(h: &HashMap<String, u64>) -> u64 {
    ["exact_hits", "semantic_hits", "misses"].iter().map(|f| h.get(*f).copied().unwrap_or(0)).sum()
}

async fn hash(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> HashMap<String, u64> {
    redis::cmd("HGETALL").arg(key).query_async(conn).await.expect("HGETALL")
}

/// A miss, then a sampled semantic hit, in namespace `ns`.
async fn two_lookups(url: &str, ns: &str) {
    for q in ["How do I reset my password?", "How can I reset my password?"] {
        let r = client().post(url).header("x-deja-namespace", ns).json(&ask(q)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{ns}");
    }
}

/// Namespace label values in a scrape.
fn labelled_namespaces(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("deja_"))
        .filter_map(|l| l.split("namespace=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn namespaces_past_the_cap_share_one_fleet_counter() {
    let redis = RedisServer::start();
    let a = spawn_proxy(config(&redis)).await;
    let b = spawn_replica(&a.mock, config(&redis)).await;
    // 170 namespaces across the fleet; each replica sees 110 of them, 50 both.
    let (on_a, on_b) = (0..110, 60..170);
    let sent = 2 * (on_a.len() + on_b.len()) as u64;
    for i in on_a {
        two_lookups(&a.url("/v1/chat/completions"), &format!("user-{i}@example.com")).await;
    }
    for i in on_b {
        two_lookups(&b.url("/v1/chat/completions"), &format!("user-{i}@example.com")).await;
    }

    let mut conn = redis_conn(&redis).await;
    let all_flushed = eventually(Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { lookups(&hash(&mut conn, "deja:counters").await) == sent }
    })
    .await;
    assert!(all_flushed, "fleet totals: {:?}", hash(&mut conn, "deja:counters").await);

    let keys: Vec<String> = redis::cmd("KEYS").arg("deja:counters:ns:*").query_async(&mut conn).await.expect("KEYS");
    assert!(keys.len() <= CAP + 1, "{} per-namespace hashes in Redis: {keys:?}", keys.len());
    assert!(keys.contains(&"deja:counters:ns:(other)".to_string()), "{keys:?}");
    let names: usize = redis::cmd("SCARD").arg("deja:counters:namespaces").query_async(&mut conn).await.expect("SCARD");
    assert!(names <= CAP, "{names} namespace names in Redis");
    // Folded, never dropped: the namespaces' hashes add up to the fleet's total.
    let mut per_namespace = 0;
    for k in &keys {
        per_namespace += lookups(&hash(&mut conn, k).await);
    }
    assert_eq!(per_namespace, sent);
    let other = lookups(&hash(&mut conn, "deja:counters:ns:(other)").await);
    assert!(other >= 2 * (170 - CAP) as u64, "(other) counted {other}");
    let counter_keys: Vec<String> =
        redis::cmd("KEYS").arg("deja:counters*").query_async(&mut conn).await.expect("KEYS");
    assert!(counter_keys.len() <= CAP + 3, "{} counter keys in Redis", counter_keys.len());

    for url in [a.url("/metrics"), b.url("/metrics")] {
        let metrics = client().get(url).send().await.expect("metrics").text().await.expect("text");
        let labelled = labelled_namespaces(&metrics);
        assert!(labelled.len() <= CAP + 1, "{} namespace labels: {labelled:?}", labelled.len());
        assert!(labelled.contains("(other)"), "{labelled:?}");
    }
    // What each replica reports for the fleet is the same sum.
    for url in [a.url("/admin/stats"), b.url("/admin/stats")] {
        let reported = eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let stats: Value = match client().get(url).bearer_auth("test-admin-token").send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                let total = &stats["fleet"]["total"];
                total["hits"]["total"].as_u64().zip(total["misses"].as_u64()).map(|(h, m)| h + m) == Some(sent)
            }
        })
        .await;
        assert!(reported, "{url} never reported the fleet's {sent} lookups");
    }
}
