//! The exact cache over real sockets: keys, tenants, Cache-Control, streaming
//! replay, coalescing and what is never cached.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{eventually, spawn_proxy, TestConfig};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_same_request_twice_makes_one_upstream_call() {
    let h = spawn_proxy(exact_only()).await;
    let first = chat(&h, &ask("What are your opening hours?")).await;
    let second = chat(&h, &ask("What are your opening hours?")).await;
    assert_eq!(first.cache(), "miss");
    assert_eq!(second.cache(), "exact");
    assert_eq!(second.content(), first.content());
    assert_eq!(second.header("x-deja-model"), Some("cheap"));
    assert!(second.header("x-deja-entry").is_some_and(|e| e.len() == 64));
    assert!(second.header("age").is_some());
    let saved: f64 = second.header("x-deja-saved-usd").and_then(|v| v.parse().ok()).expect("saved header");
    let cost: f64 = first.header("x-deja-cost-usd").and_then(|v| v.parse().ok()).expect("cost header");
    assert!((saved - cost).abs() < 1e-9);
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn key_order_does_not_matter_but_every_parameter_does() {
    let h = spawn_proxy(exact_only()).await;
    let base = r#"{"model":"auto","temperature":0.5,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#;
    let reordered = r#"{"messages":[{"content":"be brief","role":"system"},{"content":"hi","role":"user"}],"temperature":0.5,"model":"auto"}"#;
    let send = |b: &'static str| {
        let url = h.url("/v1/chat/completions");
        async move {
            let r = client().post(url).header("content-type", "application/json").body(b).send().await.expect("answer");
            r.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
        }
    };
    assert_eq!(send(base).await, "miss");
    assert_eq!(send(reordered).await, "exact");
    let variants = [
        r#"{"model":"auto","temperature":0.9,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"auto","temperature":0.5,"messages":[{"role":"system","content":"be long"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"auto","temperature":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"mid","temperature":0.5,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
    ];
    for v in variants {
        assert_eq!(send(v).await, "miss", "{v}");
    }
}

#[tokio::test]
async fn tenants_never_share_entries() {
    let h = spawn_proxy(TestConfig { client_keys: vec!["sk-a".into(), "sk-b".into()], ..exact_only() }).await;
    let a = [("authorization", "Bearer sk-a")];
    let b = [("authorization", "Bearer sk-b")];
    assert_eq!(chat_with(&h, &ask("shared question"), &a).await.cache(), "miss");
    assert_eq!(chat_with(&h, &ask("shared question"), &a).await.cache(), "exact");
    assert_eq!(chat_with(&h, &ask("shared question"), &b).await.cache(), "miss");
    let narrowed = [("authorization", "Bearer sk-a"), ("x-deja-namespace", "team-1")];
    assert_eq!(chat_with(&h, &ask("shared question"), &narrowed).await.cache(), "miss");
}

#[tokio::test]
async fn cache_control_no_store_no_cache_and_max_age() {
    let h = spawn_proxy(exact_only()).await;
    let q = ask("policy question");
    assert_eq!(chat_with(&h, &q, &[("cache-control", "no-store")]).await.cache(), "bypass");
    assert_eq!(chat(&h, &q).await.cache(), "miss", "no-store wrote nothing");
    assert_eq!(chat(&h, &q).await.cache(), "exact");
    assert_eq!(chat_with(&h, &q, &[("cache-control", "no-store")]).await.cache(), "bypass", "no-store reads nothing");
    assert_eq!(chat_with(&h, &q, &[("cache-control", "no-cache")]).await.cache(), "refresh");
    assert_eq!(h.mock.control.total_calls(), 4, "bypass, miss, bypass, refresh");

    let short = ask("short-lived");
    assert_eq!(chat_with(&h, &short, &[("x-deja-ttl", "1s")]).await.cache(), "miss");
    assert_eq!(chat(&h, &short).await.cache(), "exact");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(chat(&h, &short).await.cache(), "miss", "expired entries are never served");
}

