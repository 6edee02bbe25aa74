//! The admin API and metrics as an operator uses them.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, Embedding, TestConfig};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn every_admin_route_needs_the_token() {
    let h = spawn_proxy(exact_only()).await;
    for (method, path) in [
        (Method::GET, "/admin/stats"),
        (Method::GET, "/admin/cache"),
        (Method::GET, "/admin/cache/00"),
        (Method::DELETE, "/admin/cache/00"),
        (Method::POST, "/admin/cache/purge"),
        (Method::POST, "/admin/cache/search"),
        (Method::POST, "/admin/reload"),
    ] {
        let r = client().request(method.clone(), h.url(path)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{method} {path}");
        let r = client().request(method.clone(), h.url(path)).bearer_auth("wrong").send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let h = spawn_proxy(TestConfig { admin_token: None, ..exact_only() }).await;
    let r = client().get(h.url("/admin/stats")).bearer_auth("anything").send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn stats_add_up_after_a_mix_of_hits_and_misses() {
    let h = spawn_proxy(TestConfig::default()).await;
    for q in ["alpha question", "beta question", "alpha question", "alpha question"] {
        chat(&h, &ask(q)).await;
    }
    chat_with(&h, &ask("alpha question"), &[("cache-control", "no-cache")]).await;
    chat_with(&h, &ask("alpha question"), &[("cache-control", "no-store")]).await;
    let s = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(s["requests"], 6);
    assert_eq!(s["hits"]["exact"], 2);
    assert_eq!(s["misses"], 2);
    assert_eq!(s["refreshes"], 1);
    assert_eq!(s["bypasses"], 1);
    assert!((s["hit_rate"].as_f64().unwrap_or(0.0) - 0.5).abs() < 1e-9);
    let spent = s["usd_spent"].as_f64().unwrap_or(0.0);
    let by_model = s["usd_spent_by_model"]["cheap"].as_f64().unwrap_or(0.0);
    assert!(spent > 0.0 && (spent - by_model).abs() < 1e-12);
    assert!(s["usd_saved"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(s["entries"], 2);

    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    assert_eq!(sample("deja_cache_hits_total{kind=\"exact\"}"), 2.0);
    assert_eq!(sample("deja_cache_misses_total"), 2.0);
    assert!((sample("deja_saved_usd_total") - s["usd_saved"].as_f64().unwrap_or(0.0)).abs() < 1e-9);
    assert!((sample("deja_spent_usd_total") - spent).abs() < 1e-9);
    assert_eq!(sample("deja_cache_entries"), 2.0);
    assert!(metrics.contains("deja_requests_total{"));
    assert!(metrics.contains("deja_upstream_request_duration_seconds_bucket"));
    assert!(metrics.contains("deja_proxy_overhead_seconds_count"));
}

#[tokio::test]
async fn list_show_delete_and_purge() {
    let h = spawn_proxy(TestConfig::default()).await;
    for i in 0..5 {
        chat(&h, &ask(&format!("question number {i}"))).await;
    }
    chat_with(&h, &ask("team question"), &[("x-deja-namespace", "team")]).await;
    let page = admin_get(&h, "/admin/cache?limit=4").await.body;
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["preview"], "team question", "newest first");
    let next = page["next_cursor"].as_str().expect("cursor");
    let rest = admin_get(&h, &format!("/admin/cache?limit=4&cursor={next}")).await.body;
    assert_eq!(rest["entries"].as_array().map(Vec::len), Some(2));
    let team = admin_get(&h, "/admin/cache?namespace=default/team").await.body;
    assert_eq!(team["entries"].as_array().map(Vec::len), Some(1));

    let id = entries[1]["id"].as_str().expect("id").to_string();
    let shown = admin_get(&h, &format!("/admin/cache/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body["response"]["choices"].is_array());
    assert!(shown.body["request"].is_array());
    let preview = entries[1]["preview"].as_str().expect("preview").to_string();
    assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{id}"), &json!({})).await.status, 204);
    assert_eq!(admin_get(&h, &format!("/admin/cache/{id}")).await.status, 404);
    assert_eq!(chat(&h, &ask(&preview)).await.cache(), "miss");

    let refused = admin_send(&h, Method::POST, "/admin/cache/purge", &json!({})).await;
    assert_eq!(refused.status, 400);
    let purged = admin_send(&h, Method::POST, "/admin/cache/purge", &json!({"namespace": "default/team"})).await;
    assert_eq!(purged.body["removed"], 1);
    let purged = admin_send(&h, Method::POST, "/admin/cache/purge", &json!({"all": true})).await;
    assert_eq!(purged.body["removed"], 5);
    let h = h.restart().await;
    assert_eq!(admin_get(&h, "/admin/stats").await.body["entries"], 0);
    assert_eq!(chat(&h, &ask("question number 0")).await.cache(), "miss", "purged entries stay purged after a restart");
}

#[tokio::test]
async fn search_reports_what_a_prompt_would_hit() {
    let h = spawn_proxy(TestConfig { embedding: Embedding::Real, threshold: 0.8, ..Default::default() }).await;
    chat(&h, &ask("When do you open?")).await;
    chat(&h, &ask("Book a table for 2")).await;
    let r =
        admin_send(&h, Method::POST, "/admin/cache/search", &json!({"prompt": "What time do you open?", "k": 5})).await;
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results[0]["text"], "When do you open?");
    assert_eq!(results[0]["would_serve"], true);
    let r = admin_send(&h, Method::POST, "/admin/cache/search", &json!({"prompt": "Book a table for 3"})).await;
    let top = &r.body["results"][0];
    assert_eq!(top["text"], "Book a table for 2");
    assert_eq!(top["would_serve"], false);
    assert_eq!(top["refused_by"], "numbers");
}

#[tokio::test]
async fn a_reloaded_threshold_turns_a_hit_into_a_miss_and_bad_files_are_refused() {
    let h = spawn_proxy(TestConfig { embedding: Embedding::Real, threshold: 0.8, ..Default::default() }).await;
    chat(&h, &ask("When do you open?")).await;
    assert_eq!(chat(&h, &ask("What time do you open?")).await.cache(), "semantic");

    let original = std::fs::read_to_string(&h.config_path).expect("config");
    std::fs::write(&h.config_path, original.replace("threshold = 0.8", "threshold = 1.5")).expect("write");
    let r = admin_send(&h, Method::POST, "/admin/reload", &json!({})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"].as_str().unwrap_or("").contains("cache.semantic.threshold"));
    assert_eq!(chat(&h, &ask("What time do you open?")).await.cache(), "semantic", "running config unchanged");

    std::fs::write(&h.config_path, original.replace("threshold = 0.8", "threshold = 0.999")).expect("write");
    let r = admin_send(&h, Method::POST, "/admin/reload", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(chat(&h, &ask("At what time do you open?")).await.cache(), "miss");
    let _: Value = r.body;
}
