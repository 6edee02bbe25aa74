//! The semantic tier replicated through a real `redis-server`: real replicas
//! on real sockets, the real all-MiniLM-L6-v2 model, paraphrases (never the
//! same text) asked on another replica than the one that stored the answer.

mod common;

use common::{ask, client, Reply};
use deja_testkit::{eventually, spawn_proxy, spawn_replica, Embedding, RedisServer, TestConfig};
use serde_json::Value;
use std::time::{Duration, Instant};

const ADMIN: &str = "test-admin-token";
const OPEN: &str = "When do you open?";
const OPEN_PARAPHRASE: &str = "What time do you open?";
const RESET: &str = "How do I reset my password?";
const RESET_PARAPHRASE: &str = "How can I reset my password?";

fn semantic_fleet(redis: &RedisServer, extra: &str) -> TestConfig {
    TestConfig {
        embedding: Embedding::Real,
        threshold: 0.80,
        extra_toml: format!("{}{extra}", redis.cluster_toml()),
        ..Default::default()
    }
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

async fn cluster_stat(url: String, field: &str) -> u64 {
    let resp = client().get(url).bearer_auth(ADMIN).send().await.expect("proxy answers");
    resp.json::<Value>().await.unwrap_or(Value::Null)["cluster"][field].as_u64().unwrap_or(0)
}

/// Waits up to `within` for a replica's cluster counter to reach `n`.
async fn stat_reaches(url: String, field: &'static str, n: u64, within: Duration) -> bool {
    eventually(within, || {
        let url = url.clone();
        async move { cluster_stat(url, field).await >= n }
    })
    .await
}

/// The id of the newest entry in a replica's store.
async fn newest_entry(base: String) -> String {
    let resp = client().get(format!("{base}/admin/cache?limit=1")).bearer_auth(ADMIN).send().await.expect("list");
    let listing: Value = resp.json().await.expect("json");
    listing["entries"][0]["id"].as_str().expect("an entry").to_string()
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("redis connection")
}

async fn delete_entry(url: String) -> u16 {
    client().delete(url).bearer_auth(ADMIN).send().await.expect("delete").status().as_u16()
}

#[tokio::test]
async fn an_entry_stored_on_one_replica_is_a_semantic_hit_on_another_within_a_second() {
    let redis = RedisServer::start();
    let a = spawn_proxy(semantic_fleet(&redis, "")).await;
    let b = spawn_replica(&a.mock, semantic_fleet(&redis, "")).await;
    let first = post_to(a.url("/v1/chat/completions"), &ask(OPEN), None).await;
    assert_eq!(first.cache(), "miss");
    let stored_at = Instant::now();
    let replicated = stat_reaches(b.url("/admin/stats"), "entries_replicated", 1, Duration::from_secs(1)).await;
    assert!(replicated, "B did not index A's entry within a second ({:?})", stored_at.elapsed());
    let para = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), None).await;
    assert_eq!(para.status, 200);
    assert_eq!(para.cache(), "semantic", "{:?}", para.headers);
    assert_eq!(para.content(), first.content());
    assert_eq!(para.header("x-deja-entry"), Some(newest_entry(a.url("")).await.as_str()));
    assert_eq!(a.mock.control.total_calls(), 1);
    // A does not index its own event twice.
    assert_eq!(cluster_stat(a.url("/admin/stats"), "entries_replicated").await, 0);
}

#[tokio::test]
async fn a_replica_started_after_the_store_catches_up_before_serving() {
    let redis = RedisServer::start();
    let a = spawn_proxy(semantic_fleet(&redis, "")).await;
    let first = post_to(a.url("/v1/chat/completions"), &ask(OPEN), None).await;
    let second = post_to(a.url("/v1/chat/completions"), &ask(RESET), None).await;
    assert_eq!((first.cache(), second.cache()), ("miss", "miss"));
    // Both events are on the stream once A's writes land.
    let mut conn = redis_conn(&redis).await;
    let landed = eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move { redis::cmd("XLEN").arg("deja:events").query_async::<u64>(&mut conn).await.unwrap_or(0) >= 2 }
    })
    .await;
    assert!(landed, "A's stored events never reached the stream");
    // B starts now: it applies the stream before it serves, so no waiting here.
    let b = spawn_replica(&a.mock, semantic_fleet(&redis, "")).await;
    let para = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "semantic");
    assert_eq!(para.content(), first.content());
    let para = post_to(b.url("/v1/chat/completions"), &ask(RESET_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "semantic");
    assert_eq!(para.content(), second.content());
    assert_eq!(a.mock.control.total_calls(), 2);
    assert_eq!(cluster_stat(b.url("/admin/stats"), "entries_replicated").await, 2);
    let _: () = redis::cmd("PING").query_async(&mut conn).await.expect("redis still up");
}

