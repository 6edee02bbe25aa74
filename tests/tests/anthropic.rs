//! An Anthropic-kind provider end to end: Deja speaks the Messages API to
//! the mock's `/v1/messages` and OpenAI's chat completions to the client.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, Harness, TestConfig};
use serde_json::{json, Value};

const KEY: &str = "sk-ant-secret";
/// What the mock is asked for: `upstream_name` of the `sonnet` model.
const UPSTREAM: &str = "claude-sonnet-up";

/// A proxy whose `sonnet` model is served by an Anthropic provider; ladder
/// `claude-first` tries it before the OpenAI-kind `cheap`.
async fn proxy() -> Harness {
    let var = deja_testkit::env_var("ANTHROPIC", KEY);
    let extra = format!(
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{{upstream}}"
api_key_env = "{var}"

[[models]]
name = "sonnet"
provider = "claude"
upstream_name = "{UPSTREAM}"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
context_window = 200000

[[ladders]]
name = "claude-first"
rungs = ["sonnet", "cheap"]
"#
    );
    spawn_proxy(TestConfig { extra_toml: extra, model_retries: 0, ..exact_only() }).await
}

fn to_sonnet(content: &str) -> Value {
    json!({"model": "sonnet", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": content},
    ]})
}

fn last_request(h: &Harness) -> Value {
    h.mock.control.requests().last().cloned().expect("the mock was called")
}

#[tokio::test]
async fn a_plain_request_is_sent_as_a_messages_call_and_answered_as_a_chat_completion() {
    let h = proxy().await;
    let r = chat(&h, &to_sonnet("What is Deja?")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "chat.completion");
    assert_eq!(r.content(), format!("[{UPSTREAM}] Simulated answer to: What is Deja?"));
    assert_eq!(r.body["choices"][0]["finish_reason"], "stop");
    assert!(r.body["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    let usage = &r.body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap_or(0) + usage["completion_tokens"].as_u64().unwrap_or(0)
    );
    assert_eq!(r.header("x-deja-model"), Some("sonnet"));
    assert!(
        r.header("x-deja-cost-usd").is_some_and(|c| c != "0" && c != "0.000000"),
        "{:?}",
        r.header("x-deja-cost-usd")
    );
    let sent = last_request(&h);
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "What is Deja?"}]));
}

#[tokio::test]
async fn the_key_reaches_the_anthropic_upstream_only_in_x_api_key() {
    let h = proxy().await;
    assert_eq!(chat(&h, &to_sonnet("key check")).await.status, 200);
    let seen = h.mock.control.anthropic_headers(UPSTREAM).expect("a Messages call");
    assert_eq!(seen.x_api_key.as_deref(), Some(KEY));
    assert_eq!(seen.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(seen.authorization, None);
    // The OpenAI-kind provider gets its own key, as a bearer token, and never this one.
    let r = chat(&h, &json!({"model": "cheap", "messages": [{"role": "user", "content": "key check"}]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.mock.control.last_authorization("cheap").as_deref(), Some("Bearer sk-provider-secret"));
}

async fn stream(h: &Harness, body: &Value) -> (u16, String) {
    let resp = client().post(h.url("/v1/chat/completions")).json(body).send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn a_streamed_answer_is_relayed_as_openai_chunks_with_and_without_usage() {
    let h = proxy().await;
    for include_usage in [false, true] {
        let question = format!("stream please {include_usage}");
        let mut body = to_sonnet(&question);
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let (status, text) = stream(&h, &body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(streamed_content(&text), format!("[{UPSTREAM}] Simulated answer to: {question}"));
        let events = events(&text);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        let chunks: Vec<Value> = events.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"), "{text}");
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{text}");
        let usage: Vec<&Value> = chunks.iter().filter_map(|c| c.get("usage").filter(|u| !u.is_null())).collect();
        if include_usage {
            assert_eq!(usage.len(), 1, "{text}");
            assert!(usage[0]["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{text}");
        } else {
            assert!(usage.is_empty(), "{text}");
        }
        assert_eq!(last_request(&h)["stream"], true);
    }
    // The streamed answer was assembled and cached: asked again unstreamed, it is a hit.
    let r = chat(&h, &to_sonnet("stream please false")).await;
    assert_eq!(r.cache(), "exact", "{}", r.text);
    assert_eq!(h.mock.control.calls(UPSTREAM), 2);
}

fn with_tools(messages: Value) -> Value {
    json!({
        "model": "sonnet",
        "messages": messages,
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        }}],
        "tool_choice": "auto",
    })
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let h = proxy().await;
    let question = json!([{"role": "user", "content": "Weather in Paris?"}]);
    let r = chat(&h, &with_tools(question.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["finish_reason"], "tool_calls");
    let call = r.body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("")).expect("JSON arguments");
    assert_eq!(args, json!({"query": "Weather in Paris?"}));
    let sent = last_request(&h);
    assert_eq!(sent["tools"][0]["input_schema"]["properties"]["query"]["type"], "string");
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));

    // The same call, streamed, assembles to the same tool call.
    let mut streamed = with_tools(json!([{"role": "user", "content": "Weather in Rome?"}]));
    streamed["stream"] = json!(true);
    let (status, text) = stream(&h, &streamed).await;
    assert_eq!(status, 200, "{text}");
    let args: String = events(&text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).expect("JSON arguments"), json!({"query": "Weather in Rome?"}));

    // The tool's result goes back as a tool_result block answering the tool_use.
    let mut turns = question.as_array().cloned().unwrap_or_default();
    turns.push(r.body["choices"][0]["message"].clone());
    turns.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18 degrees"}));
    let r = chat(&h, &with_tools(Value::Array(turns))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content(), format!("[{UPSTREAM}] Tool said: 18 degrees"));
    let sent = last_request(&h);
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], call["id"]);
}

