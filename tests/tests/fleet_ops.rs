//! The fleet beyond the shared cache: one upstream call for a burst spread
//! over replicas, fleet-wide counters, shared cooldowns, and Redis dying
//! mid-burst. Two real proxies on real sockets, one mock upstream, a real
//! `redis-server`.

mod common;

use common::{ask, client, Reply};
use deja_mock_upstream::Fault;
use deja_testkit::{eventually, spawn_proxy, spawn_replica, Embedding, RedisServer, TestConfig};
use serde_json::{json, Value};
use std::time::Duration;

const ADMIN: &str = "test-admin-token";

fn fleet_config(redis: &RedisServer) -> TestConfig {
    // Appended to the [cluster] table.
    let extra = format!("{}counters_flush = \"100ms\"\n", redis.cluster_toml());
    TestConfig { embedding: Embedding::Off, extra_toml: extra, ..Default::default() }
}

async fn post_to(url: String, body: &Value) -> Reply {
    let resp = client().post(url).json(body).send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

async fn get_json(url: String) -> Value {
    let resp = client().get(url).bearer_auth(ADMIN).send().await.expect("proxy answers");
    resp.json().await.unwrap_or(Value::Null)
}

async fn metrics(url: String) -> String {
    client().get(url).send().await.expect("metrics").text().await.expect("text")
}

/// The answer text of a reply, unary or streamed.
fn answer_text(r: &Reply) -> String {
    if !r.text.starts_with("data:") {
        return r.content().to_string();
    }
    r.text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

/// Fires `n` copies of `body` at once, alternating between two URLs, half of them streamed.
fn burst(n: usize, a: &str, b: &str, body: &Value) -> Vec<tokio::task::JoinHandle<Reply>> {
    (0..n)
        .map(|i| {
            let url = if i % 2 == 0 { a.to_string() } else { b.to_string() };
            let mut body = body.clone();
            if i % 4 < 2 {
                body["stream"] = Value::Bool(true);
            }
            tokio::spawn(async move { post_to(url, &body).await })
        })
        .collect()
}

#[tokio::test]
async fn a_burst_of_one_question_across_two_replicas_costs_one_upstream_call() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    // Slow enough that the whole burst arrives while the one call is in flight.
    a.mock.control.set_sticky("cheap", Some(Fault::Delay { ms: 400 }));
    let q = ask("How long does a refund take?");
    let (ua, ub) = (a.url("/v1/chat/completions"), b.url("/v1/chat/completions"));
    let mut answers = Vec::new();
    for t in burst(50, &ua, &ub, &q) {
        let r = t.await.expect("request task");
        assert_eq!(r.status, 200, "{}", r.text);
        answers.push(answer_text(&r));
    }
    assert_eq!(a.mock.control.total_calls(), 1, "the burst cost more than one upstream call");
    let first = answers.first().cloned().unwrap_or_default();
    assert!(!first.is_empty());
    assert!(answers.iter().all(|a| *a == first), "replicas answered differently: {answers:?}");
    // The replica that lost the lock served the other's answer after waiting.
    let waited = [metrics(a.url("/metrics")).await, metrics(b.url("/metrics")).await]
        .iter()
        .any(|m| m.contains("deja_fleet_coalesced_total{kind=\"answered\"} 1"));
    assert!(waited, "neither replica waited for the other");
    // Both now hold the entry: the next one is a local hit on either.
    assert_eq!(post_to(ub, &q).await.cache(), "exact");
    assert_eq!(a.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn a_replica_waiting_on_a_failed_call_calls_upstream_itself() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    // One model, tried twice with a one-second wait between: A's call fails slowly.
    let q = json!({"model": "cheap", "messages": [{"role": "user", "content": "Is the warehouse open on Sunday?"}]});
    let unavailable = Fault::Status { status: 503, retry_after_s: Some(1), retry_after: None };
    a.mock.control.push_faults("cheap", [unavailable.clone(), unavailable]);
    let first = tokio::spawn({
        let (url, q) = (a.url("/v1/chat/completions"), q.clone());
        async move { post_to(url, &q).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // B waits on A's lock, sees it given up without an answer, and calls upstream.
    let second = post_to(b.url("/v1/chat/completions"), &q).await;
    let first = first.await.expect("first request");
    assert_ne!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.cache(), "miss");
    assert_eq!(a.mock.control.calls("cheap"), 3);
    let m = metrics(b.url("/metrics")).await;
    assert!(m.contains("deja_fleet_coalesced_total{kind=\"upstream\"} 1"), "{m}");
}

#[tokio::test]
async fn fleet_counters_on_one_replica_include_the_others_hits() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    let q = ask("What is your returns policy?");
    let miss = post_to(a.url("/v1/chat/completions"), &q).await;
    assert_eq!(miss.cache(), "miss");
    let spent: f64 = miss.header("x-deja-cost-usd").and_then(|v| v.parse().ok()).expect("cost");
    assert!(spent > 0.0);
    // B: one hit from Redis, one from its own store, one miss of its own.
    let shared = eventually(Duration::from_secs(5), || {
        let url = b.url("/v1/chat/completions");
        let q = q.clone();
        async move { post_to(url, &q).await.cache() == "exact" }
    })
    .await;
    assert!(shared, "B never found A's entry");
    assert_eq!(post_to(b.url("/v1/chat/completions"), &q).await.cache(), "exact");
    assert_eq!(post_to(b.url("/v1/chat/completions"), &ask("Something else")).await.cache(), "miss");

    let counted = eventually(Duration::from_secs(5), || {
        let url = a.url("/admin/stats");
        async move {
            let total = &get_json(url).await["fleet"]["total"];
            total["hits"]["exact"] == 2 && total["misses"] == 2
        }
    })
    .await;
    let stats = get_json(a.url("/admin/stats")).await;
    assert!(counted, "A's fleet totals never included B's hits: {}", stats["fleet"]);
    let fleet = &stats["fleet"];
    // A's own numbers are its own.
    assert_eq!(fleet["replica"]["hits"]["total"], 0);
    assert_eq!(fleet["replica"]["misses"], 1);
    let total_spent = fleet["total"]["usd_spent"].as_f64().unwrap_or(0.0);
    assert!(total_spent > spent, "the fleet spent {total_spent}, A alone {spent}");
    assert!(fleet["total"]["usd_saved"].as_f64().unwrap_or(0.0) >= 2.0 * spent * 0.99);
    let m = metrics(a.url("/metrics")).await;
    assert!(m.contains("deja_fleet_hits{kind=\"exact\"} 2"), "{m}");
    assert!(m.contains("deja_fleet_misses 2"), "{m}");
    assert!(m.contains("deja_fleet_spent_usd "), "{m}");
    // The same totals on B.
    let b_total = get_json(b.url("/admin/stats")).await["fleet"]["total"].clone();
    assert_eq!(b_total["hits"]["exact"], 2);
}

#[tokio::test]
async fn a_429_on_one_replica_cools_the_model_on_the_other() {
    let redis = RedisServer::start();
    let config = TestConfig { failures_to_cool: 1, cooldown: "30s".into(), ..fleet_config(&redis) };
    let a = spawn_proxy(config.clone()).await;
    let b = spawn_replica(&a.mock, config).await;
    a.mock.control.push_faults("cheap", [Fault::Status { status: 429, retry_after_s: None, retry_after: None }]);
    let first = post_to(a.url("/v1/chat/completions"), &ask("first question")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-deja-model"), Some("mid"));
    assert_eq!(a.mock.control.calls("cheap"), 1);

    let learned = eventually(Duration::from_secs(5), || {
        let url = b.url("/admin/stats");
        async move {
            get_json(url).await["cooling_down"].as_array().is_some_and(|c| c.iter().any(|m| m["model"] == "cheap"))
        }
    })
    .await;
    assert!(learned, "B never learned that cheap is cooling down");
    let second = post_to(b.url("/v1/chat/completions"), &ask("second question")).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-deja-model"), Some("mid"), "B did not skip the cooling model");
    assert_eq!(a.mock.control.calls("cheap"), 1, "B called the cooling model");
    assert!(metrics(b.url("/metrics")).await.contains("deja_fleet_cooldowns_learned_total 1"));
    assert!(metrics(a.url("/metrics")).await.contains("deja_fleet_cooldowns_published_total 1"));
}

#[tokio::test]
async fn a_replica_started_during_a_cooldown_skips_the_model() {
    let redis = RedisServer::start();
    let config = TestConfig { failures_to_cool: 1, cooldown: "30s".into(), ..fleet_config(&redis) };
    let a = spawn_proxy(config.clone()).await;
    a.mock.control.push_faults("cheap", [Fault::Status { status: 503, retry_after_s: None, retry_after: None }]);
    assert_eq!(post_to(a.url("/v1/chat/completions"), &ask("one")).await.header("x-deja-model"), Some("mid"));
    // Published before B subscribed: B reads the cooldown key instead.
    let published = eventually(Duration::from_secs(5), || {
        let url = a.url("/metrics");
        async move { metrics(url).await.contains("deja_fleet_cooldowns_published_total 1") }
    })
    .await;
    assert!(published);
    let b = spawn_replica(&a.mock, config).await;
    let learned = eventually(Duration::from_secs(5), || {
        let url = b.url("/metrics");
        async move { metrics(url).await.contains("deja_ladder_cooldown{model=\"cheap\"} 1") }
    })
    .await;
    assert!(learned, "B never read the running cooldown");
    assert_eq!(post_to(b.url("/v1/chat/completions"), &ask("two")).await.header("x-deja-model"), Some("mid"));
    assert_eq!(a.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn killing_redis_during_a_coalesced_burst_answers_every_request() {
    let mut redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    a.mock.control.set_sticky("cheap", Some(Fault::Delay { ms: 1000 }));
    let q = ask("Do you price-match?");
    let (ua, ub) = (a.url("/v1/chat/completions"), b.url("/v1/chat/completions"));
    let tasks = burst(40, &ua, &ub, &q);
    // One replica is calling upstream, the other waiting on it, when Redis dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    for t in tasks {
        let r = t.await.expect("request task");
        assert_eq!(r.status, 200, "a request failed when Redis died: {}", r.text);
        assert!(!answer_text(&r).is_empty());
    }
    // One call per replica: the waiting one gave up on Redis and called upstream itself.
    assert_eq!(a.mock.control.total_calls(), 2);
    let gave_up = [metrics(a.url("/metrics")).await, metrics(b.url("/metrics")).await]
        .iter()
        .any(|m| m.contains("deja_fleet_coalesced_total{kind=\"upstream\"} 1"));
    assert!(gave_up, "no replica was waiting on the other when Redis died");
    for url in [a.url("/readyz"), b.url("/readyz")] {
        assert_eq!(get_json(url).await["cluster"], "degraded");
    }
    assert!(metrics(b.url("/metrics")).await.contains("deja_cluster_degraded 1"));

    // Counts made while Redis was away reach it once it is back: 2 misses, 38 coalesced hits.
    redis.restart();
    let flushed = eventually(Duration::from_secs(10), || {
        let url = a.url("/admin/stats");
        async move {
            let total = &get_json(url).await["fleet"]["total"];
            total["misses"] == 2 && total["hits"]["exact"] == 38
        }
    })
    .await;
    assert!(flushed, "{}", get_json(a.url("/admin/stats")).await["fleet"]);
}
