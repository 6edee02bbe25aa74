//! Limits at the edge, on real sockets: slow request heads and bodies, the
//! connection cap, the overall request deadline and per-key rate limits.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_limits(limits: &str) -> TestConfig {
    TestConfig { extra_toml: limits.to_string(), ..exact_only() }
}

/// Reads until the server closes the connection (or `within` passes: `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// One keep-alive GET /healthz on `stream`, read up to the end of its JSON body.
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: deja\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).contains("\"ok\"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn body_of(response: &str) -> Value {
    response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let h = spawn_proxy(with_limits("[limits]\nheader_read_timeout = \"500ms\"\n")).await;
    let mut slow = TcpStream::connect(h.proxy.addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: deja\r\nX-Slow: ").await.expect("write");
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "the connection was still open after 5s");
    assert!(started.elapsed() < Duration::from_secs(3), "closed only after {:?}", started.elapsed());
    // A prompt client on another connection is unaffected.
    let ok = client().get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(ok.status().as_u16(), 200);
    // A kept-alive connection that sends no next request is closed the same way.
    let mut idle = TcpStream::connect(h.proxy.addr).await.expect("connect");
    assert!(healthz_on(&mut idle).await.starts_with("HTTP/1.1 200"));
    assert!(read_until_closed(&mut idle, Duration::from_secs(3)).await.is_some(), "an idle connection stayed open");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let h = spawn_proxy(with_limits("[limits]\nbody_read_timeout = \"500ms\"\n")).await;
    let mut slow = TcpStream::connect(h.proxy.addr).await.expect("connect");
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: deja\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":",
    )
    .await
    .expect("write");
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5)).await.expect("an answer within 5s");
    assert!(started.elapsed() < Duration::from_secs(3), "answered only after {:?}", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = body_of(&answer);
    assert_eq!(body["error"]["code"], "request_timeout", "{answer}");
}

#[tokio::test]
async fn connections_past_the_cap_get_a_prompt_503() {
    let h = spawn_proxy(with_limits("[limits]\nmax_connections = 2\n")).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(h.proxy.addr).await.expect("connect");
        assert!(healthz_on(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(h.proxy.addr).await.expect("connect");
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: deja\r\n\r\n").await.expect("write");
    let answer = read_until_closed(&mut third, Duration::from_secs(3)).await.expect("refused promptly");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let body = body_of(&answer);
    assert_eq!(body["error"]["code"], "too_many_connections", "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after"), "{answer}");

    // Closing a held connection frees its place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut s = TcpStream::connect(h.proxy.addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: deja\r\nConnection: close\r\n\r\n").await.expect("write");
        let answer = read_until_closed(&mut s, Duration::from_secs(3)).await.unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_unary_request_gets_504_at_the_deadline() {
    let h = spawn_proxy(with_limits("[limits]\nrequest_timeout = \"600ms\"\n")).await;
    h.mock.control.push_faults("cheap", [Fault::Delay { ms: 1_800 }]);
    let started = Instant::now();
    let r = chat(&h, &json!({"model": "cheap", "messages": [{"role": "user", "content": "slow one"}]})).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "request_timeout", "{}", r.text);
    assert!(r.body["error"]["type"].is_string() && r.body["error"].get("param").is_some());
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(1_500), "took {took:?}");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn the_deadline_does_not_cut_a_healthy_stream() {
    let h = spawn_proxy(with_limits("[limits]\nrequest_timeout = \"500ms\"\n")).await;
    h.mock.control.set_chunk_delay(Duration::from_millis(150));
    let mut body = ask("a stream that takes longer than the deadline to finish");
    body["stream"] = json!(true);
    let started = Instant::now();
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(started.elapsed() > Duration::from_millis(500), "the stream was quicker than the deadline");
    assert_eq!(events(&r.text).last().map(String::as_str), Some("[DONE]"), "{}", r.text);
}

fn two_keys(limits: &str) -> TestConfig {
    TestConfig { client_keys: vec!["key-a".into(), "key-b".into()], extra_toml: limits.to_string(), ..exact_only() }
}

#[tokio::test]
async fn a_key_past_its_requests_per_minute_gets_429_and_others_do_not() {
    let h = spawn_proxy(two_keys("[limits.rate]\nrequests_per_minute = 2\n")).await;
    let auth_a = [("authorization", "Bearer key-a")];
    for i in 0..2 {
        let r = chat_with(&h, &ask(&format!("question {i}")), &auth_a).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some(if i == 0 { "1" } else { "0" }));
    }
    let r = chat_with(&h, &ask("question 0"), &auth_a).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "requests", "{}", r.text);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded", "{}", r.text);
    assert!(r.body["error"]["message"].is_string() && r.body["error"].get("param").is_some());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(r.header("x-ratelimit-reset-requests").is_some_and(|v| v.ends_with('s')), "{:?}", r.headers);
    let retry: u64 = r.header("retry-after").and_then(|v| v.parse().ok()).expect("retry-after in seconds");
    assert!((1..=30).contains(&retry), "retry-after {retry}");
    // Refused before any work: the cache and the upstream never saw it.
    assert_eq!(h.mock.control.total_calls(), 2);

    let r = chat_with(&h, &ask("question 0"), &[("authorization", "Bearer key-b")]).await;
    assert_eq!(r.status, 200, "another key has its own budget: {}", r.text);
}

#[tokio::test]
async fn tokens_per_minute_can_be_set_per_key() {
    let key_env = format!("DEJA_TEST_EDGE_KEY_{}", std::process::id());
    std::env::set_var(&key_env, "key-b");
    let limits = format!(
        "[limits.rate]\nrequests_per_minute = 100\n\n[[limits.rate.keys]]\nkey_env = \"{key_env}\"\ntokens_per_minute = 300\n"
    );
    let h = spawn_proxy(two_keys(&limits)).await;
    let auth_b = [("authorization", "Bearer key-b")];
    let long = "word ".repeat(160); // about 200 tokens
    let r = chat_with(&h, &ask(&long), &auth_b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("300"));
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("100"), "the default still applies");
    let r = chat_with(&h, &ask(&format!("{long} again")), &auth_b).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "tokens", "{}", r.text);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
    assert!(r.header("x-ratelimit-remaining-tokens").is_some());
    assert!(r.header("x-ratelimit-reset-tokens").is_some());
    assert!(r.header("retry-after").is_some());

    // key-a has no token limit.
    for i in 0..3 {
        let r = chat_with(&h, &ask(&format!("{long} {i}")), &[("authorization", "Bearer key-a")]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-limit-tokens"), None);
    }
}

#[tokio::test]
async fn limits_are_validated_with_the_field_named() {
    for (toml, field) in [
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        ("[limits]\nrequest_timeout = \"soon\"\n", "limits.request_timeout"),
        ("[limits]\nheader_read_timeout = \"0s\"\n", "limits.header_read_timeout"),
        ("[[limits.rate.keys]]\nkey_env = \"DEJA_TEST_EDGE_UNSET_VARIABLE\"\n", "limits.rate.keys[0].key_env"),
        ("[limits.rate]\nrequests_per_mintue = 5\n", "limits.rate"),
    ] {
        let text = with_limits(toml).to_toml("http://127.0.0.1:1/v1", std::path::Path::new("/tmp/unused"));
        let err = deja::config::Config::parse(&text).expect_err(toml).to_string();
        assert!(err.starts_with(field), "{toml}: {err}");
    }
}
