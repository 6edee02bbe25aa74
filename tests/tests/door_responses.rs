//! OpenAI's Responses API (`POST /v1/responses`) end to end: the request is
//! translated into a chat request and answered by the same pipeline (cache,
//! ladder, every provider kind), the answer reshaped into a `response` object
//! or the Responses event stream.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{Harness, TestConfig};
use serde_json::{json, Value};

/// What the mock is asked for: the `upstream_name`s of `sonnet` and `flash`.
const CLAUDE: &str = CLAUDE_UPSTREAM;
const GEMINI: &str = GEMINI_UPSTREAM;

/// A proxy with an OpenAI-kind (`cheap`), an Anthropic-kind (`sonnet`) and
/// a Gemini-kind (`flash`) model, all on the mock.
async fn proxy() -> Harness {
    every_kind_proxy(TestConfig { model_retries: 0, ..exact_only() }).await
}

async fn responses(h: &Harness, body: &Value) -> Reply {
    post(h, "/v1/responses", body, &[]).await
}

/// What the SDK's `response.output_text` computes.
fn output_text(response: &Value) -> String {
    let items = response["output"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "output_text")
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

/// The `(event, data)` pairs of a Responses stream.
fn door_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"));
                }
            }
            assert_eq!(data["type"], name.as_str(), "{block}");
            (name, data)
        })
        .collect()
}

/// The events of a stream, checked for what every stream must hold: names
/// matching `type`, sequence numbers counting from 0, deltas adding up to
/// the final text. Returns (events, the text deltas joined, the last response).
fn checked_stream(text: &str) -> (Vec<(String, Value)>, String, Value) {
    let events = door_events(text);
    for (n, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], n, "{text}");
    }
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("response.created"), "{text}");
    assert_eq!(events.get(1).map(|e| e.0.as_str()), Some("response.in_progress"), "{text}");
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str().map(str::to_string))
        .collect();
    let last = events.last().map(|(_, d)| d["response"].clone()).unwrap_or_default();
    (events, deltas, last)
}

async fn stream(h: &Harness, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let resp = client().post(h.url("/v1/responses")).json(&body).send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn a_plain_request_is_a_response_object_and_a_repeat_an_exact_hit() {
    let h = proxy().await;
    let body = json!({"model": "cheap", "input": "What is Deja?", "instructions": "Be brief.", "temperature": 0.3});
    let r = responses(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.cache(), "miss");
    assert_eq!(r.body["object"], "response");
    assert_eq!(r.body["status"], "completed");
    assert!(r.body["id"].as_str().is_some_and(|id| id.starts_with("resp_")), "{}", r.text);
    assert_eq!(output_text(&r.body), "[cheap] Simulated answer to: What is Deja?");
    assert_eq!(r.body["output"][0]["type"], "message");
    assert!(r.body["output"][0]["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{}", r.text);
    assert_eq!(r.body["instructions"], "Be brief.");
    assert_eq!(r.body["temperature"], 0.3);
    assert_eq!(r.body["store"], false);
    let usage = &r.body["usage"];
    assert!(usage["input_tokens"].as_u64().is_some_and(|n| n > 0), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap_or(0) + usage["output_tokens"].as_u64().unwrap_or(0))
    );
    // The upstream saw the chat request the Responses request means.
    let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Deja?"}])
    );
    assert_eq!(sent["temperature"], 0.3);

    let again = responses(&h, &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.cache(), "exact");
    assert_eq!(again.body["id"], r.body["id"], "a cached answer is the same response");
    assert_eq!(output_text(&again.body), output_text(&r.body));
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn a_streamed_request_is_the_responses_event_stream_and_is_cached() {
    let h = proxy().await;
    let body = json!({"model": "cheap", "input": "Tell me a short story"});
    for expected in ["miss", "exact"] {
        let (status, headers, text) = stream(&h, &body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(header(&headers, "x-deja-cache"), expected);
        assert!(header(&headers, "content-type").starts_with("text/event-stream"), "{headers:?}");
        let (events, deltas, done) = checked_stream(&text);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
        ] {
            assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name} in {names:?}");
        }
        assert_eq!(names.last(), Some(&"response.completed"), "{text}");
        assert_eq!(deltas, "[cheap] Simulated answer to: Tell me a short story");
        assert_eq!(output_text(&done), deltas);
        assert_eq!(done["status"], "completed");
        assert!(done["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{done}");
        if expected == "miss" {
            let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
            assert_eq!(sent["stream"], true);
            assert_eq!(sent["stream_options"], json!({"include_usage": true}));
            // The entry is written once the stream is done.
            let stored = deja_testkit::eventually(std::time::Duration::from_secs(5), || async {
                admin_get(&h, "/admin/stats").await.body["entries"].as_u64().unwrap_or(0) > 0
            })
            .await;
            assert!(stored, "the streamed answer is stored");
        }
    }
    // Asked again whole, the streamed answer is a hit too.
    let r = responses(&h, &body).await;
    assert_eq!(r.cache(), "exact", "{}", r.text);
    assert_eq!(output_text(&r.body), "[cheap] Simulated answer to: Tell me a short story");
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn a_chat_request_and_the_same_question_through_responses_share_one_entry() {
    let h = proxy().await;
    let r = chat(&h, &json!({"model": "cheap", "messages": [{"role": "user", "content": "Where is Lisbon?"}]})).await;
    assert_eq!((r.status, r.cache()), (200, "miss"), "{}", r.text);
    let door = responses(&h, &json!({"model": "cheap", "input": "Where is Lisbon?"})).await;
    assert_eq!(door.status, 200, "{}", door.text);
    assert_eq!(door.cache(), "exact");
    assert_eq!(output_text(&door.body), r.content());
    // And the other way round, with a message item and a stream.
    let door =
        responses(&h, &json!({"model": "cheap", "input": [{"role": "user", "content": "Where is Porto?"}]})).await;
    assert_eq!(door.cache(), "miss", "{}", door.text);
    let r = chat(
        &h,
        &json!({"model": "cheap", "stream": true, "messages": [{"role": "user", "content": "Where is Porto?"}]}),
    )
    .await;
    assert_eq!(r.cache(), "exact", "{}", r.text);
    assert_eq!(h.mock.control.calls("cheap"), 2);
}

fn weather_tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}])
}