#[tokio::test]
async fn a_delete_after_replication_is_never_served_by_another_replica() {
    let redis = RedisServer::start();
    let a = spawn_proxy(semantic_fleet(&redis, "")).await;
    let b = spawn_replica(&a.mock, semantic_fleet(&redis, "")).await;
    assert_eq!(post_to(a.url("/v1/chat/completions"), &ask(RESET), None).await.cache(), "miss");
    assert!(stat_reaches(b.url("/admin/stats"), "entries_replicated", 1, Duration::from_secs(5)).await);
    let id = newest_entry(a.url("")).await;
    assert_eq!(delete_entry(a.url(&format!("/admin/cache/{id}"))).await, 204);
    assert!(stat_reaches(b.url("/admin/stats"), "events_applied", 1, Duration::from_secs(5)).await);
    let held = client().get(b.url(&format!("/admin/cache/{id}"))).bearer_auth(ADMIN).send().await.expect("get");
    assert_eq!(held.status().as_u16(), 404, "B still holds the deleted entry");
    let para = post_to(b.url("/v1/chat/completions"), &ask(RESET_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "miss", "B served a deleted entry to a paraphrase");
    assert_eq!(a.mock.control.total_calls(), 2);
    // The vector's copy went with the entry's.
    let mut conn = redis_conn(&redis).await;
    let vectors: Vec<String> =
        redis::cmd("KEYS").arg(format!("deja:v:*:{id}")).query_async(&mut conn).await.expect("keys");
    assert!(vectors.is_empty(), "{vectors:?}");
}

/// B holds a replicated entry, goes down; the entry is deleted, another is
/// stored, and the stream is trimmed past B's position (a small
/// `stream_max_len`, Redis packing two events per stream node). B restarts:
/// it rebuilds from Redis, serving the new entry and never the deleted one.
#[tokio::test]
async fn a_replica_behind_a_trimmed_stream_rebuilds_from_redis() {
    let redis = RedisServer::start();
    let mut conn = redis_conn(&redis).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg(2)
        .query_async(&mut conn)
        .await
        .expect("config set");
    let config = || semantic_fleet(&redis, "stream_max_len = 10\n");
    let a = spawn_proxy(config()).await;
    let mut b = spawn_replica(&a.mock, config()).await;
    assert_eq!(post_to(a.url("/v1/chat/completions"), &ask(RESET), None).await.cache(), "miss");
    assert!(stat_reaches(b.url("/admin/stats"), "entries_replicated", 1, Duration::from_secs(5)).await);
    b.stop().await;

    let id = newest_entry(a.url("")).await;
    assert_eq!(delete_entry(a.url(&format!("/admin/cache/{id}"))).await, 204);
    let kept = post_to(a.url("/v1/chat/completions"), &ask(OPEN), None).await;
    assert_eq!(kept.cache(), "miss");
    // Tombstones for entries no one holds: cheap events that push the stream on.
    for i in 0..40u8 {
        let junk = format!("{:064x}", u64::from(i) + 1);
        delete_entry(a.url(&format!("/admin/cache/{junk}"))).await;
    }
    let added: u64 = xinfo_field(&mut conn, "entries-added").await;
    let len: u64 = redis::cmd("XLEN").arg("deja:events").query_async(&mut conn).await.expect("xlen");
    assert!(added >= 42 && len < 30, "the stream was not trimmed ({len} of {added} events left)");

    b.start().await;
    let para = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "semantic", "B did not rebuild its semantic tier from Redis");
    assert_eq!(para.content(), kept.content());
    let gone = post_to(b.url("/v1/chat/completions"), &ask(RESET_PARAPHRASE), None).await;
    assert_eq!(gone.cache(), "miss", "B served an entry deleted while it was down");
    assert!(cluster_stat(b.url("/admin/stats"), "entries_backfilled").await >= 1);
    assert_eq!(a.mock.control.total_calls(), 3);
}

