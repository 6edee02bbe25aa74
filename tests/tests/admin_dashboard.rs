//! The admin routes the dashboard relies on: purge previews, stats over
//! time and ladder health.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, TestConfig};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_purge_dry_run_counts_what_would_go_and_removes_nothing() {
    let h = spawn_proxy(exact_only()).await;
    for i in 0..3 {
        chat(&h, &ask(&format!("question {i}"))).await;
    }
    chat_with(&h, &ask("team question"), &[("x-deja-namespace", "team")]).await;

    let purge = |body: serde_json::Value| {
        let h = &h;
        async move { admin_send(h, Method::POST, "/admin/cache/purge", &body).await }
    };
    let r = purge(json!({"namespace": "default/team", "dry_run": true})).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"would_remove": 1})));
    let r = purge(json!({"all": true, "dry_run": true})).await;
    assert_eq!(r.body, json!({"would_remove": 4}));
    let r = purge(json!({"model": "nobody", "dry_run": true})).await;
    assert_eq!(r.body, json!({"would_remove": 0}));
    assert_eq!(purge(json!({"dry_run": true})).await.status, 400, "an empty filter is still refused");

    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 4);
    assert_eq!(chat(&h, &ask("question 0")).await.cache(), "exact");
    assert_eq!(purge(json!({"namespace": "default/team"})).await.body["removed"], 1);
}

#[tokio::test]
async fn history_and_health_need_the_token() {
    let h = spawn_proxy(exact_only()).await;
    for path in ["/admin/history", "/admin/history?window=1w", "/admin/health"] {
        let r = client().get(h.url(path)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client().get(h.url(path)).bearer_auth("wrong").send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(admin_get(&h, path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn history_counts_the_traffic_in_its_window() {
    let h = spawn_proxy(exact_only()).await;
    for q in ["a", "b", "a", "a"] {
        chat(&h, &ask(q)).await;
    }
    for window in ["1h", "1d", "1w"] {
        let r = admin_get(&h, &format!("/admin/history?window={window}")).await;
        assert_eq!(r.status, 200, "{window}");
        let t = &r.body["totals"];
        assert_eq!((t["requests"].as_u64(), t["exact"].as_u64(), t["misses"].as_u64()), (Some(4), Some(2), Some(2)));
        assert!(t["usd_spent"].as_f64().unwrap_or(0.0) > 0.0);
        assert!(r.body["usd_spent_by_model"]["cheap"].as_f64().unwrap_or(0.0) > 0.0);
        let points = r.body["points"].as_array().cloned().unwrap_or_default();
        assert!(!points.is_empty());
        assert_eq!(points.iter().filter_map(|p| p["requests"].as_u64()).sum::<u64>(), 4);
    }
    let r = admin_get(&h, "/admin/history?window=1y").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "window");
}

#[tokio::test]
async fn health_shows_cooling_models_and_their_errors() {
    let h = spawn_proxy(TestConfig { failures_to_cool: 1, cooldown: "60s".into(), ..exact_only() }).await;
    h.mock.control.push_faults("cheap", [Fault::Status { status: 503, retry_after_s: None, retry_after: None }]);
    let r = chat(&h, &ask("falls back")).await;
    assert_eq!(r.status, 200);
    let health = admin_get(&h, "/admin/health").await.body;
    let model = |name: &str| {
        health["models"].as_array().and_then(|m| m.iter().find(|m| m["model"] == name).cloned()).expect("listed")
    };
    let cheap = model("cheap");
    assert_eq!(cheap["cooling"], true, "{cheap}");
    assert!(cheap["seconds_left"].as_f64().unwrap_or(0.0) > 50.0);
    assert_eq!(cheap["errors"], 1);
    assert_eq!(model("mid")["cooling"], false);
    assert_eq!(model("mid")["errors"], 0);
    assert_eq!(health["ladders"][0]["rungs"], json!(["cheap", "mid", "top"]));
}

#[tokio::test]
async fn stats_and_metrics_show_a_slow_rung_slower() {
    let h = spawn_proxy(exact_only()).await;
    // "cheap" answers after 300 ms; then it fails once and "mid" answers at once.
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 300 }]);
    assert_eq!(chat(&h, &ask("slow")).await.header("x-deja-model"), Some("cheap"));
    h.mock.control.push_faults("cheap", [Fault::Status { status: 503, retry_after_s: None, retry_after: None }]);
    assert_eq!(chat(&h, &ask("fast")).await.header("x-deja-model"), Some("mid"));

    let stats = admin_get(&h, "/admin/stats").await.body;
    let models = &stats["models"];
    let ttfb = |m: &str| models[m]["ttfb_ewma_ms"].as_f64().unwrap_or(0.0);
    assert!(ttfb("cheap") >= 300.0, "{models}");
    assert!(ttfb("mid") < ttfb("cheap"), "{models}");
    assert!(models["cheap"]["ttfb_p90_ms"].as_f64().unwrap_or(0.0) >= 300.0, "{models}");
    assert!((models["cheap"]["error_rate"].as_f64().unwrap_or(0.0) - 0.2).abs() < 1e-9, "{models}");
    assert_eq!(models["mid"]["error_rate"], 0.0);
    assert_eq!(models["top"]["ttfb_ewma_ms"], serde_json::Value::Null, "no sample yet");
    assert_eq!(models["cheap"]["cooling"], false);

    let health = admin_get(&h, "/admin/health").await.body;
    let cheap = health["models"].as_array().and_then(|m| m.iter().find(|m| m["model"] == "cheap").cloned());
    assert!(cheap.is_some_and(|m| m["figures"]["ttfb_ewma_ms"].as_f64().unwrap_or(0.0) >= 300.0));

    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    for gauge in ["deja_model_ttfb_ewma_seconds", "deja_model_ttfb_p90_seconds", "deja_model_error_rate"] {
        assert!(metrics.contains(&format!("{gauge}{{model=\"cheap\"}}")), "{gauge}");
        assert!(metrics.contains(&format!("{gauge}{{model=\"mid\"}}")), "{gauge}");
    }
}
