//! Streamed misses against providers that stream differently: usage null in
//! every chunk (OpenAI), usage absent until a final usage chunk, usage on the
//! last content chunk, or no usage at all; framed with `\n\n` or `\r\n\r\n`,
//! with keep-alive comments, with events split across writes. Whatever the
//! style, the client gets the whole answer, and so does the cache.

mod common;

use common::*;
use deja_mock_upstream::{StreamStyle, UsageStyle};
use deja_testkit::{eventually, spawn_proxy, Harness};
use serde_json::{json, Value};
use std::time::Duration;

const STYLES: [(&str, StreamStyle); 4] = [
    (
        "openai",
        StreamStyle {
            usage: UsageStyle::NullInEveryChunk,
            crlf: false,
            keep_alive: false,
            split_events: false,
            sparse: false,
        },
    ),
    (
        "absent",
        StreamStyle {
            usage: UsageStyle::AbsentUntilLast,
            crlf: true,
            keep_alive: false,
            split_events: false,
            sparse: false,
        },
    ),
    (
        "final",
        StreamStyle {
            usage: UsageStyle::OnFinalChunk,
            crlf: false,
            keep_alive: true,
            split_events: false,
            sparse: false,
        },
    ),
    (
        "never",
        StreamStyle { usage: UsageStyle::Never, crlf: false, keep_alive: false, split_events: true, sparse: false },
    ),
];

fn parsed(text: &str) -> Vec<Value> {
    events(text).iter().filter(|e| *e != "[DONE]").filter_map(|e| serde_json::from_str(e).ok()).collect()
}

async fn entries(h: &Harness) -> u64 {
    admin_get(h, "/admin/stats").await.body["entries"].as_u64().unwrap_or(0)
}

/// One streamed miss, then the same request as an exact hit, streamed and as JSON.
async fn check_style(h: &Harness, name: &str, style: StreamStyle, wants_usage: bool) {
    h.mock.control.set_stream_style(style);
    let question = format!("style {name}, usage asked: {wants_usage}, tell me everything");
    let expected = format!("[cheap] Simulated answer to: {question}");
    let case = format!("{name}/{wants_usage}");
    let mut body = ask(&question);
    body["stream"] = json!(true);
    if wants_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    let stored_before = entries(h).await;

    let live = chat(h, &body).await;
    assert_eq!(live.status, 200, "{case}: {}", live.text);
    assert_eq!(live.cache(), "miss", "{case}");
    assert_eq!(streamed_content(&live.text), expected, "{case}: {}", live.text);
    assert_eq!(events(&live.text).last().map(String::as_str), Some("[DONE]"), "{case}");
    let chunks = parsed(&live.text);
    assert!(
        chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{case}: the finish reason reaches the client: {}",
        live.text
    );
    if wants_usage {
        let has_usage = chunks.iter().any(|c| c["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0));
        assert_eq!(has_usage, style.usage != UsageStyle::Never, "{case}: usage as the provider sent it");
    } else {
        assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{case}: no usage unless asked: {}", live.text);
        assert!(
            chunks.iter().all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())),
            "{case}: no usage-only chunk unless asked: {}",
            live.text
        );
    }

    let stored = eventually(Duration::from_secs(5), || async { entries(h).await > stored_before }).await;
    assert!(stored, "{case}: the streamed answer is stored");
    let replay = chat(h, &body).await;
    assert_eq!(replay.cache(), "exact", "{case}");
    assert_eq!(streamed_content(&replay.text), expected, "{case}: replayed stream");
    let saved: f64 = replay.header("x-deja-saved-usd").and_then(|v| v.parse().ok()).expect("saved header");
    if style.usage == UsageStyle::Never {
        assert_eq!(saved, 0.0, "{case}: no usage, no price");
    } else {
        assert!(saved > 0.0, "{case}: priced from the usage the provider sent");
    }

    body["stream"] = json!(false);
    body.as_object_mut().map(|b| b.remove("stream_options"));
    let json_replay = chat(h, &body).await;
    assert_eq!(json_replay.cache(), "exact", "{case}");
    assert_eq!(json_replay.content(), expected, "{case}: replayed as JSON");
    assert_eq!(json_replay.body["choices"][0]["finish_reason"], "stop", "{case}");
    assert_eq!(h.mock.control.calls("cheap"), 1, "{case}: one upstream call");
    h.mock.control.reset();
}

#[tokio::test]
async fn every_stream_style_reaches_the_client_and_the_cache_whole() {
    let h = spawn_proxy(exact_only()).await;
    for (name, style) in STYLES {
        for wants_usage in [false, true] {
            check_style(&h, name, style, wants_usage).await;
        }
    }
}

#[tokio::test]
async fn every_framing_variant_at_once_is_read_correctly() {
    let h = spawn_proxy(exact_only()).await;
    let style = StreamStyle {
        usage: UsageStyle::AbsentUntilLast,
        crlf: true,
        keep_alive: true,
        split_events: true,
        sparse: false,
    };
    for wants_usage in [false, true] {
        check_style(&h, "all-framing", style, wants_usage).await;
    }
}

#[tokio::test]
async fn a_usage_less_stream_is_counted_at_no_cost() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.set_stream_style(StreamStyle { usage: UsageStyle::Never, ..Default::default() });
    let mut body = ask("no usage from this provider");
    body["stream"] = json!(true);
    let r = chat(&h, &body).await;
    assert_eq!(streamed_content(&r.text), "[cheap] Simulated answer to: no usage from this provider");
    let stored = eventually(Duration::from_secs(5), || async { entries(&h).await == 1 }).await;
    assert!(stored, "stored even without usage");
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["misses"], 1, "{stats}");
    assert_eq!(stats["usd_spent"].as_f64(), Some(0.0), "{stats}");
}

#[tokio::test]
async fn an_event_that_never_ends_falls_back_or_ends_the_stream_without_growing() {
    use deja_mock_upstream::Fault;
    // A deadline far away: only the event cap can end these attempts early.
    let h = spawn_proxy(deja_testkit::TestConfig { attempt_timeout: "300s".into(), ..exact_only() }).await;
    // Before anything reached the client: the next rung answers.
    h.mock.control.push_faults("cheap", [Fault::EndlessEventAfter { chunks: 0 }]);
    let mut body = ask("an endless first event");
    body["stream"] = json!(true);
    let r = tokio::time::timeout(Duration::from_secs(30), chat(&h, &body)).await.expect("the cap ends the attempt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-deja-model"), Some("mid"), "{:?}", r.headers);
    assert!(r.text.ends_with("data: [DONE]\n\n"));
    let sent = h.mock.control.endless_bytes_sent();
    assert!(sent < 32 * 1024 * 1024, "Deja stopped reading soon after its cap, not after {sent} bytes");

    // Mid-stream: the client gets an error event, never [DONE], and nothing is stored.
    h.mock.control.push_faults("cheap", [Fault::EndlessEventAfter { chunks: 2 }]);
    let mut body = ask("an endless later event");
    body["stream"] = json!(true);
    let r = tokio::time::timeout(Duration::from_secs(30), chat(&h, &body)).await.expect("the cap ends the stream");
    assert!(!r.text.contains("[DONE]"));
    let last: Value = serde_json::from_str(events(&r.text).last().expect("an error event")).expect("json");
    assert_eq!(last["error"]["code"], "stream_interrupted", "{last}");
    assert_eq!(chat(&h, &body).await.cache(), "miss", "a cut answer is never stored");
}
