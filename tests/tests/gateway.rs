//! The gateway core over real sockets: OpenAI wire format, the ladder,
//! fallback, cooldowns, errors and credentials.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn a_plain_completion_goes_through_the_cheapest_rung_and_is_priced() {
    let h = spawn_proxy(exact_only()).await;
    let r = chat(&h, &ask("hello there")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "chat.completion");
    assert_eq!(r.content(), "[cheap] Simulated answer to: hello there");
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    assert_eq!(r.header("x-deja-attempts"), Some("1"));
    assert_eq!(r.cache(), "miss");
    let usage = &r.body["usage"];
    let expected = (usage["prompt_tokens"].as_f64().unwrap_or(0.0) * 0.20
        + usage["completion_tokens"].as_f64().unwrap_or(0.0) * 0.80)
        / 1e6;
    let cost: f64 = r.header("x-deja-cost-usd").and_then(|c| c.parse().ok()).expect("cost header");
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn a_model_name_is_sent_under_its_upstream_name() {
    let h = spawn_proxy(exact_only()).await;
    let r = chat(&h, &json!({"model": "mid", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.mock.control.calls("mid-upstream"), 1);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
}

#[tokio::test]
async fn the_ladder_climbs_on_429_500_and_timeouts() {
    let h = spawn_proxy(TestConfig { first_byte_timeout: "300ms".into(), ..exact_only() }).await;
    h.mock.control.push_faults("cheap", [Fault::Status { status: 429, retry_after_s: None, retry_after: None }]);
    h.mock.control.push_faults("mid-upstream", [Fault::Status { status: 500, retry_after_s: None, retry_after: None }]);
    let r = chat(&h, &ask("climb")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("top"));
    assert_eq!(r.header("x-deja-attempts"), Some("3"));

    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 2_000 }]);
    let r = chat(&h, &ask("slow")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
}

#[tokio::test]
async fn a_400_is_returned_without_falling_back() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [Fault::Status { status: 400, retry_after_s: None, retry_after: None }]);
    let r = chat(&h, &ask("bad")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(r.body["error"]["message"].as_str().unwrap_or("").contains("injected failure"));
    assert_eq!(h.mock.control.calls("mid-upstream"), 0);
}

