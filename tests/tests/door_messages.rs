//! Anthropic's Messages API as a front door, end to end: `/v1/messages`
//! requests answered through the chat pipeline (cache, ladder) by OpenAI-,
//! Anthropic- and Gemini-kind rungs, whole and streamed, in Anthropic's shapes.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{Harness, TestConfig};
use serde_json::{json, Value};

const CLIENT_KEY: &str = "sk-door-client";
const CLAUDE: &str = CLAUDE_UPSTREAM;
const GEMINI: &str = GEMINI_UPSTREAM;

/// A proxy with a client key and a model of each provider kind: `cheap`
/// (OpenAI), `sonnet` (Anthropic) and `flash` (Gemini), all on the mock.
async fn proxy() -> Harness {
    let config = TestConfig { model_retries: 0, client_keys: vec![CLIENT_KEY.into()], ..exact_only() };
    every_kind_proxy(config).await
}

fn message(model: &str, content: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": content}]})
}

async fn send(h: &Harness, body: &Value) -> Reply {
    post(h, "/v1/messages", body, &[("x-api-key", CLIENT_KEY), ("anthropic-version", "2023-06-01")]).await
}

fn text(r: &Reply) -> String {
    r.body["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect()
}

/// `(event name, data)` of each event of an Anthropic stream.
fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).expect("each event's data is JSON");
                }
            }
            (name, data)
        })
        .collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_plain_message_is_answered_in_anthropics_shape() {
    let h = proxy().await;
    let r = send(&h, &message("cheap", "What is Deja?")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "message");
    assert_eq!(r.body["role"], "assistant");
    assert!(r.body["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{}", r.text);
    assert_eq!(text(&r), "[cheap] Simulated answer to: What is Deja?");
    assert_eq!(r.body["stop_reason"], "end_turn");
    assert_eq!(r.body["stop_sequence"], Value::Null);
    assert!(r.body["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{}", r.text);
    assert!(r.body["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{}", r.text);
    assert_eq!((r.cache(), r.header("x-deja-model")), ("miss", Some("cheap")));
    let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "What is Deja?"}]));
}

#[tokio::test]
async fn each_kind_of_rung_answers_a_messages_request() {
    let h = proxy().await;
    for (model, upstream) in [("cheap", "cheap"), ("sonnet", CLAUDE), ("flash", GEMINI)] {
        let mut body = message(model, &format!("Which rung are you, {model}?"));
        body["system"] = json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]);
        let r = send(&h, &body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        assert_eq!(text(&r), format!("[{upstream}] Simulated answer to: Which rung are you, {model}?"));
        assert_eq!(r.body["stop_reason"], "end_turn", "{model}");
        assert_eq!(r.header("x-deja-model"), Some(model));
        assert_eq!(h.mock.control.calls(upstream), 1, "{model}");

        body["stream"] = json!(true);
        body["messages"][0]["content"] = json!(format!("Stream it, {model}"));
        let r = send(&h, &body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        let events = named_events(&r.text);
        assert_eq!(streamed_text(&events), format!("[{upstream}] Simulated answer to: Stream it, {model}"));
        assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("message_stop"), "{model}: {}", r.text);
    }
}

#[tokio::test]
async fn a_streamed_message_is_the_reference_event_sequence_then_replayed_from_cache() {
    let h = proxy().await;
    let mut body = message("cheap", "Tell me a short story");
    body["stream"] = json!(true);
    for expected in ["miss", "exact"] {
        let r = send(&h, &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/event-stream")));
        assert_eq!(r.cache(), expected);
        let events = named_events(&r.text);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"), "{}", r.text);
        assert_eq!(names[1], "content_block_start");
        assert!(names[2..names.len() - 3].iter().all(|n| *n == "content_block_delta"), "{names:?}");
        assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
        assert!(events.iter().all(|(n, d)| d["type"] == n.as_str()), "{}", r.text);
        assert_eq!(streamed_text(&events), "[cheap] Simulated answer to: Tell me a short story");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert!(delta["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{}", r.text);
        if expected == "miss" {
            let stored = || async { admin_get(&h, "/admin/stats").await.body["entries"].as_u64().unwrap_or(0) > 0 };
            for _ in 0..100 {
                if stored().await {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(h.mock.control.calls("cheap"), 1);
    // The stream was cached as a chat answer: the unstreamed door serves it too.
    body["stream"] = json!(false);
    let r = send(&h, &body).await;
    assert_eq!((r.status, r.cache()), (200, "exact"), "{}", r.text);
    assert_eq!(text(&r), "[cheap] Simulated answer to: Tell me a short story");
}

fn weather(messages: Value, model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 256,
        "tools": [{"name": "get_weather", "description": "The weather in a city.",
                   "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}],
        "messages": messages,
    })
}

#[tokio::test]
async fn a_tool_round_trip_through_an_anthropic_rung() {
    let h = proxy().await;
    let question = json!([{"role": "user", "content": "Weather in Lisbon?"}]);
    let r = send(&h, &weather(question.clone(), "sonnet")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["stop_reason"], "tool_use");
    let call = r.body["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .cloned()
        .expect("a tool_use block");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"query": "Weather in Lisbon?"}));
    assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()));

    let mut turns = question.as_array().cloned().unwrap_or_default();
    turns.push(json!({"role": "assistant", "content": r.body["content"]}));
    turns.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": [{"type": "text", "text": "18 degrees"}]},
    ]}));
    let r = send(&h, &weather(Value::Array(turns), "sonnet")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(text(&r), format!("[{CLAUDE}] Tool said: 18 degrees"));
    assert_eq!(r.body["stop_reason"], "end_turn");
    let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], call["id"]);
}

