//! Several replicas sharing one cache through a real `redis-server`: two
//! real proxies on real sockets in front of one mock upstream.

mod common;

use common::{ask, client, Reply};
use deja_testkit::{eventually, spawn_proxy, spawn_replica, Embedding, RedisServer, TestConfig};
use serde_json::{json, Value};
use std::time::Duration;

const ADMIN: &str = "test-admin-token";

fn fleet_config(redis: &RedisServer) -> TestConfig {
    TestConfig { embedding: Embedding::Off, extra_toml: redis.cluster_toml(), ..Default::default() }
}

async fn post_to(url: String, body: &Value, key: Option<&str>) -> Reply {
    let mut req = client().post(url).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

async fn get_json(url: String) -> Value {
    let resp = client().get(url).bearer_auth(ADMIN).send().await.expect("proxy answers");
    resp.json().await.unwrap_or(Value::Null)
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("redis connection")
}

/// Waits until Redis holds `n` shared entries; returns their keys.
async fn shared_entries(redis: &RedisServer, n: usize) -> Vec<String> {
    let mut conn = redis_conn(redis).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg("deja:e:*").query_async(&mut conn).await.unwrap_or_default();
        if keys.len() >= n {
            return keys;
        }
        assert!(std::time::Instant::now() < deadline, "Redis never held {n} shared entries: {keys:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn cluster_stat(url: String, field: &str) -> u64 {
    get_json(url).await["cluster"][field].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn an_answer_stored_on_one_replica_is_an_exact_hit_on_another() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    let q = ask("What are your opening hours?");
    let first = post_to(a.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(first.cache(), "miss");
    let keys = shared_entries(&redis, 1).await;
    let second = post_to(b.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.cache(), "exact");
    assert_eq!(second.content(), first.content());
    let id = second.header("x-deja-entry").expect("entry id");
    assert!(keys.iter().any(|k| k.ends_with(id)), "{keys:?} {id}");
    assert_eq!(a.mock.control.total_calls(), 1);
    // Copied into B's own store: the next one is a local hit.
    let third = post_to(b.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(third.cache(), "exact");
    assert_eq!(cluster_stat(b.url("/admin/stats"), "redis_hits").await, 1);
    let stats = get_json(b.url("/admin/stats")).await;
    assert_eq!(stats["cluster"]["state"], "connected");
    let ready = get_json(b.url("/readyz")).await;
    assert_eq!(ready["cluster"], "connected");
}

#[tokio::test]
async fn a_delete_on_one_replica_is_never_served_by_another() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    let q = ask("Do you ship abroad?");
    post_to(a.url("/v1/chat/completions"), &q, None).await;
    shared_entries(&redis, 1).await;
    let hit = post_to(b.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(hit.cache(), "exact");
    let id = hit.header("x-deja-entry").expect("entry id").to_string();
    let resp = client().delete(b.url(&format!("/admin/cache/{id}"))).bearer_auth(ADMIN).send().await.expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    // A held its own copy: the tombstone reaches it through the stream.
    let applied = eventually(Duration::from_secs(5), || {
        let url = a.url("/admin/stats");
        async move { cluster_stat(url, "events_applied").await >= 1 }
    })
    .await;
    assert!(applied, "A never applied the delete");
    let again = post_to(a.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(again.cache(), "miss");
    assert_eq!(a.mock.control.total_calls(), 2);
}

#[tokio::test]
async fn a_replica_down_during_a_delete_applies_it_before_serving() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let mut b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    let q = ask("Can I return an opened item?");
    post_to(a.url("/v1/chat/completions"), &q, None).await;
    shared_entries(&redis, 1).await;
    let hit = post_to(b.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(hit.cache(), "exact");
    b.stop().await;
    let id = hit.header("x-deja-entry").expect("entry id").to_string();
    let resp = client().delete(a.url(&format!("/admin/cache/{id}"))).bearer_auth(ADMIN).send().await.expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    b.start().await;
    let after = post_to(b.url("/v1/chat/completions"), &q, None).await;
    assert_eq!(after.cache(), "miss", "B served an entry deleted while it was down");
    assert_eq!(a.mock.control.total_calls(), 2);
}

#[tokio::test]
async fn a_replica_down_during_a_purge_never_serves_the_purged_entries() {
    let redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let mut b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    let questions = [ask("first question"), ask("second question")];
    for q in &questions {
        post_to(a.url("/v1/chat/completions"), q, None).await;
    }
    shared_entries(&redis, 2).await;
    for q in &questions {
        assert_eq!(post_to(b.url("/v1/chat/completions"), q, None).await.cache(), "exact");
    }
    b.stop().await;
    let purged = client()
        .post(a.url("/admin/cache/purge"))
        .bearer_auth(ADMIN)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("purge");
    assert_eq!(purged.status().as_u16(), 200);
    b.start().await;
    for q in &questions {
        let r = post_to(b.url("/v1/chat/completions"), q, None).await;
        assert_eq!(r.cache(), "miss", "B served a purged entry after restarting");
    }
    assert_eq!(a.mock.control.total_calls(), 4);
    assert!(cluster_stat(b.url("/admin/stats"), "events_applied").await >= 1);
}

#[tokio::test]
async fn killing_redis_under_load_fails_no_request_and_sharing_resumes() {
    let mut redis = RedisServer::start();
    let a = spawn_proxy(fleet_config(&redis)).await;
    let b = spawn_replica(&a.mock, fleet_config(&redis)).await;
    post_to(a.url("/v1/chat/completions"), &ask("warm-up"), None).await;
    shared_entries(&redis, 1).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = if i % 2 == 0 { a.url("/v1/chat/completions") } else { b.url("/v1/chat/completions") };
        // Half repeat one question, half ask new ones.
        let q = if i % 3 == 0 { ask("warm-up") } else { ask(&format!("question {i}")) };
        tasks.push(tokio::spawn(async move { post_to(url, &q, None).await.status }));
        if i == 20 {
            redis.kill();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(t.await.expect("request task"), 200, "a client request failed while Redis died");
    }
    for r in [a.url("/readyz"), b.url("/readyz")] {
        let degraded = eventually(Duration::from_secs(5), || {
            let url = r.clone();
            async move {
                let resp = client().get(url).send().await.expect("readyz");
                resp.status().as_u16() == 200
                    && resp.json::<Value>().await.unwrap_or(Value::Null)["cluster"] == "degraded"
            }
        })
        .await;
        assert!(degraded, "{r} never reported a degraded cluster");
    }
    let metrics = client().get(a.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_cluster_degraded 1"), "{metrics}");
    // Still serving while degraded.
    assert_eq!(post_to(b.url("/v1/chat/completions"), &ask("while down"), None).await.status, 200);

    redis.restart();
    for r in [a.url("/readyz"), b.url("/readyz")] {
        let back = eventually(Duration::from_secs(10), || {
            let url = r.clone();
            async move { get_json(url).await["cluster"] == "connected" }
        })
        .await;
        assert!(back, "{r} never reconnected");
    }
    let calls = a.mock.control.total_calls();
    let q = ask("after the restart");
    assert_eq!(post_to(a.url("/v1/chat/completions"), &q, None).await.cache(), "miss");
    shared_entries(&redis, 1).await;
    assert_eq!(post_to(b.url("/v1/chat/completions"), &q, None).await.cache(), "exact");
    assert_eq!(a.mock.control.total_calls(), calls + 1);
}

#[tokio::test]
async fn tenants_never_share_entries_across_replicas() {
    let redis = RedisServer::start();
    let config = TestConfig { client_keys: vec!["key-x".into(), "key-y".into()], ..fleet_config(&redis) };
    let a = spawn_proxy(config.clone()).await;
    let b = spawn_replica(&a.mock, config).await;
    let q = ask("What is my account balance?");
    assert_eq!(post_to(a.url("/v1/chat/completions"), &q, Some("key-x")).await.cache(), "miss");
    shared_entries(&redis, 1).await;
    assert_eq!(post_to(b.url("/v1/chat/completions"), &q, Some("key-y")).await.cache(), "miss");
    assert_eq!(post_to(b.url("/v1/chat/completions"), &q, Some("key-x")).await.cache(), "exact");
    assert_eq!(a.mock.control.total_calls(), 2);
}

#[tokio::test]
async fn a_corrupt_or_misplaced_value_in_redis_is_a_counted_miss() {
    let redis = RedisServer::start();
    let config = TestConfig { client_keys: vec!["key-x".into(), "key-y".into()], ..fleet_config(&redis) };
    let a = spawn_proxy(config.clone()).await;
    let b = spawn_replica(&a.mock, config).await;
    let mut conn = redis_conn(&redis).await;

    // Garbage under a real key.
    let q = ask("Where is my parcel?");
    post_to(a.url("/v1/chat/completions"), &q, Some("key-x")).await;
    let keys = shared_entries(&redis, 1).await;
    let x_key = keys.first().expect("one key").clone();
    let x_value: Vec<u8> = redis::cmd("GET").arg(&x_key).query_async(&mut conn).await.expect("get");
    let _: () = redis::cmd("SET").arg(&x_key).arg("not an entry").query_async(&mut conn).await.expect("set");
    assert_eq!(post_to(b.url("/v1/chat/completions"), &q, Some("key-x")).await.cache(), "miss");
    assert_eq!(cluster_stat(b.url("/admin/stats"), "corrupt_values").await, 1);

    // Tenant X's valid entry planted under tenant Y's key.
    let q2 = ask("What is my address?");
    post_to(a.url("/v1/chat/completions"), &q2, Some("key-y")).await;
    let keys = shared_entries(&redis, 2).await;
    let y_key = keys.iter().find(|k| **k != x_key).expect("Y's key").clone();
    let _: () = redis::cmd("SET").arg(&y_key).arg(x_value).query_async(&mut conn).await.expect("set");
    let r = post_to(b.url("/v1/chat/completions"), &q2, Some("key-y")).await;
    assert_eq!(r.cache(), "miss", "B served another tenant's entry");
    assert_eq!(cluster_stat(b.url("/admin/stats"), "corrupt_values").await, 2);
    assert_eq!(a.mock.control.total_calls(), 4);
    let metrics = client().get(b.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_cluster_corrupt_values_total 2"), "{metrics}");
}