#[tokio::test]
async fn a_failing_rung_cools_down_and_is_skipped() {
    let h = spawn_proxy(TestConfig { failures_to_cool: 2, ..exact_only() }).await;
    h.mock.control.set_sticky("cheap", Some(Fault::Status { status: 503, retry_after_s: None, retry_after: None }));
    for i in 0..2 {
        let r = chat(&h, &ask(&format!("q{i}"))).await;
        assert_eq!(r.header("x-deja-model"), Some("mid"));
    }
    assert_eq!(h.mock.control.calls("cheap"), 2);
    let r = chat(&h, &ask("q3")).await;
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    assert_eq!(r.header("x-deja-attempts"), Some("1"), "cooling rung skipped");
    assert_eq!(h.mock.control.calls("cheap"), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_when_retrying_a_single_model() {
    let h = spawn_proxy(TestConfig { model_retries: 1, ..exact_only() }).await;
    h.mock.control.push_faults("top", [Fault::Status { status: 429, retry_after_s: Some(1), retry_after: None }]);
    let started = std::time::Instant::now();
    let r = chat(&h, &json!({"model": "top", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-attempts"), Some("2"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn an_exhausted_ladder_names_every_rungs_reason() {
    let h = spawn_proxy(exact_only()).await;
    for m in ["cheap", "mid-upstream", "top"] {
        h.mock.control.push_faults(m, [Fault::Status { status: 500, retry_after_s: None, retry_after: None }]);
    }
    let r = chat(&h, &ask("doomed")).await;
    assert_eq!(r.status, 502);
    let msg = r.body["error"]["message"].as_str().unwrap_or("");
    for m in ["cheap", "mid", "top"] {
        assert!(msg.contains(m), "{msg}");
    }
    for m in ["cheap", "mid-upstream", "top"] {
        h.mock.control.push_faults(m, [Fault::Status { status: 429, retry_after_s: None, retry_after: None }]);
    }
    let r = chat(&h, &ask("busy")).await;
    assert_eq!(r.status, 503, "{}", r.text);
}

#[tokio::test]
async fn malformed_upstream_bodies_fall_back() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [Fault::Malformed]);
    let r = chat(&h, &ask("garbage")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
}

#[tokio::test]
async fn client_errors_are_openai_shaped() {
    let h = spawn_proxy(TestConfig { max_body_bytes: 2_000, ..exact_only() }).await;
    let raw = |body: &'static str| {
        let url = h.url("/v1/chat/completions");
        async move {
            let r =
                client().post(url).header("content-type", "application/json").body(body).send().await.expect("answer");
            (r.status().as_u16(), r.json::<Value>().await.expect("json error body"))
        }
    };
    let (s, b) = raw("{not json").await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["type"], "invalid_request_error");
    let (s, _) = raw(r#"{"model":"auto"}"#).await;
    assert_eq!(s, 400);
    let (s, b) = raw(r#"{"model":"gpt-99","messages":[{"role":"user","content":"x"}]}"#).await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "model_not_found");
    let big = ask(&"x".repeat(5_000));
    let r = chat(&h, &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], "request_too_large");
    let r = client().get(h.url("/v1/chat/completions")).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(h.mock.control.total_calls(), 0);
}

#[tokio::test]
async fn client_keys_are_checked_and_never_forwarded() {
    let h = spawn_proxy(TestConfig { client_keys: vec!["sk-client-1".into()], ..exact_only() }).await;
    let r = chat(&h, &ask("no key")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["type"], "authentication_error");
    let r = chat_with(&h, &ask("wrong key"), &[("authorization", "Bearer sk-nope")]).await;
    assert_eq!(r.status, 401);
    let r = chat_with(&h, &ask("right key"), &[("authorization", "Bearer sk-client-1")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.mock.control.last_authorization("cheap").as_deref(), Some("Bearer sk-provider-secret"));
}

#[tokio::test]
async fn a_provider_without_its_key_is_skipped_and_no_key_leaks() {
    let mut cfg = exact_only();
    cfg.extra_toml = r#"
[[providers]]
name = "keyless"
base_url = "{upstream}"
api_key_env = "DEJA_TEST_UNSET_KEYLESS_PROVIDER"

[[models]]
name = "needs-a-key"
provider = "keyless"
input_usd_per_mtok = 0.10
output_usd_per_mtok = 0.10
context_window = 128000

[[ladders]]
name = "keyless-first"
rungs = ["needs-a-key", "cheap"]
"#
    .into();
    let h = spawn_proxy(cfg).await;
    let mut body = ask("hi");
    body["model"] = json!("keyless-first");
    let r = chat_with(&h, &body, &[("authorization", "Bearer sk-client-secret")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.mock.control.calls("needs-a-key"), 0, "a provider without its key is never called");
    assert_eq!(r.header("x-deja-model"), Some("cheap"), "the next rung answers");
    assert_eq!(h.mock.control.total_calls(), 1);
    assert_eq!(
        h.mock.control.last_authorization("cheap").as_deref(),
        Some("Bearer sk-provider-secret"),
        "the next rung gets its own key, not the client's"
    );
    assert!(!r.text.contains("sk-"), "{}", r.text);
}

#[tokio::test]
async fn a_provider_with_no_key_setting_is_sent_no_authorization() {
    let mut cfg = exact_only();
    cfg.provider_key = None;
    let h = spawn_proxy(cfg).await;
    let r = chat_with(&h, &ask("hi"), &[("authorization", "Bearer sk-client-secret")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(h.mock.control.calls("cheap"), 1);
    assert_eq!(h.mock.control.last_authorization("cheap"), None, "the client's key never reaches the upstream");
    assert!(!r.text.contains("sk-"));
}

#[tokio::test]
async fn streaming_is_openai_sse_and_strips_the_usage_chunk_unless_asked() {
    let h = spawn_proxy(exact_only()).await;
    let mut body = ask("stream me");
    body["stream"] = json!(true);
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r.text);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    assert!(ev.iter().all(|e| !e.contains("usage")), "{ev:?}");
    assert_eq!(streamed_content(&r.text), "[cheap] Simulated answer to: stream me");
    let sent = h.mock.control.requests();
    assert_eq!(sent.last().map(|r| r["stream_options"]["include_usage"].clone()), Some(json!(true)));

    body["stream_options"] = json!({"include_usage": true});
    body["messages"][0]["content"] = json!("stream me with usage");
    let r = chat(&h, &body).await;
    let ev = events(&r.text);
    let usage_chunk: Value = serde_json::from_str(&ev[ev.len() - 2]).expect("usage chunk");
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0);
    assert_eq!(usage_chunk["choices"], json!([]));
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_byte_only() {
    let h = spawn_proxy(TestConfig { first_byte_timeout: "400ms".into(), ..exact_only() }).await;
    let mut body = ask("stall early");
    body["stream"] = json!(true);
    h.mock.control.push_faults("cheap", [Fault::StallAfter { chunks: 0 }]);
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    assert_eq!(events(&r.text).last().map(String::as_str), Some("[DONE]"));

    body["messages"][0]["content"] = json!("cut late");
    h.mock.control.push_faults("cheap", [Fault::CutAfter { chunks: 2 }]);
    let r = chat(&h, &body).await;
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    let ev = events(&r.text);
    assert!(!ev.iter().any(|e| e == "[DONE]"), "a broken stream never ends cleanly: {ev:?}");
    let last: Value = serde_json::from_str(ev.last().expect("an error event")).expect("json");
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert_eq!(h.mock.control.calls("mid-upstream"), 1, "no fallback after the first byte");
}

#[tokio::test]
async fn the_first_token_is_not_buffered() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.set_chunk_delay(std::time::Duration::from_millis(300));
    let mut body = ask("one two three four five six seven eight");
    body["stream"] = json!(true);
    let started = std::time::Instant::now();
    let mut resp = client().post(h.url("/v1/chat/completions")).json(&body).send().await.expect("answer");
    let first = resp.chunk().await.expect("chunk").expect("some bytes");
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    while resp.chunk().await.expect("chunk").is_some() {}
    let total = started.elapsed();
    assert!(first_at < total / 2, "first chunk at {first_at:?}, stream took {total:?}");
}

#[tokio::test]
async fn models_health_and_readiness() {
    let h = spawn_proxy(exact_only()).await;
    let models: Value = client().get(h.url("/v1/models")).send().await.expect("ok").json().await.expect("json");
    let ids: Vec<&str> = models["data"].as_array().expect("list").iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"auto") && ids.contains(&"cheap"));
    assert_eq!(client().get(h.url("/healthz")).send().await.expect("ok").status().as_u16(), 200);
    assert_eq!(client().get(h.url("/readyz")).send().await.expect("ok").status().as_u16(), 200);
}

#[tokio::test]
async fn task_tags_pick_the_starting_rung() {
    let h = spawn_proxy(exact_only()).await;
    let r = chat_with(&h, &ask("think hard"), &[("x-deja-task", "reasoning")]).await;
    assert_eq!(r.header("x-deja-model"), Some("top"));
    let mut body = ask("think harder");
    body["metadata"] = json!({"task": "reasoning"});
    let r = chat(&h, &body).await;
    assert_eq!(r.header("x-deja-model"), Some("top"));
}

#[tokio::test]
async fn embeddings_pass_through_and_are_cached() {
    let h = spawn_proxy(exact_only()).await;
    let body = json!({"model": "embedder", "input": ["a", "b"]});
    let r = post(&h, "/v1/embeddings", &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(2));
    let again = post(&h, "/v1/embeddings", &body, &[]).await;
    assert_eq!(again.cache(), "exact");
    assert_eq!(again.body["data"], r.body["data"]);
    assert_eq!(h.mock.control.calls("embedder"), 1);
}