/// RFC 9111: a request's `max-age` bounds the age of what it is served and
/// `min-fresh` the time it must still have to live; neither sets how long
/// an answer is kept.
#[tokio::test]
async fn max_age_and_min_fresh_bound_what_a_request_is_served() {
    let h = spawn_proxy(exact_only()).await;
    let q = ask("how fresh is this?");
    assert_eq!(chat_with(&h, &q, &[("cache-control", "max-age=1")]).await.cache(), "miss");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let strict = chat_with(&h, &q, &[("cache-control", "max-age=1")]).await;
    assert_eq!(strict.cache(), "miss", "an answer older than max-age is not served");
    assert_eq!(h.mock.control.total_calls(), 2);
    let again = chat(&h, &q).await;
    assert_eq!(again.cache(), "exact", "max-age=1 did not make the first answer expire");
    assert!(
        again.header("age").and_then(|a| a.parse::<u64>().ok()).is_some_and(|a| a < 1),
        "the fresh answer replaced it"
    );
    assert_eq!(chat_with(&h, &q, &[("cache-control", "max-age=60")]).await.cache(), "exact");
    // The config's TTL is 1h: an hour and a bit of freshness cannot be promised.
    assert_eq!(chat_with(&h, &q, &[("cache-control", "min-fresh=3700")]).await.cache(), "miss");
    assert_eq!(chat_with(&h, &q, &[("cache-control", "min-fresh=60")]).await.cache(), "exact");
    // max-age=0: nothing stored is fresh enough, and the answer is stored.
    assert_eq!(chat_with(&h, &q, &[("cache-control", "max-age=0")]).await.cache(), "refresh");
    assert_eq!(h.mock.control.total_calls(), 4);
    // A client's TTL must be a duration, and is capped by cache.max_ttl (7d by default).
    let bad = chat_with(&h, &ask("keep me"), &[("x-deja-ttl", "forever")]).await;
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (400, Some("invalid_ttl")));
    let long = chat_with(&h, &ask("keep me"), &[("x-deja-ttl", "3650d")]).await;
    assert_eq!(long.cache(), "miss");
    let listed = admin_get(&h, "/admin/cache?limit=1").await.body;
    let entry = &listed["entries"][0];
    let kept_ms = entry["expires_ms"].as_u64().unwrap_or(0).saturating_sub(entry["created_ms"].as_u64().unwrap_or(0));
    assert!(kept_ms <= 7 * 86_400_000, "capped at cache.max_ttl: {listed}");
}

#[tokio::test]
async fn a_streamed_miss_replays_as_a_stream_and_as_json() {
    let h = spawn_proxy(exact_only()).await;
    let mut body = ask("stream then replay");
    body["stream"] = json!(true);
    let live = chat(&h, &body).await;
    let live_text = streamed_content(&live.text);
    // A streamed answer is stored just after [DONE] reaches the client.
    let stored = eventually(Duration::from_secs(5), || async {
        admin_get(&h, "/admin/stats").await.body["entries"].as_u64() == Some(1)
    })
    .await;
    assert!(stored, "the streamed answer is stored");
    let replay = chat(&h, &body).await;
    assert_eq!(replay.cache(), "exact");
    assert_eq!(replay.header("content-type"), Some("text/event-stream"));
    assert_eq!(streamed_content(&replay.text), live_text);
    assert_eq!(events(&replay.text).last().map(String::as_str), Some("[DONE]"));
    body["stream"] = json!(false);
    let as_json = chat(&h, &body).await;
    assert_eq!(as_json.cache(), "exact");
    assert_eq!(as_json.content(), live_text);
    assert_eq!(as_json.body["choices"][0]["finish_reason"], "stop");

    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let with_usage = chat(&h, &body).await;
    assert!(events(&with_usage.text).iter().any(|e| e.contains("\"total_tokens\"")));
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn tool_calls_survive_the_cache() {
    let h = spawn_proxy(exact_only()).await;
    let mut body = ask("weather in Paris");
    body["tools"] =
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let first = chat(&h, &body).await;
    let second = chat(&h, &body).await;
    assert_eq!(second.cache(), "exact");
    assert_eq!(second.body["choices"][0]["message"]["tool_calls"], first.body["choices"][0]["message"]["tool_calls"]);
    assert_eq!(second.body["choices"][0]["finish_reason"], "tool_calls");
    body["stream"] = json!(true);
    let streamed = chat(&h, &body).await;
    assert!(streamed.text.contains("get_weather"));
}

#[tokio::test]
async fn fifty_identical_concurrent_requests_make_one_upstream_call() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [deja_mock_upstream::Fault::Delay { ms: 300 }]);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let url = h.url("/v1/chat/completions");
        let mut body = ask("stampede");
        if i % 2 == 0 {
            body["stream"] = json!(true);
        }
        tasks.push(tokio::spawn(async move {
            let r = client().post(url).json(&body).send().await.expect("answer");
            let status = r.status().as_u16();
            let text = r.text().await.expect("body");
            let content = if i % 2 == 0 {
                streamed_content(&text)
            } else {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map(|v| v["choices"][0]["message"]["content"].to_string())
                    .unwrap_or_default()
            };
            (status, content)
        }));
    }
    for t in tasks {
        let (status, content) = t.await.expect("task");
        assert_eq!(status, 200, "{content}");
        assert!(content.contains("Simulated answer to: stampede"), "{content}");
    }
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn when_the_shared_call_fails_nobody_hangs() {
    let h = spawn_proxy(exact_only()).await;
    // Every rung fails, the last one slowly: the followers get the error, promptly.
    h.mock.control.set_sticky("cheap", Some(Fault::Status { status: 500, retry_after_s: None, retry_after: None }));
    h.mock
        .control
        .set_sticky("mid-upstream", Some(Fault::Status { status: 500, retry_after_s: None, retry_after: None }));
    h.mock.control.set_sticky("top", Some(Fault::Delay { ms: 300 }));
    h.mock.control.push_faults("top", [Fault::Status { status: 500, retry_after_s: None, retry_after: None }]);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let url = h.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            client().post(url).json(&ask("all fail")).send().await.expect("answer").status().as_u16()
        }));
    }
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.expect("task"));
        }
        statuses
    })
    .await
    .expect("no request hangs");
    assert!(outcome.iter().all(|s| *s == 502), "{outcome:?}");
}

