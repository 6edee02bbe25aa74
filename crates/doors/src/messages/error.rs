//! Deja's OpenAI-shaped errors → Anthropic's `{"type": "error", "error": {type, message}}`.

use crate::{DoorError, Event};
use serde_json::{json, Value};

/// The error types Anthropic documents, each for its own status.
const TYPES: [&str; 8] = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
];

/// An OpenAI-shaped error (status, `{"error": {...}}` body) → Anthropic's
/// shape. The status is kept: Anthropic's SDKs choose the exception class
/// (and whether to retry) by it, and the type follows Anthropic's table.
pub fn error(status: u16, openai: &Value) -> DoorError {
    (status, body(kind(status), &message(openai, status)))
}

/// Anthropic's error type for an HTTP status. Other 4xx are
/// `invalid_request_error`, as Anthropic documents; a 503 (every rung busy
/// or rate limited) is the overload Anthropic reports as 529.
pub(super) fn kind(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The `error` event that ends a stream whose chat stream ended in
/// `{"error": {...}}`: there is no status, so the type is the error's own
/// when it is one of Anthropic's (an Anthropic upstream's, carried as the
/// code), `api_error` otherwise.
pub(super) fn event(chat_error: &Value) -> Event {
    let e = chat_error.get("error");
    let named = ["code", "type"]
        .iter()
        .filter_map(|f| e?.get(f)?.as_str())
        .find_map(|t| TYPES.iter().find(|known| **known == t))
        .copied()
        .unwrap_or("api_error");
    Event::named("error", body(named, &message(chat_error, 502)))
}

fn message(openai: &Value, status: u16) -> String {
    let e = openai.get("error");
    match e.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => format!("the request failed with status {status}"),
    }
}

fn body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}
