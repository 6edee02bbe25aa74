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

fn refusal_param(messages: serde_json::Value) -> Option<String> {
    let body = serde_json::json!({"model": "m", "messages": messages}).to_string();
    ChatRequest::parse(body.as_bytes()).err().map(|e| {
        assert_eq!(e.status(), 400, "{e}");
        assert_eq!(e.to_json()["error"]["type"], "invalid_request_error");
        e.param.unwrap_or_default()
    })
}

#[test]
fn unknown_roles_are_refused_naming_the_field() {
    use serde_json::json;
    let mut turns = vec![
        json!({"role": "system", "content": "s"}),
        json!({"role": "user", "content": "q"}),
        json!({"role": "assistant", "content": "a"}),
        json!({"role": "wizard", "content": "abracadabra"}),
    ];
    assert_eq!(refusal_param(json!(turns)).as_deref(), Some("messages[3].role"));
    turns[3] = json!({"role": "User", "content": "q"});
    assert_eq!(refusal_param(json!(turns)).as_deref(), Some("messages[3].role"));
    turns[3] = json!({"role": 7, "content": "q"});
    assert_eq!(refusal_param(json!(turns)).as_deref(), Some("messages[3].role"));
    turns[3] = json!("just text");
    assert_eq!(refusal_param(json!(turns)).as_deref(), Some("messages[3].role"));
}

#[test]
fn role_specific_fields_are_required() {
    use serde_json::json;
    let refused = [
        (json!([{"role": "user"}]), "messages[0].content"),
        (json!([{"role": "user", "content": null}]), "messages[0].content"),
        (json!([{"role": "system", "content": 42}, {"role": "user", "content": "q"}]), "messages[0].content"),
        (json!([{"role": "developer"}, {"role": "user", "content": "q"}]), "messages[0].content"),
        (json!([{"role": "user", "content": "q"}, {"role": "assistant"}]), "messages[1].content"),
        (json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": null}]), "messages[1].content"),
        (json!([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]), "messages[1].tool_call_id"),
        (
            json!([{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": 1, "content": "r"}]),
            "messages[1].tool_call_id",
        ),
        (json!([{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "c1"}]), "messages[1].content"),
    ];
    for (messages, param) in refused {
        assert_eq!(refusal_param(messages.clone()).as_deref(), Some(param), "{messages}");
    }
}

#[test]
fn legitimate_conversations_are_accepted() {
    use serde_json::json;
    let call = json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let accepted = [
        json!([{"role": "developer", "content": "d"}, {"role": "user", "content": "q", "name": "ann"}]),
        json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]}]),
        json!([{"role": "user", "content": ""}]),
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "rain"}]},
        ]),
        json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{}"}},
            {"role": "function", "name": "f", "content": "x"},
            {"role": "assistant", "content": null, "refusal": "no"},
            {"role": "user", "content": "q"},
        ]),
    ];
    for messages in accepted {
        assert_eq!(refusal_param(messages.clone()), None, "{messages}");
    }
}

#[test]
fn usage_reads_openai_cached_tokens_and_round_trips_unchanged() {
    use serde_json::json;
    // The chat completion object's `usage`, as OpenAI's API reference shows it.
    let wire = json!({
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    });
    let mut usage: Usage = serde_json::from_value(wire.clone()).expect("usage");
    assert_eq!((usage.prompt_tokens, usage.cached_tokens(), usage.cache_write_tokens), (2006, 1920, 0));
    // The cache-write count is Deja's own: clients and the cache never see it.
    usage.cache_write_tokens = 7;
    assert_eq!(serde_json::to_value(&usage).expect("serializes"), wire);
    // Details may be null, absent, or hold no count.
    for details in [json!(null), json!({}), json!({"cached_tokens": null}), json!({"cached_tokens": -3})] {
        let u: Usage =
            serde_json::from_value(json!({"prompt_tokens": 5, "prompt_tokens_details": details})).expect("usage");
        assert_eq!(u.cached_tokens(), 0, "{details}");
    }
    let u: Usage = serde_json::from_value(json!({"prompt_tokens": 5, "completion_tokens": 1})).expect("usage");
    assert_eq!(u.cached_tokens(), 0);
    // A field by the internal name is just another unknown field, kept as it came.
    let u: Usage = serde_json::from_value(json!({"prompt_tokens": 5, "cache_write_tokens": 9})).expect("usage");
    assert_eq!((u.cache_write_tokens, u.extra.get("cache_write_tokens")), (0, Some(&json!(9))));
}