#[tokio::test]
async fn each_provider_kind_answers_plain_streamed_and_a_tool_round_trip() {
    let h = proxy().await;
    for (model, upstream) in [("cheap", "cheap"), ("sonnet", CLAUDE), ("flash", GEMINI)] {
        let question = format!("What is your refund policy? ({model})");
        let r = responses(&h, &json!({"model": model, "input": question, "instructions": "Be brief."})).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        assert_eq!(r.header("x-deja-model"), Some(model));
        assert_eq!(output_text(&r.body), format!("[{upstream}] Simulated answer to: {question}"), "{}", r.text);
        assert_eq!(r.body["status"], "completed");
        assert!(r.body["usage"]["input_tokens"].as_u64().is_some_and(|n| n > 0), "{model}: {}", r.text);

        let question = format!("Tell me a story ({model})");
        let (status, headers, text) = stream(&h, &json!({"model": model, "input": question})).await;
        assert_eq!(status, 200, "{model}: {text}");
        assert_eq!(header(&headers, "x-deja-model"), model);
        let (events, deltas, done) = checked_stream(&text);
        assert_eq!(deltas, format!("[{upstream}] Simulated answer to: {question}"), "{model}: {text}");
        assert_eq!(events.last().map(|e| e.0.as_str()), Some("response.completed"), "{model}: {text}");
        assert!(done["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0), "{model}: {done}");

        // A function call, its output sent back as items, and the final answer.
        let question = format!("Weather in Lisbon? ({model})");
        let user = json!({"role": "user", "content": question});
        let r = responses(&h, &json!({"model": model, "input": [user], "tools": weather_tools()})).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        let call = r.body["output"].as_array().and_then(|o| o.iter().find(|i| i["type"] == "function_call")).cloned();
        let call = call.unwrap_or_else(|| panic!("{model}: no function_call in {}", r.text));
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["status"], "completed");
        assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()), "{call}");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap_or("")).expect("JSON arguments");
        assert_eq!(args, json!({"query": question}));
        assert_eq!(output_text(&r.body), "");

        let mut turns = vec![user.clone()];
        turns.extend(r.body["output"].as_array().cloned().unwrap_or_default());
        turns.push(
            json!({"type": "function_call_output", "call_id": call["call_id"], "output": "{\"sky\": \"clear\"}"}),
        );
        // The OpenAI-kind mock calls a tool whenever tools are offered: it gets the turns alone.
        let mut next = json!({"model": model, "input": turns});
        if model != "cheap" {
            next["tools"] = weather_tools();
        }
        let r = responses(&h, &next).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text);
        let text = output_text(&r.body);
        if model == "cheap" {
            assert_eq!(text, format!("[cheap] Simulated answer to: {question}"));
            let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
            assert_eq!(
                sent["messages"],
                json!([
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": call["call_id"], "type": "function",
                        "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
                    {"role": "tool", "tool_call_id": call["call_id"], "content": "{\"sky\": \"clear\"}"},
                ])
            );
        } else {
            assert!(text.starts_with(&format!("[{upstream}] Tool said:")) && text.contains("clear"), "{model}: {text}");
        }
    }
}