#[tokio::test]
async fn a_parameter_anthropic_cannot_honour_is_refused_before_any_call() {
    let h = proxy().await;
    for (field, value) in [("seed", json!(7)), ("response_format", json!({"type": "json_object"})), ("n", json!(2))] {
        let mut body = to_sonnet("refuse me");
        body[field] = value;
        let r = chat(&h, &body).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert_eq!(r.body["error"]["param"], field, "{}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains(field)), "{}", r.text);
    }
    assert_eq!(h.mock.control.total_calls(), 0);
}

#[tokio::test]
async fn on_a_mixed_ladder_a_rung_that_cannot_honour_a_parameter_is_skipped() {
    let h = proxy().await;
    let body = json!({"model": "claude-first", "seed": 7, "messages": [{"role": "user", "content": "seeded"}]});
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    assert_eq!(r.header("x-deja-attempts"), Some("1"));
    assert_eq!(h.mock.control.calls(UPSTREAM), 0);
}

#[tokio::test]
async fn overloaded_529_falls_back_to_an_openai_rung() {
    let h = proxy().await;
    h.mock.control.push_faults(UPSTREAM, [Fault::Status { status: 529, retry_after_s: None, retry_after: None }]);
    let body = json!({"model": "claude-first", "messages": [{"role": "user", "content": "busy?"}]});
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("cheap"));
    assert_eq!(r.header("x-deja-attempts"), Some("2"));
    assert_eq!(h.mock.control.calls(UPSTREAM), 1);
    // Streamed too: the failure comes before the first event.
    h.mock.control.push_faults(UPSTREAM, [Fault::Status { status: 529, retry_after_s: None, retry_after: None }]);
    let (status, text) = stream(
        &h,
        &json!({"model": "claude-first", "stream": true,
        "messages": [{"role": "user", "content": "busy, streamed?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(streamed_content(&text), "[cheap] Simulated answer to: busy, streamed?");
}

#[tokio::test]
async fn an_anthropic_invalid_request_is_returned_with_its_message() {
    let h = proxy().await;
    h.mock.control.push_faults(UPSTREAM, [Fault::Status { status: 400, retry_after_s: None, retry_after: None }]);
    let body = json!({"model": "claude-first", "messages": [{"role": "user", "content": "bad"}]});
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invalid_request_error");
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("injected failure")), "{}", r.text);
    assert_eq!(h.mock.control.calls("cheap"), 0, "a client error does not fall back");
}

#[tokio::test]
async fn a_cache_hit_of_an_anthropic_answer_is_the_same_completion() {
    let h = proxy().await;
    let first = chat(&h, &to_sonnet("cache me")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.cache(), "miss");
    let second = chat(&h, &to_sonnet("cache me")).await;
    assert_eq!(second.cache(), "exact", "{}", second.text);
    assert_eq!(second.body, first.body);
    assert_eq!(h.mock.control.calls(UPSTREAM), 1);
}