/// One numeric field of `XINFO STREAM deja:events`.
async fn xinfo_field(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let reply: redis::Value =
        redis::cmd("XINFO").arg("STREAM").arg("deja:events").query_async(conn).await.expect("xinfo");
    let fields: Vec<redis::Value> = match reply {
        redis::Value::Array(v) => v,
        redis::Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => panic!("unexpected XINFO reply {other:?}"),
    };
    let at = fields.iter().position(|f| redis::from_redis_value::<String>(f).is_ok_and(|f| f == name));
    at.and_then(|i| fields.get(i + 1)).and_then(|v| redis::from_redis_value(v).ok()).expect("the field")
}

#[tokio::test]
async fn tenants_never_share_semantic_entries_across_replicas() {
    let redis = RedisServer::start();
    let config = || TestConfig { client_keys: vec!["key-x".into(), "key-y".into()], ..semantic_fleet(&redis, "") };
    let a = spawn_proxy(config()).await;
    let b = spawn_replica(&a.mock, config()).await;
    let first = post_to(a.url("/v1/chat/completions"), &ask(OPEN), Some("key-x")).await;
    assert_eq!(first.cache(), "miss");
    assert!(stat_reaches(b.url("/admin/stats"), "entries_replicated", 1, Duration::from_secs(5)).await);
    let other = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), Some("key-y")).await;
    assert_eq!(other.cache(), "miss", "another tenant was served X's entry");
    let own = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), Some("key-x")).await;
    assert_eq!(own.cache(), "semantic");
    assert_eq!(own.content(), first.content());
    assert_eq!(a.mock.control.total_calls(), 2);
}

#[tokio::test]
async fn an_event_whose_copy_is_corrupt_is_a_counted_miss() {
    let redis = RedisServer::start();
    let a = spawn_proxy(semantic_fleet(&redis, "")).await;
    // A stores while B does not exist yet; its copy is then spoiled.
    post_to(a.url("/v1/chat/completions"), &ask(OPEN), None).await;
    let mut conn = redis_conn(&redis).await;
    let keys = eventually(Duration::from_secs(5), || {
        let mut conn = conn.clone();
        async move { redis::cmd("XLEN").arg("deja:events").query_async::<u64>(&mut conn).await.unwrap_or(0) >= 1 }
    })
    .await;
    assert!(keys);
    let entry_keys: Vec<String> = redis::cmd("KEYS").arg("deja:e:*").query_async(&mut conn).await.expect("keys");
    let key = entry_keys.first().expect("A's copy");
    let _: () = redis::cmd("SET").arg(key).arg("not an entry").query_async(&mut conn).await.expect("set");
    let b = spawn_replica(&a.mock, semantic_fleet(&redis, "")).await;
    let para = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "miss");
    assert_eq!(cluster_stat(b.url("/admin/stats"), "entries_replicated").await, 0);
    assert!(cluster_stat(b.url("/admin/stats"), "corrupt_values").await >= 1);
}

#[tokio::test]
async fn replication_resumes_after_redis_comes_back() {
    let mut redis = RedisServer::start();
    let a = spawn_proxy(semantic_fleet(&redis, "")).await;
    let b = spawn_replica(&a.mock, semantic_fleet(&redis, "")).await;
    redis.kill();
    // Stored while Redis is down: kept on A only.
    assert_eq!(post_to(a.url("/v1/chat/completions"), &ask(RESET), None).await.cache(), "miss");
    redis.restart();
    for r in [a.url("/readyz"), b.url("/readyz")] {
        let back = eventually(Duration::from_secs(10), || {
            let url = r.clone();
            async move {
                let resp = client().get(url).send().await.expect("readyz");
                resp.json::<Value>().await.unwrap_or(Value::Null)["cluster"] == "connected"
            }
        })
        .await;
        assert!(back, "{r} never reconnected");
    }
    let first = post_to(a.url("/v1/chat/completions"), &ask(OPEN), None).await;
    assert_eq!(first.cache(), "miss");
    assert!(stat_reaches(b.url("/admin/stats"), "entries_replicated", 1, Duration::from_secs(5)).await);
    let para = post_to(b.url("/v1/chat/completions"), &ask(OPEN_PARAPHRASE), None).await;
    assert_eq!(para.cache(), "semantic");
    assert_eq!(para.content(), first.content());
    assert_eq!(cluster_stat(b.url("/admin/stats"), "entries_replicated").await, 1);
}
