use super::*;

fn req(body: &str) -> ChatRequest {
    ChatRequest::parse(body.as_bytes()).expect("valid request")
}

fn key(body: &str) -> CacheKey {
    chat_keys(&Namespace::new(None, None), &req(body)).0
}

#[test]
fn key_order_whitespace_and_number_spelling_do_not_matter() {
    let a = key(r#"{"model":"m","temperature":1,"messages":[{"role":"user","content":"hi"}]}"#);
    let b = key(r#"{ "messages" : [ {"content":"hi", "role":"user"} ], "temperature": 1.0, "model":"m" }"#);
    assert_eq!(a, b);
}

#[test]
fn transport_fields_are_not_keyed() {
    let a = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    let b = key(
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"user":"u1","metadata":{"task":"faq"}}"#,
    );
    assert_eq!(a, b);
}

#[test]
fn everything_that_shapes_the_answer_is_keyed() {
    let base = r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#;
    let k = key(base);
    let variants = [
        r#"{"model":"m2","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[{"role":"system","content":"t"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","temperature":0.2,"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","some_future_field":true,"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","seed":7,"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
    ];
    for v in variants {
        assert_ne!(k, key(v), "{v} should change the key");
    }
}

#[test]
fn namespaces_separate_keys_and_only_narrow() {
    let r = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    let a = chat_keys(&Namespace::new(Some("sk-a"), None), &r);
    let b = chat_keys(&Namespace::new(Some("sk-b"), None), &r);
    let a_sub = chat_keys(&Namespace::new(Some("sk-a"), Some("team")), &r);
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
    assert_ne!(a.0, a_sub.0);
    assert!(Namespace::new(Some("sk-a"), Some("team"))
        .as_str()
        .starts_with(Namespace::new(Some("sk-a"), None).as_str()));
    assert!(!Namespace::new(Some("sk-secret"), None).as_str().contains("secret"));
}

#[test]
fn fingerprint_ignores_only_the_last_user_message() {
    let ns = Namespace::new(None, None);
    let a = chat_keys(&ns, &req(r#"{"model":"m","messages":[{"role":"user","content":"when do you open?"}]}"#));
    let b = chat_keys(
        &ns,
        &req(r#"{"model":"m","messages":[{"role":"user","content":"what time does the store open?"}]}"#),
    );
    assert_ne!(a.0, b.0);
    assert_eq!(a.1, b.1);
    let c = chat_keys(
        &ns,
        &req(
            r#"{"model":"m","messages":[{"role":"user","content":"I have Netflix"},{"role":"assistant","content":"ok"},{"role":"user","content":"cancel it"}]}"#,
        ),
    );
    let d = chat_keys(
        &ns,
        &req(
            r#"{"model":"m","messages":[{"role":"user","content":"I have Spotify"},{"role":"assistant","content":"ok"},{"role":"user","content":"cancel it"}]}"#,
        ),
    );
    assert_ne!(c.1, d.1);
}

#[test]
fn hex_round_trips() {
    let k = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(CacheKey::from_hex(&k.to_hex()), Some(k));
    assert_eq!(CacheKey::from_hex("zz"), None);
}

fn keys(body: &str) -> (CacheKey, ContextFingerprint) {
    chat_keys(&Namespace::new(None, None), &req(body))
}

fn question(content: &str) -> String {
    format!(r#"{{"model":"m","messages":[{{"role":"system","content":"s"}},{{"role":"user","content":{content}}}]}}"#)
}

#[test]
fn everything_but_the_text_of_the_last_question_is_in_the_fingerprint() {
    let text = r#"{"type":"text","text":"what is in this picture?"}"#;
    let base =
        keys(&question(&format!(r#"[{text},{{"type":"image_url","image_url":{{"url":"https://x/cat.png"}}}}]"#)));
    let variants = [
        format!(r#"[{text},{{"type":"image_url","image_url":{{"url":"https://x/dog.png"}}}}]"#),
        format!(r#"[{text},{{"type":"image_url","image_url":{{"url":"https://x/cat.png","detail":"high"}}}}]"#),
        format!(r#"[{text},{{"type":"input_audio","input_audio":{{"data":"AAA","format":"wav"}}}}]"#),
        format!(r#"[{text},{{"type":"file","file":{{"file_id":"file-1"}}}}]"#),
        format!(r#"[{text},{{"type":"some_future_part","x":1}}]"#),
        format!(r#"[{{"type":"image_url","image_url":{{"url":"https://x/cat.png"}}}},{text}]"#),
        format!(r#"[{text}]"#),
        r#""what is in this picture?""#.to_string(),
    ];
    for v in &variants {
        let other = keys(&question(v));
        assert_ne!(base.0, other.0, "{v} should change the key");
        assert_ne!(base.1, other.1, "{v} should change the fingerprint");
    }
    let named = keys(r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"ann"}]}"#);
    let other_name = keys(r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}]}"#);
    let unnamed = keys(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    assert_ne!(named.1, other_name.1);
    assert_ne!(named.1, unnamed.1);
    assert_ne!(named.0, other_name.0);
}

#[test]
fn the_text_of_the_last_question_is_not_in_the_fingerprint() {
    let image = r#"{"type":"image_url","image_url":{"url":"https://x/cat.png"}}"#;
    let a = keys(&question(&format!(r#"[{{"type":"text","text":"what is this?"}},{image}]"#)));
    let b = keys(&question(&format!(r#"[{{"type":"text","text":"what animal is this?"}},{image}]"#)));
    assert_ne!(a.0, b.0);
    assert_eq!(a.1, b.1);
    let a = keys(r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"ann"}]}"#);
    let b = keys(r#"{"model":"m","messages":[{"role":"user","content":"hello","name":"ann"}]}"#);
    assert_eq!(a.1, b.1);
}

#[test]
fn integers_are_hashed_exactly() {
    let with = |field: &str, n: &str| {
        key(&format!(r#"{{"model":"m","{field}":{n},"messages":[{{"role":"user","content":"hi"}}]}}"#))
    };
    for field in ["seed", "max_tokens", "max_completion_tokens", "top_logprobs", "some_future_field"] {
        assert_ne!(with(field, "9007199254740992"), with(field, "9007199254740993"), "{field}");
    }
    for field in ["max_tokens", "some_future_field"] {
        assert_ne!(with(field, "18446744073709551615"), with(field, "18446744073709551614"), "{field}");
        assert_ne!(with(field, "9223372036854775808"), with(field, "9223372036854775807"), "{field}");
    }
    assert_ne!(with("seed", "-9007199254740993"), with("seed", "-9007199254740992"));
    assert_ne!(with("some_future_field", "1"), with("some_future_field", "1.5"));
    assert_ne!(with("some_future_field", "1"), with("some_future_field", "\"1\""));
    // Spellings of the same number still agree.
    assert_eq!(with("some_future_field", "1"), with("some_future_field", "1.0"));
    assert_eq!(with("some_future_field", "100"), with("some_future_field", "1e2"));
    assert_eq!(with("some_future_field", "0"), with("some_future_field", "-0.0"));
    assert_eq!(with("temperature", "1"), with("temperature", "1.0"));
    // A float is not confused with the integer whose bits it shares.
    assert_ne!(with("some_future_field", "5e-324"), with("some_future_field", "1"));
    let embed = |input: &str| {
        let body = format!(r#"{{"model":"e","input":{input}}}"#);
        embeddings_key(&Namespace::new(None, None), &EmbeddingsRequest::parse(body.as_bytes()).expect("valid"))
    };
    assert_ne!(embed("[9007199254740992]"), embed("[9007199254740993]"));
}

#[test]
fn openai_parameters_outside_the_typed_fields_are_keyed() {
    let base = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    for extra in [
        r#""n":2"#,
        r#""logprobs":true"#,
        r#""top_logprobs":3"#,
        r#""parallel_tool_calls":false"#,
        r#""modalities":["text","audio"]"#,
        r#""audio":{"voice":"alloy","format":"wav"}"#,
        r#""reasoning_effort":"high""#,
        r#""service_tier":"flex""#,
        r#""prediction":{"type":"content","content":"x"}"#,
        r#""web_search_options":{}"#,
        r#""verbosity":"low""#,
    ] {
        let k = key(&format!(r#"{{"model":"m",{extra},"messages":[{{"role":"user","content":"hi"}}]}}"#));
        assert_ne!(base, k, "{extra} should change the key");
    }
}

#[test]
fn hex_rejects_wrong_lengths_and_digits_without_panicking() {
    let k = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    let hex = k.to_hex();
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(CacheKey::from_hex(&hex.to_uppercase()), Some(k));
    assert_eq!(CacheKey::from_hex(&hex[..62]), None);
    assert_eq!(CacheKey::from_hex(&format!("{hex}00")), None);
    assert_eq!(CacheKey::from_hex(&format!("{}zz", &hex[..62])), None);
    assert_eq!(CacheKey::from_hex(&format!("{}é", &hex[..62])), None);
    assert_eq!(CacheKey::from_hex(""), None);
}

fn coarse(body: &str) -> Option<ContextFingerprint> {
    conversation_fingerprint(&Namespace::new(None, None), &req(body), None)
}

fn convo(system: &str, small_talk: &str, extra: &str) -> String {
    format!(
        r#"{{"model":"m"{extra},"messages":[{{"role":"system","content":"{system}"}},{{"role":"user","content":"{small_talk}"}},{{"role":"assistant","content":"Sure."}},{{"role":"user","content":"What time is it in Paris?"}}]}}"#
    )
}

#[test]
fn the_coarse_fingerprint_leaves_out_only_the_earlier_turns() {
    let a = coarse(&convo("be brief", "hello there", "")).expect("a conversation");
    assert_eq!(Some(a), coarse(&convo("be brief", "nice weather today", "")), "small talk is not in it");
    assert_ne!(a, chat_keys(&Namespace::new(None, None), &req(&convo("be brief", "hello there", ""))).1);
    for other in [
        convo("be verbose", "hello there", ""),
        convo("be brief", "hello there", r#","temperature":0.5"#),
        convo("be brief", "hello there", r#","tools":[{"type":"function","function":{"name":"f"}}]"#),
    ] {
        assert_ne!(coarse(&other), Some(a), "{other}");
    }
    let b = convo("be brief", "hello there", "");
    let tenant = conversation_fingerprint(&Namespace::new(Some("k"), None), &req(&b), None);
    assert_ne!(tenant, Some(a));
    assert_ne!(conversation_fingerprint(&Namespace::new(None, None), &req(&b), Some("rung")), Some(a));
    assert_eq!(
        coarse(r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}]}"#),
        None
    );
}
