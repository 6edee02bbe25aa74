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
