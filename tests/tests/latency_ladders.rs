//! Latency-aware ladders over real sockets: `strategy = "latency"` and
//! `max_ttfb`, with the mock's injected delays making a rung slow.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, Harness, TestConfig};
use serde_json::json;

fn with_ladders(toml: &str) -> TestConfig {
    TestConfig { extra_toml: toml.into(), ..exact_only() }
}

fn ask_ladder(ladder: &str, content: &str) -> serde_json::Value {
    json!({"model": ladder, "messages": [{"role": "user", "content": content}]})
}

async fn metrics(h: &Harness) -> String {
    client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

/// The value of one sample line, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test]
async fn the_latency_strategy_moves_a_slow_rung_back() {
    let h = spawn_proxy(with_ladders(
        r#"
[[ladders]]
name = "quick"
rungs = ["cheap", "mid"]
strategy = "latency"
"#,
    ))
    .await;
    h.mock.control.set_sticky("cheap", Some(Fault::Delay { ms: 300 }));

    // Nothing known yet: cost order, and "cheap" is seen to be slow.
    let r = chat(&h, &ask_ladder("quick", "first")).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);
    // "mid" has no sample: it is tried first, and is fast.
    let r = chat(&h, &ask_ladder("quick", "second")).await;
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    // Both known: the fastest first, although it costs more.
    for i in 0..3 {
        let r = chat(&h, &ask_ladder("quick", &format!("again {i}"))).await;
        assert_eq!(r.header("x-deja-model"), Some("mid"), "request {i}");
        assert_eq!(r.header("x-deja-attempts"), Some("1"));
    }
    assert_eq!(h.mock.control.calls("cheap"), 1);

    // The cost-ordered ladder over the same models still starts at "cheap".
    let r = chat(&h, &ask("cost order")).await;
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    assert_eq!(h.mock.control.calls("cheap"), 2);
}

#[tokio::test]
async fn the_latency_strategy_keeps_cost_order_between_equally_fast_rungs() {
    let h = spawn_proxy(with_ladders(
        r#"
[[ladders]]
name = "quick"
rungs = ["cheap", "mid"]
strategy = "latency"
"#,
    ))
    .await;
    // The same delay on both: their p90s land in the same ×1.25 class.
    h.mock.control.set_sticky("cheap", Some(Fault::Delay { ms: 100 }));
    h.mock.control.set_sticky("mid-upstream", Some(Fault::Delay { ms: 100 }));
    for i in 0..2 {
        chat(&h, &ask_ladder("quick", &format!("warm {i}"))).await;
    }
    assert_eq!(h.mock.control.calls("mid-upstream"), 1, "the unknown rung was tried once");
    // A tie: the cheaper one.
    for i in 0..3 {
        let r = chat(&h, &ask_ladder("quick", &format!("tie {i}"))).await;
        assert_eq!(r.header("x-deja-model"), Some("cheap"), "request {i}");
    }
}

#[tokio::test]
async fn max_ttfb_skips_a_rung_seen_to_be_slow() {
    let h = spawn_proxy(with_ladders(
        r#"
[[ladders]]
name = "snappy"
rungs = ["cheap", "mid"]
max_ttfb = "200ms"
"#,
    ))
    .await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 400 }]);
    let r = chat(&h, &ask_ladder("snappy", "slow one")).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);

    // "cheap" now has a p90 over budget: skipped, with no call made.
    for i in 0..2 {
        let r = chat(&h, &ask_ladder("snappy", &format!("next {i}"))).await;
        assert_eq!(r.header("x-deja-model"), Some("mid"), "request {i}");
        assert_eq!(r.header("x-deja-attempts"), Some("1"));
    }
    assert_eq!(h.mock.control.calls("cheap"), 1);
    let m = metrics(&h).await;
    let skipped = r#"deja_rung_skipped_total{ladder="snappy",model="cheap",reason="slow_first_byte"}"#;
    assert_eq!(sample(&m, skipped), 2.0, "{m}");
    assert_eq!(sample(&m, r#"deja_ladder_ttfb_fallback_total{ladder="snappy"}"#), 0.0);

    // A ladder without max_ttfb still uses it.
    assert_eq!(chat(&h, &ask("no budget")).await.header("x-deja-model"), Some("cheap"));
}

#[tokio::test]
async fn max_ttfb_never_skips_every_rung() {
    let h = spawn_proxy(with_ladders(
        r#"
[[ladders]]
name = "snappy"
rungs = ["cheap", "mid"]
max_ttfb = "150ms"
"#,
    ))
    .await;
    h.mock.control.set_sticky("cheap", Some(Fault::Delay { ms: 300 }));
    h.mock.control.set_sticky("mid-upstream", Some(Fault::Delay { ms: 300 }));
    assert_eq!(chat(&h, &ask_ladder("snappy", "one")).await.header("x-deja-model"), Some("cheap"));
    // Skips "cheap", and "mid" is slow too.
    assert_eq!(chat(&h, &ask_ladder("snappy", "two")).await.header("x-deja-model"), Some("mid"));
    // Both over budget: none is skipped, in cost order, and it is counted.
    let r = chat(&h, &ask_ladder("snappy", "three")).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("cheap")), "{}", r.text);
    let m = metrics(&h).await;
    assert_eq!(sample(&m, r#"deja_ladder_ttfb_fallback_total{ladder="snappy"}"#), 1.0, "{m}");
}
