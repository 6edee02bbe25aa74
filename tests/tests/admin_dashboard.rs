//! The admin routes the dashboard relies on: purge previews, stats over
//! time (in total, per model and per namespace) and ladder health.

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
    for path in [
        "/admin/history",
        "/admin/history?window=1w",
        "/admin/history/by-model",
        "/admin/history/by-namespace?window=1d",
        "/admin/health",
    ] {
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

/// `(key, totals)` of each series, busiest first.
fn series(body: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let all = body["series"].as_array().cloned().unwrap_or_default();
    all.iter().map(|s| (s["key"].as_str().unwrap_or("").to_string(), s["totals"].clone())).collect()
}

#[tokio::test]
async fn history_splits_the_traffic_by_model_and_by_namespace() {
    let h = spawn_proxy(exact_only()).await;
    // "auto" starts at cheap: two misses and an exact hit in the default namespace.
    for q in ["a", "b", "a"] {
        chat(&h, &ask(q)).await;
    }
    // Asked of "mid" by name in namespace "team": a miss, then an exact hit.
    let mid = json!({"model": "mid", "messages": [{"role": "user", "content": "c"}]});
    for cache in ["miss", "exact"] {
        let r = chat_with(&h, &mid, &[("x-deja-namespace", "team")]).await;
        assert_eq!((r.cache(), r.header("x-deja-model")), (cache, Some("mid")));
    }
    // A streamed miss from "top" is counted when its stream ends.
    let top = json!({"model": "top", "stream": true, "messages": [{"role": "user", "content": "d"}]});
    let r = chat_with(&h, &top, &[("x-deja-namespace", "team")]).await;
    assert_eq!((r.status, r.header("x-deja-model")), (200, Some("top")));

    for window in ["1h", "1d", "1w"] {
        let by_model = admin_get(&h, &format!("/admin/history/by-model?window={window}")).await;
        assert_eq!(by_model.status, 200);
        assert_eq!((by_model.body["by"].as_str(), by_model.body["window"].as_str()), (Some("model"), Some(window)));
        let models = series(&by_model.body);
        let keys: Vec<&str> = models.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["cheap", "mid", "top"], "{}", by_model.body);
        let (cheap, mid, top) = (&models[0].1, &models[1].1, &models[2].1);
        let counts = |t: &serde_json::Value| {
            [&t["requests"], &t["exact"], &t["semantic"], &t["misses"]].map(|v| v.as_u64().unwrap_or(99))
        };
        assert_eq!(counts(cheap), [3, 1, 0, 2]);
        assert_eq!(counts(mid), [2, 1, 0, 1]);
        assert_eq!(counts(top), [1, 0, 0, 1]);
        for t in [cheap, mid] {
            assert!(t["usd_saved"].as_f64().unwrap_or(0.0) > 0.0, "{t}");
        }
        // The same spend the totals history reads from the store.
        let history = admin_get(&h, &format!("/admin/history?window={window}")).await.body;
        for (model, t) in [("cheap", cheap), ("mid", mid), ("top", top)] {
            assert_eq!(t["usd_spent"], history["usd_spent_by_model"][model], "{model} in {window}");
        }
        // The points add up to the totals.
        for s in by_model.body["series"].as_array().into_iter().flatten() {
            let points = s["requests"].as_array().cloned().unwrap_or_default();
            assert_eq!(points.len(), by_model.body["t_ms"].as_array().map_or(0, Vec::len));
            assert_eq!(Some(points.iter().filter_map(|p| p.as_u64()).sum::<u64>()), s["totals"]["requests"].as_u64());
        }

        let by_ns = admin_get(&h, &format!("/admin/history/by-namespace?window={window}")).await.body;
        let namespaces = series(&by_ns);
        let keys: Vec<&str> = namespaces.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["default", "default/team"], "{by_ns}");
        assert_eq!(counts(&namespaces[0].1), [3, 1, 0, 2]);
        assert_eq!(counts(&namespaces[1].1), [3, 1, 0, 2]);
    }
    let r = admin_get(&h, "/admin/history/by-model?window=1y").await;
    assert_eq!((r.status, r.body["error"]["param"].as_str()), (400, Some("window")));
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
