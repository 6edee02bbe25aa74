//! Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`).
//!
//! - [`translate`]: a Messages request → the chat request it means, or a 400
//!   naming the field (or block path) Deja cannot honour.
//! - [`answer`]: a whole `chat.completion` → a `message` object.
//! - [`shaper`]: `chat.completion.chunk`s → Anthropic's named SSE events.
//! - [`error`]: Deja's OpenAI-shaped error → Anthropic's error shape.
//! - [`count_tokens`]: the prompt's size, estimated as the ladder estimates it.

mod answer;
mod content;
mod error;
mod request;
mod stream;

pub use answer::answer;
pub use error::error;
pub use request::{count_tokens, translate};
pub use stream::shaper;

/// What a Messages answer echoes back from its request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// The model the client asked for: names the answer until the chat answer does.
    pub model: String,
    /// The request's `stop_sequences`, to tell `stop_sequence` from `end_turn`
    /// when the upstream says which one matched.
    pub stop_sequences: Vec<String>,
    /// The prompt's estimated size: `message_start` comes before the
    /// upstream's count, which `message_delta` then carries.
    pub input_tokens: u64,
}

/// Anthropic's `stop_reason` for a chat `finish_reason`, and the stop
/// sequence when the choice names one of the request's (vLLM's
/// `stop_reason`, SGLang's `matched_stop`; OpenAI never says).
fn stop_reason(
    echo: &Echo,
    finish: Option<&str>,
    choice: Option<&serde_json::Value>,
) -> (&'static str, Option<String>) {
    match finish {
        Some("length") => ("max_tokens", None),
        Some("tool_calls" | "function_call") => ("tool_use", None),
        Some("content_filter") => ("refusal", None),
        _ => {
            let matched = ["stop_reason", "matched_stop"]
                .iter()
                .filter_map(|f| choice?.get(f)?.as_str())
                .find(|s| echo.stop_sequences.iter().any(|q| q == s));
            match matched {
                Some(s) => ("stop_sequence", Some(s.to_string())),
                None => ("end_turn", None),
            }
        }
    }
}

/// A message id for a chat id: Anthropic's ids start `msg_`. Derived, not
/// random, so a cached answer replays under the id it was first given.
fn message_id(chat_id: Option<&str>) -> String {
    match chat_id.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_string(),
        Some(id) => format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id)),
        None => "msg_deja".to_string(),
    }
}

/// Anthropic's usage from OpenAI's: `input_tokens` excludes the prompt
/// tokens read from the provider's prompt cache, which OpenAI counts in
/// `prompt_tokens`. Tokens written to it are not in OpenAI's usage at all.
fn usage(u: Option<&serde_json::Value>) -> Usage {
    let count = |f: &str| u.and_then(|u| u.get(f)).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let cached = u
        .and_then(|u| u.get("prompt_tokens_details"))
        .and_then(|d| d.get("cached_tokens"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Usage {
        input: count("prompt_tokens").saturating_sub(cached),
        output: count("completion_tokens"),
        cache_read: cached,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Usage {
    input: u64,
    output: u64,
    cache_read: u64,
}

impl Usage {
    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": self.cache_read,
        })
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod request_tests;

#[cfg(test)]
#[path = "answer_tests.rs"]
mod answer_tests;

#[cfg(test)]
#[path = "stream_tests.rs"]
mod stream_tests;