#[tokio::test]
async fn errors_and_truncated_answers_are_never_cached() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [Fault::Status { status: 400, retry_after_s: None, retry_after: None }]);
    assert_eq!(chat(&h, &ask("refused")).await.status, 400);
    assert_eq!(chat(&h, &ask("refused")).await.cache(), "miss");
    let mut short = ask("cut short");
    short["max_tokens"] = json!(2);
    assert_eq!(chat(&h, &short).await.body["choices"][0]["finish_reason"], "length");
    assert_eq!(chat(&h, &short).await.cache(), "miss");

    let mut body = ask("broken stream");
    body["stream"] = json!(true);
    h.mock.control.push_faults("cheap", [Fault::CutAfter { chunks: 2 }]);
    chat(&h, &body).await;
    assert_eq!(chat(&h, &body).await.cache(), "miss", "an interrupted stream is not stored");
}

#[tokio::test]
async fn entries_and_counters_survive_a_restart() {
    let h = spawn_proxy(exact_only()).await;
    chat(&h, &ask("remember me")).await;
    chat(&h, &ask("remember me")).await;
    let h = h.restart().await;
    assert_eq!(chat(&h, &ask("remember me")).await.cache(), "exact");
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["hits"]["exact"], 2);
    assert_eq!(stats["misses"], 1);
}

#[tokio::test]
async fn past_max_entries_the_least_recently_used_are_evicted() {
    let h = spawn_proxy(TestConfig { max_entries: 3, ..exact_only() }).await;
    for q in ["q1", "q2", "q3"] {
        chat(&h, &ask(q)).await;
    }
    // Hit q1 a second later so it is the most recently used.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(chat(&h, &ask("q1")).await.cache(), "exact");
    chat(&h, &ask("q4")).await;
    chat(&h, &ask("q5")).await;
    let evicted = eventually(Duration::from_secs(5), || async {
        admin_get(&h, "/admin/stats").await.body["entries"].as_u64() == Some(3)
    })
    .await;
    assert!(evicted, "{}", admin_get(&h, "/admin/stats").await.body);
    assert_eq!(chat(&h, &ask("q1")).await.cache(), "exact", "recently used entries survive");
    assert_eq!(chat(&h, &ask("q2")).await.cache(), "miss", "the least recently used went first");
}

#[tokio::test]
async fn past_max_bytes_the_least_recently_used_are_evicted_and_the_sizes_are_reported() {
    let h = spawn_proxy(TestConfig { max_bytes: Some(1 << 20), ..exact_only() }).await;
    // Each entry holds about twice its question as stored: 200 KB here.
    let long = "x".repeat(100_000);
    for n in 0..8 {
        chat(&h, &ask(&format!("{long} {n}"))).await;
    }
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["max_bytes"], 1 << 20);
    let bounded = eventually(Duration::from_secs(5), || async {
        admin_get(&h, "/admin/stats").await.body["stored_bytes"].as_u64().is_some_and(|b| b <= 1 << 20)
    })
    .await;
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert!(bounded, "{stats}");
    let entries = stats["entries"].as_u64().unwrap_or(0);
    assert!((3..=5).contains(&entries), "{stats}");
    assert_eq!(chat(&h, &ask(&format!("{long} 0"))).await.cache(), "miss", "the oldest large entry went first");
    assert_eq!(chat(&h, &ask(&format!("{long} 7"))).await.cache(), "exact", "the newest stays");
    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_cache_stored_bytes "), "{metrics}");
    assert!(metrics.contains("deja_semantic_index_memory_bytes "), "{metrics}");
}