#[tokio::test]
async fn a_streamed_function_call_streams_its_arguments() {
    let h = proxy().await;
    let question = "Weather in Faro?";
    let (status, _, text) = stream(&h, &json!({"model": "cheap", "input": question, "tools": weather_tools()})).await;
    assert_eq!(status, 200, "{text}");
    let (events, _, done) = checked_stream(&text);
    let args: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .filter_map(|(_, d)| d["delta"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).expect("JSON arguments"), json!({"query": question}));
    let done_args = events.iter().find(|(n, _)| n == "response.function_call_arguments.done").map(|(_, d)| d);
    assert_eq!(done_args.map(|d| d["arguments"].as_str().unwrap_or("")), Some(args.as_str()));
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["type"], "function_call");
    assert_eq!(done["output"][0]["call_id"], "call_mock1");
}

#[tokio::test]
async fn a_json_schema_format_reaches_the_upstream_as_response_format() {
    let h = proxy().await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                        "additionalProperties": false});
    let body = json!({"model": "cheap", "input": "Name a city.", "text": {"format": {
        "type": "json_schema", "name": "city", "schema": schema, "strict": true}}});
    let r = responses(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["text"]["format"]["type"], "json_schema");
    let sent = h.mock.control.requests().last().cloned().expect("the mock was called");
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}})
    );
    assert_eq!(responses(&h, &body).await.cache(), "exact");
}

#[tokio::test]
async fn an_answer_cut_short_by_max_output_tokens_is_incomplete() {
    let h = proxy().await;
    let body = json!({"model": "cheap", "input": "A long story", "max_output_tokens": 3});
    let r = responses(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "incomplete");
    assert_eq!(r.body["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(r.body["max_output_tokens"], 3);
    assert_eq!(h.mock.control.requests().last().cloned().unwrap_or_default()["max_tokens"], 3);
    let (_, _, text) = stream(&h, &body).await;
    let (events, _, done) = checked_stream(&text);
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("response.incomplete"), "{text}");
    assert_eq!(done["incomplete_details"], json!({"reason": "max_output_tokens"}));
}

#[tokio::test]
async fn an_upstream_cut_mid_stream_ends_with_response_failed() {
    let h = proxy().await;
    h.mock.control.push_faults("cheap", [Fault::CutAfter { chunks: 2 }]);
    let (status, _, text) = stream(&h, &json!({"model": "cheap", "input": "cut me off please"})).await;
    assert_eq!(status, 200, "{text}");
    let (events, deltas, failed) = checked_stream(&text);
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("response.failed"), "{text}");
    assert!(!events.iter().any(|(n, _)| n == "response.completed"), "{text}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert_eq!(output_text(&failed), deltas);
}

#[tokio::test]
async fn what_needs_server_state_or_openai_tools_is_a_400_naming_it() {
    let h = proxy().await;
    for (extra, param) in [
        (json!({"previous_response_id": "resp_123"}), "previous_response_id"),
        (json!({"conversation": "conv_123"}), "conversation"),
        (json!({"background": true}), "background"),
        (json!({"prompt": {"id": "pmpt_123"}}), "prompt"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
        (json!({"input": [{"type": "item_reference", "id": "msg_123"}]}), "input[0].type"),
    ] {
        let mut body = json!({"model": "cheap", "input": "hello"});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let r = responses(&h, &body).await;
        assert_eq!(r.status, 400, "{param}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.text);
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    // A model Deja does not serve is the chat door's 404, unchanged.
    let r = responses(&h, &json!({"model": "gpt-99", "input": "hello"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.body["error"]["message"].is_string(), "{}", r.text);
    assert_eq!(h.mock.control.total_calls(), 0);
}
