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
