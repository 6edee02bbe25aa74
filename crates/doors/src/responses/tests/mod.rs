//! Fixtures follow OpenAI's Responses reference (the `openai` SDK's types,
//! generated from the published OpenAPI spec): request items and tools, the
//! `response` object and the streaming events.

mod answer;
mod request;
mod stream;

use super::Echo;
use serde_json::{json, Value};

/// The chat request and echo a Responses body translates into.
fn translate(body: Value) -> (Value, bool, Echo) {
    let t = super::translate(body.to_string().as_bytes()).expect("translates");
    (t.chat, t.stream, t.echo)
}

/// The 400 a Responses body is refused with: (param, message).
fn refused(body: Value) -> (String, String) {
    let e = super::translate(body.to_string().as_bytes()).expect_err("refused");
    assert_eq!(e.status(), 400, "{e}");
    assert_eq!(e.kind.type_name(), "invalid_request_error");
    (e.param.unwrap_or_default(), e.message)
}

fn echo_of(body: Value) -> Echo {
    translate(body).2
}

/// A whole chat completion as OpenAI sends one.
fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1_741_569_952u64,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_mock",
    })
}
