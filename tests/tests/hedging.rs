//! Hedged requests over real sockets: a slow first rung gets the next one
//! raced against it after `hedge_after`; the first to send a byte wins and
//! the other's connection is closed (the mock sees the hang-up).

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{eventually, spawn_proxy, Harness, TestConfig};
use serde_json::json;
use std::time::{Duration, Instant};

const HEDGED: &str = r#"
[[ladders]]
name = "hedged"
rungs = ["cheap", "mid"]
hedge_after = "150ms"
"#;

fn hedged() -> TestConfig {
    // One counted failure would cool a model: a loser must not count as one.
    TestConfig { extra_toml: HEDGED.into(), failures_to_cool: 1, ..exact_only() }
}

fn ask_hedged(content: &str, stream: bool) -> serde_json::Value {
    json!({"model": "hedged", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

async fn metrics(h: &Harness) -> String {
    client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

/// The value of one sample line, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn hedges(m: &str, winner: &str) -> f64 {
    sample(m, &format!("deja_hedges_total{{ladder=\"hedged\",winner=\"{winner}\"}}"))
}

async fn hung_up(h: &Harness, model: &str) -> bool {
    eventually(Duration::from_secs(2), || async { h.mock.control.hangups(model) == 1 }).await
}

/// The loser is neither cooling nor counted as an error.
async fn assert_unpunished(h: &Harness, model: &str) {
    let stats = admin_get(h, "/admin/stats").await.body;
    assert_eq!(stats["cooling_down"], json!([]), "{stats}");
    assert_eq!(stats["models"][model]["error_rate"], 0.0, "{stats}");
    let m = metrics(h).await;
    assert!(!m.contains(&format!("deja_upstream_errors_total{{model=\"{model}\"")), "{m}");
}

#[tokio::test]
async fn a_slow_first_rung_is_hedged_and_the_fast_one_wins() {
    let h = spawn_proxy(hedged()).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 3_000 }]);
    let started = Instant::now();
    let r = chat(&h, &ask_hedged("hedge me", false)).await;
    let took = started.elapsed();
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("mid")), "{}", r.text);
    assert_eq!(r.header("x-deja-attempts"), Some("2"));
    assert!(took >= Duration::from_millis(150), "the hedge waits hedge_after: {took:?}");
    assert!(took < Duration::from_millis(2_000), "the slow rung is not waited for: {took:?}");
    // The slow rung got the request, and its connection was closed.
    assert_eq!(h.mock.control.calls("cheap"), 1);
    assert_eq!(h.mock.control.calls("mid-upstream"), 1);
    assert!(hung_up(&h, "cheap").await, "the loser's connection is closed");

    let m = metrics(&h).await;
    assert_eq!(hedges(&m, "hedge"), 1.0, "{m}");
    assert_eq!(sample(&m, r#"deja_hedge_eligible_total{ladder="hedged"}"#), 1.0);
    // Both are billed: the loser at its prompt's input price.
    let loser_usd = sample(&m, r#"deja_hedge_loser_usd_total{model="cheap"}"#);
    assert!(loser_usd > 0.0, "{m}");
    assert!((sample(&m, r#"deja_spent_usd_total{model="cheap"}"#) - loser_usd).abs() < 1e-12, "{m}");
    let mid_usd = sample(&m, r#"deja_spent_usd_total{model="mid"}"#);
    let cost: f64 = r.header("x-deja-cost-usd").and_then(|c| c.parse().ok()).unwrap_or(0.0);
    assert!((cost - (mid_usd + loser_usd)).abs() < 1e-9, "{cost} vs {mid_usd} + {loser_usd}");
    assert_unpunished(&h, "cheap").await;

    // The winner's answer, and only it, was cached.
    let again = chat(&h, &ask_hedged("hedge me", false)).await;
    assert_eq!((again.cache(), again.header("x-deja-model")), ("exact", Some("mid")));
    assert_eq!(again.content(), r.content());
    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 1);
    assert_eq!(h.mock.control.total_calls(), 2);
}

#[tokio::test]
async fn coalesced_requests_share_the_hedge_winner() {
    let h = spawn_proxy(hedged()).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 3_000 }]);
    let body = ask_hedged("asked twice at once", false);
    let (a, b) = tokio::join!(chat(&h, &body), chat(&h, &body));
    for r in [&a, &b] {
        assert_eq!((r.status, r.header("x-deja-model")), (200, Some("mid")), "{}", r.text);
    }
    let mut caches = [a.cache(), b.cache()];
    caches.sort_unstable();
    assert_eq!(caches, ["coalesced", "miss"]);
    assert_eq!(a.content(), b.content());
    assert_eq!((h.mock.control.calls("cheap"), h.mock.control.calls("mid-upstream")), (1, 1));
    assert_eq!(hedges(&metrics(&h).await, "hedge"), 1.0);
    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 1);
}

#[tokio::test]
async fn no_hedge_when_the_first_rung_answers_in_time() {
    let h = spawn_proxy(hedged()).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 50 }]);
    for (i, stream) in [false, true].into_iter().enumerate() {
        let r = chat(&h, &ask_hedged(&format!("in time {i}"), stream)).await;
        assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);
        assert_eq!(r.header("x-deja-attempts"), Some("1"));
    }
    assert_eq!(h.mock.control.calls("mid-upstream"), 0);
    let m = metrics(&h).await;
    assert_eq!(sample(&m, r#"deja_hedge_eligible_total{ladder="hedged"}"#), 2.0, "{m}");
    assert!(!m.contains("deja_hedges_total{"), "{m}");
}

#[tokio::test]
async fn the_first_rung_wins_when_the_hedge_is_slower() {
    let h = spawn_proxy(hedged()).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 400 }]);
    h.mock.control.push_faults("mid-upstream", [Fault::Delay { ms: 3_000 }]);
    let r = chat(&h, &ask_hedged("first wins", false)).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);
    assert!(hung_up(&h, "mid-upstream").await, "the hedge's connection is closed");
    let m = metrics(&h).await;
    assert_eq!(hedges(&m, "first"), 1.0, "{m}");
    assert!(sample(&m, r#"deja_hedge_loser_usd_total{model="mid"}"#) > 0.0, "{m}");
    assert_unpunished(&h, "mid").await;
}

#[tokio::test]
async fn a_failing_rung_in_the_race_leaves_the_other_to_answer() {
    let h = spawn_proxy(hedged()).await;
    // The first is slow, the hedge fails at once: the first still answers.
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 400 }]);
    let fail = Fault::Status { status: 503, retry_after_s: None, retry_after: None };
    h.mock.control.push_faults("mid-upstream", [fail]);
    let r = chat(&h, &ask_hedged("hedge fails", false)).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);
    assert_eq!(h.mock.control.hangups("cheap"), 0);
    let m = metrics(&h).await;
    assert_eq!(hedges(&m, "first"), 1.0, "{m}");
    assert!(m.contains(r#"deja_upstream_errors_total{model="mid",kind="server_error"} 1"#), "{m}");
    assert_eq!(sample(&m, r#"deja_hedge_loser_usd_total{model="mid"}"#), 0.0, "a failure is not a loser");
}

#[tokio::test]
async fn a_streamed_miss_is_hedged_too() {
    let h = spawn_proxy(hedged()).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 3_000 }]);
    let started = Instant::now();
    let r = chat(&h, &ask_hedged("stream me", true)).await;
    assert!(started.elapsed() < Duration::from_millis(2_000), "{:?}", started.elapsed());
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("mid")), "{}", r.text);
    assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);
    let content = streamed_content(&r.text);
    assert!(!content.is_empty());
    assert!(hung_up(&h, "cheap").await, "the loser's connection is closed");
    let m = metrics(&h).await;
    assert_eq!(hedges(&m, "hedge"), 1.0, "{m}");
    assert!(sample(&m, r#"deja_hedge_loser_usd_total{model="cheap"}"#) > 0.0, "{m}");
    assert_unpunished(&h, "cheap").await;

    // The winner's stream was cached: replayed, from "mid".
    let again = chat(&h, &ask_hedged("stream me", true)).await;
    assert_eq!((again.cache(), again.header("x-deja-model")), ("exact", Some("mid")));
    assert_eq!(streamed_content(&again.text), content);
    assert_eq!(h.mock.control.total_calls(), 2);
}
