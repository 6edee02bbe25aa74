//! The `message` object and error shapes, as Anthropic's reference shows them.

use super::*;
use serde_json::{json, Value};

fn echo() -> Echo {
    Echo { model: "claude-sonnet-4-5".into(), stop_sequences: vec!["END".into()], input_tokens: 9 }
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1_700_000_000u64, "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37},
    })
}

#[test]
fn a_text_answer_is_a_message_with_one_text_block() {
    let m = answer(&echo(), &completion(json!({"role": "assistant", "content": "Hi! My name is Claude."}), "stop"));
    assert_eq!(
        m,
        json!({
            "id": "msg_abc123",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o",
            "content": [{"type": "text", "text": "Hi! My name is Claude."}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 12, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0},
        })
    );
}

#[test]
fn tool_calls_become_tool_use_blocks_with_parsed_input() {
    let message = json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        {"id": "call_3", "type": "function", "function": {"name": "broken", "arguments": "{\"location\":"}},
    ]});
    let m = answer(&echo(), &completion(message, "tool_calls"));
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(
        m["content"],
        json!([
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "broken", "input": "{\"location\":"},
        ])
    );
    let calls_only = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
    ]});
    let m = answer(&echo(), &completion(calls_only, "tool_calls"));
    assert_eq!(m["content"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["content"][0]["type"], "tool_use");
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    let text = json!({"role": "assistant", "content": "Once upon"});
    for (finish, stop) in
        [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("other", "end_turn")]
    {
        assert_eq!(answer(&echo(), &completion(text.clone(), finish))["stop_reason"], stop, "{finish}");
    }
    let mut no_finish = completion(text, "stop");
    no_finish["choices"][0]["finish_reason"] = Value::Null;
    assert_eq!(answer(&echo(), &no_finish)["stop_reason"], "end_turn");
}

#[test]
fn a_stop_sequence_is_reported_when_the_upstream_names_it() {
    let text = json!({"role": "assistant", "content": "1, 2, 3"});
    let mut c = completion(text, "stop");
    c["choices"][0]["stop_reason"] = json!("END");
    let m = answer(&echo(), &c);
    assert_eq!((m["stop_reason"].clone(), m["stop_sequence"].clone()), (json!("stop_sequence"), json!("END")));
    c["choices"][0]["stop_reason"] = json!("NOT ASKED");
    assert_eq!(answer(&echo(), &c)["stop_reason"], "end_turn");
}

#[test]
fn cached_prompt_tokens_are_read_from_cache_not_input() {
    let mut c = completion(json!({"role": "assistant", "content": "x"}), "stop");
    c["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 20});
    let u = &answer(&echo(), &c)["usage"];
    assert_eq!((u["input_tokens"].as_u64(), u["cache_read_input_tokens"].as_u64()), (Some(5), Some(20)));
}

#[test]
fn a_refusal_and_an_empty_answer_keep_their_shape() {
    let m = answer(&echo(), &completion(json!({"role": "assistant", "content": null, "refusal": "I can't."}), "stop"));
    assert_eq!(m["content"], json!([{"type": "text", "text": "I can't."}]));
    let m = answer(&echo(), &completion(json!({"role": "assistant", "content": ""}), "stop"));
    assert_eq!(m["content"], json!([]));
    // Nothing to read at all: still a message, named after the model asked for.
    let m = answer(&echo(), &json!({}));
    assert_eq!(
        (m["type"].clone(), m["model"].clone(), m["id"].clone()),
        (json!("message"), json!("claude-sonnet-4-5"), json!("msg_deja"))
    );
    assert_eq!(m["usage"]["output_tokens"], 0);
}

#[test]
fn an_anthropic_id_is_kept() {
    let mut c = completion(json!({"role": "assistant", "content": "x"}), "stop");
    c["id"] = json!("msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(answer(&echo(), &c)["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
}

#[test]
fn errors_take_anthropics_type_for_their_status() {
    let openai = |message: &str| json!({"error": {"message": message, "type": "x", "param": null, "code": null}});
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ] {
        let (s, body) = error(status, &openai("boom"));
        assert_eq!(s, status);
        assert_eq!(body, json!({"type": "error", "error": {"type": kind, "message": "boom"}}), "{status}");
    }
    let (_, body) = error(502, &json!("not an error body"));
    assert_eq!(body["error"]["message"], "the request failed with status 502");
}

#[test]
fn an_api_error_keeps_its_message_through_the_door() {
    let e = deja_api::ApiError::invalid_request("`max_tokens` is required", Some("max_tokens"));
    let (status, body) = error(e.status(), &e.to_json());
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "`max_tokens` is required");
}
