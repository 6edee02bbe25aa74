use super::*;

#[test]
fn unknown_fields_survive_a_round_trip() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"new_field":{"x":1}}"#;
    let req = ChatRequest::parse(body).expect("parses");
    assert_eq!(req.extra.get("new_field"), Some(&serde_json::json!({"x":1})));
    let out = serde_json::to_value(&req).expect("serializes");
    assert_eq!(out["new_field"]["x"], 1);
}

#[test]
fn malformed_and_incomplete_bodies_are_refused() {
    assert!(ChatRequest::parse(b"{not json").is_err());
    assert!(ChatRequest::parse(br#"{"messages":[]}"#).is_err());
    assert!(ChatRequest::parse(br#"{"model":"m","messages":[]}"#).is_err());
    assert!(ChatRequest::parse(br#"{"model":"m","messages":[{"content":"x"}]}"#).is_err());
    assert!(
        ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#).is_err()
    );
}

#[test]
fn last_user_text_reads_strings_and_parts() {
    let req = ChatRequest::parse(
        br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}"#,
    )
    .expect("parses");
    assert_eq!(req.last_user_text().as_deref(), Some("a\nb"));
}

#[test]
fn truncated_completions_are_not_complete() {
    let mut c: ChatCompletion = serde_json::from_value(serde_json::json!({
        "id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}]
    }))
    .expect("parses");
    assert!(!c.is_complete());
    c.choices[0].finish_reason = Some("stop".into());
    assert!(c.is_complete());
}

fn answer(message: serde_json::Value, finish: &str) -> ChatCompletion {
    serde_json::from_value(serde_json::json!({
        "id": "x", "choices": [{"index": 0, "message": message, "finish_reason": finish}]
    }))
    .expect("parses")
}

fn call(f: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"role": "assistant", "content": null, "tool_calls": [f]})
}

#[test]
fn well_formed_answers_are_complete() {
    use serde_json::json;
    let good_call = json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    assert!(answer(json!({"role": "assistant", "content": "hi"}), "stop").is_complete());
    assert!(answer(json!({"role": "assistant", "content": null, "refusal": "no"}), "stop").is_complete());
    assert!(answer(call(good_call.clone()), "tool_calls").is_complete());
    let mut no_content = call(good_call.clone());
    no_content.as_object_mut().expect("object").remove("content");
    assert!(answer(no_content, "tool_calls").is_complete());
    // A forced tool choice ends with `stop` and still carries its calls.
    assert!(answer(call(good_call), "stop").is_complete());
    assert!(answer(json!({"role": "assistant", "content": "hi", "tool_calls": []}), "stop").is_complete());
    let legacy = json!({"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}});
    assert!(answer(legacy, "function_call").is_complete());
}

#[test]
fn answers_that_cannot_be_replayed_are_not_complete() {
    use serde_json::json;
    let bad = [
        (json!("just a string"), "stop"),
        (json!(null), "stop"),
        (json!({"content": "no role"}), "stop"),
        (json!({"role": "user", "content": "hi"}), "stop"),
        (json!({"role": "assistant"}), "stop"),
        (json!({"role": "assistant", "content": 42}), "stop"),
        (json!({"role": "assistant", "content": ["parts"]}), "stop"),
        (json!({"role": "assistant", "content": null}), "tool_calls"),
        (json!({"role": "assistant", "content": null, "tool_calls": []}), "tool_calls"),
        (json!({"role": "assistant", "content": null, "tool_calls": {"id": "c1"}}), "tool_calls"),
        (json!({"role": "assistant", "content": null, "tool_calls": "f()"}), "tool_calls"),
        (call(json!({"type": "function", "function": {"name": "f", "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": 7, "type": "function", "function": {"name": "f", "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "other", "function": {"name": "f", "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "function": {"name": "f", "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function", "function": {"arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function", "function": {"name": "", "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function", "function": {"name": 3, "arguments": "{}"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function", "function": {"name": "f"}})), "tool_calls"),
        (call(json!({"id": "c1", "type": "function"})), "tool_calls"),
        (call(json!("c1")), "tool_calls"),
        (json!({"role": "assistant", "content": null}), "function_call"),
        (json!({"role": "assistant", "content": null, "function_call": {"name": "f"}}), "function_call"),
        (json!({"role": "assistant", "content": "hi"}), "content_filter"),
    ];
    for (message, finish) in bad {
        assert!(!answer(message.clone(), finish).is_complete(), "{message} / {finish}");
    }
    let mut mixed = answer(serde_json::json!({"role": "assistant", "content": "hi"}), "stop");
    mixed.choices.push(answer(serde_json::json!({"role": "assistant", "content": 1}), "stop").choices.remove(0));
    assert!(!mixed.is_complete(), "one bad choice spoils the answer");
}

#[test]
fn a_refusal_that_is_not_text_is_not_complete() {
    let c = answer(serde_json::json!({"role": "assistant", "content": null, "refusal": {"why": "no"}}), "stop");
    assert!(!c.is_complete());
}
