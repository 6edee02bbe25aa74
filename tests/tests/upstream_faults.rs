//! Upstream misbehaviour over real sockets: odd `Retry-After` values, and
//! which failures count against a model's health.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, Harness, TestConfig};
use serde_json::Value;

fn status(status: u16) -> Fault {
    Fault::Status { status, retry_after_s: None, retry_after: None }
}

fn status_with_retry_after(status: u16, raw: &str) -> Fault {
    Fault::Status { status, retry_after_s: None, retry_after: Some(raw.to_string()) }
}

async fn cooling_down(h: &Harness) -> Vec<String> {
    let stats = admin_get(h, "/admin/stats").await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    stats.body["cooling_down"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["model"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_absurd_retry_after_falls_back_to_the_next_rung() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [status_with_retry_after(429, "1e20")]);
    let r = chat(&h, &ask("absurd retry-after")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    assert_eq!(r.header("x-deja-attempts"), Some("2"));
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn no_retry_after_value_breaks_a_request() {
    let values = [
        "1e20",
        "-1",
        "NaN",
        "inf",
        "99999999999999999999999999",
        "0.5",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "soon",
    ];
    for v in values {
        let h = spawn_proxy(exact_only()).await;
        h.mock.control.push_faults("cheap", [status_with_retry_after(503, v)]);
        let r = chat(&h, &ask("any retry-after")).await;
        assert_eq!(r.status, 200, "Retry-After: {v}: {}", r.text);
        assert_eq!(r.header("x-deja-model"), Some("mid"), "Retry-After: {v}");
    }
}

#[tokio::test]
async fn client_errors_do_not_cool_the_model_for_everyone() {
    let h = spawn_proxy(TestConfig { failures_to_cool: 2, ..exact_only() }).await;
    let codes = [400, 404, 413, 422, 400];
    h.mock.control.push_faults("cheap", codes.map(status));
    for (i, code) in codes.into_iter().enumerate() {
        let r = chat(&h, &ask(&format!("bad request {i}"))).await;
        assert_eq!(r.status, code, "{}", r.text);
        assert_eq!(h.mock.control.calls("mid-upstream"), 0, "a client error does not fall back");
    }
    assert_eq!(cooling_down(&h).await, Vec::<String>::new());
    let r = chat(&h, &ask("a good request")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    assert_eq!(r.header("x-deja-attempts"), Some("1"));
}

#[tokio::test]
async fn rate_limits_still_cool_the_model() {
    let h = spawn_proxy(TestConfig { failures_to_cool: 2, ..exact_only() }).await;
    h.mock.control.push_faults("cheap", [status(429), status(429)]);
    for i in 0..2 {
        let r = chat(&h, &ask(&format!("busy {i}"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-deja-model"), Some("mid"));
    }
    assert_eq!(cooling_down(&h).await, vec!["cheap".to_string()]);
    let r = chat(&h, &ask("after the cooldown began")).await;
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    assert_eq!(r.header("x-deja-attempts"), Some("1"), "the cooling rung is skipped");
    assert_eq!(h.mock.control.calls("cheap"), 2);
}

#[tokio::test]
async fn a_provider_refusing_dejas_key_moves_to_the_next_rung_and_counts() {
    let h = spawn_proxy(TestConfig { failures_to_cool: 2, ..exact_only() }).await;
    h.mock.control.push_faults("cheap", [status(401), status(403)]);
    for i in 0..2 {
        let r = chat(&h, &ask(&format!("auth {i}"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-deja-model"), Some("mid"));
    }
    assert_eq!(cooling_down(&h).await, vec!["cheap".to_string()]);
}

#[tokio::test]
async fn every_rung_refusing_dejas_key_is_a_gateway_fault() {
    let h = spawn_proxy(exact_only()).await;
    for m in ["cheap", "mid-upstream", "top"] {
        h.mock.control.push_faults(m, [status(401)]);
    }
    let r = chat(&h, &ask("no rung takes our key")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    let msg = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("401"), "{msg}");
    assert_ne!(r.body["error"]["type"], Value::from("invalid_request_error"));
}