#[tokio::test]
async fn a_streamed_tool_call_through_an_openai_rung_assembles_to_its_input() {
    let h = proxy().await;
    let mut body = weather(json!([{"role": "user", "content": "Weather in Rome?"}]), "cheap");
    body["stream"] = json!(true);
    let r = send(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = named_events(&r.text);
    let start = events.iter().find(|(n, _)| n == "content_block_start").map(|(_, d)| d.clone()).expect("a block");
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).expect("JSON input"), json!({"query": "Weather in Rome?"}));
    let delta = events.iter().find(|(n, _)| n == "message_delta").map(|(_, d)| d.clone()).expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn the_client_key_is_accepted_as_x_api_key_or_bearer_and_refused_in_anthropics_shape() {
    let h = proxy().await;
    let body = message("cheap", "key check");
    let r = post(&h, "/v1/messages", &body, &[("authorization", &format!("Bearer {CLIENT_KEY}"))]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for headers in [vec![], vec![("x-api-key", "sk-wrong")]] {
        let r = post(&h, "/v1/messages", &body, &headers).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.body["type"], "error", "{}", r.text);
        assert_eq!(r.body["error"]["type"], "authentication_error", "{}", r.text);
        assert!(r.body["error"]["message"].is_string());
    }
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn errors_come_back_in_anthropics_shape_with_their_status() {
    let h = proxy().await;
    let r = send(&h, &message("claude-99", "who?")).await;
    assert_eq!((r.status, r.body["error"]["type"].as_str()), (404, Some("not_found_error")), "{}", r.text);
    assert_eq!(r.body["type"], "error");

    let mut body = message("cheap", "no limit");
    body.as_object_mut().map(|b| b.remove("max_tokens"));
    let r = send(&h, &body).await;
    assert_eq!((r.status, r.body["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{}", r.text);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("max_tokens")), "{}", r.text);

    let mut body = message("cheap", "search the web");
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let r = send(&h, &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("tools[0].type")), "{}", r.text);

    h.mock.control.push_faults("cheap", [Fault::Status { status: 500, retry_after_s: None, retry_after: None }]);
    let r = send(&h, &message("cheap", "upstream down")).await;
    assert_eq!((r.status, r.body["error"]["type"].as_str()), (502, Some("api_error")), "{}", r.text);
    assert_eq!(h.mock.control.calls("cheap"), 1, "only the faulted call reached the mock");
}

#[tokio::test]
async fn a_stream_cut_upstream_ends_with_an_error_event() {
    let h = proxy().await;
    h.mock.control.push_faults("cheap", [Fault::CutAfter { chunks: 2 }]);
    let mut body = message("cheap", "a story that will not finish");
    body["stream"] = json!(true);
    let r = send(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = named_events(&r.text);
    assert_eq!(events.first().map(|(n, _)| n.as_str()), Some("message_start"), "{}", r.text);
    let (name, data) = events.last().cloned().expect("events");
    assert_eq!(name, "error", "{}", r.text);
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"), "{}", r.text);
}

#[tokio::test]
async fn a_chat_question_asked_again_through_messages_is_an_exact_hit() {
    let h = proxy().await;
    let chat_body =
        json!({"model": "cheap", "max_tokens": 256, "messages": [{"role": "user", "content": "Shared cache?"}]});
    let r = chat_with(&h, &chat_body, &[("authorization", &format!("Bearer {CLIENT_KEY}"))]).await;
    assert_eq!((r.status, r.cache()), (200, "miss"), "{}", r.text);
    let answer = r.content().to_string();
    // One text block is the same question as a string.
    let mut body = message("cheap", "");
    body["messages"][0]["content"] = json!([{"type": "text", "text": "Shared cache?"}]);
    let r = send(&h, &body).await;
    assert_eq!((r.status, r.cache()), (200, "exact"), "{}", r.text);
    assert_eq!(text(&r), answer);
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn count_tokens_answers_without_calling_upstream() {
    let h = proxy().await;
    let body = json!({"model": "cheap", "system": "You are a scientist",
                      "messages": [{"role": "user", "content": "Hello, Claude"}]});
    let r = post(&h, "/v1/messages/count_tokens", &body, &[("x-api-key", CLIENT_KEY)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["input_tokens"].as_u64().is_some_and(|n| n > 0), "{}", r.text);
    assert_eq!(h.mock.control.total_calls(), 0);
    let r = post(&h, "/v1/messages/count_tokens", &body, &[]).await;
    assert_eq!((r.status, r.body["error"]["type"].as_str()), (401, Some("authentication_error")), "{}", r.text);
}

#[tokio::test]
async fn top_k_reaches_the_upstream_and_is_part_of_the_key() {
    let h = proxy().await;
    for (top_k, expected) in [(5, "miss"), (6, "miss"), (5, "exact")] {
        let mut body = message("cheap", "Pick a word");
        body["top_k"] = json!(top_k);
        let r = send(&h, &body).await;
        assert_eq!((r.status, r.cache()), (200, expected), "top_k {top_k}: {}", r.text);
    }
    assert_eq!(h.mock.control.calls("cheap"), 2);
    let sent: Vec<Value> = h.mock.control.requests().iter().map(|r| r["top_k"].clone()).collect();
    assert_eq!(sent, [json!(5), json!(6)]);
}
