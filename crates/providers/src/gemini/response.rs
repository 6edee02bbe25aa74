//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`, so an answer
//! is stored, priced and replayed the same whichever provider produced it.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// An id for an answer Gemini sent without `responseId`. OpenAI clients
/// expect every answer, and every tool call in it, to have an id of its own
/// (a tool result names its call), so a constant would make separate answers'
/// calls collide. `created` and a per-process counter keep them apart.
pub(crate) fn fallback_id(created: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("gemini-{created:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The answer's own id, or a fresh one when Gemini gave none.
pub(crate) fn response_id(response: &Value, created: u64) -> String {
    match response.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => fallback_id(created),
    }
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`. A candidate that
/// calls functions finishes with `STOP`; the caller says `tool_calls` then.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "STOP" => "stop",
        "MAX_TOKENS" => "length",
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" => "stop",
        // SAFETY, RECITATION, LANGUAGE, BLOCKLIST, PROHIBITED_CONTENT, SPII,
        // IMAGE_SAFETY, OTHER and reasons yet to come: the answer was withheld.
        _ => "content_filter",
    }
}

/// The finish reason of a candidate that made `calls` function calls.
pub(crate) fn candidate_finish(reason: Option<&str>, calls: usize) -> Option<&'static str> {
    match reason.map(finish_reason) {
        Some("stop") if calls > 0 => Some("tool_calls"),
        other => other,
    }
}

/// OpenAI's usage for Gemini's `usageMetadata`: prompt tokens include those
/// read from the context cache (reported as `cached_tokens`), completion
/// tokens include thinking (reported as `reasoning_tokens`). Sums saturate:
/// the counts are the provider's.
pub(crate) fn usage(meta: Option<&Value>) -> Value {
    let count = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("promptTokenCount").saturating_add(count("toolUsePromptTokenCount"));
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").saturating_add(thoughts);
    let mut u = Map::new();
    u.insert("prompt_tokens".into(), json!(prompt));
    u.insert("completion_tokens".into(), json!(completion));
    u.insert("total_tokens".into(), json!(prompt.saturating_add(completion)));
    if count("cachedContentTokenCount") > 0 {
        u.insert("prompt_tokens_details".into(), json!({"cached_tokens": count("cachedContentTokenCount")}));
    }
    if thoughts > 0 {
        u.insert("completion_tokens_details".into(), json!({"reasoning_tokens": thoughts}));
    }
    Value::Object(u)
}

/// A tool call id for the `n`th function call of a response: Gemini's own
/// when it sends one.
pub(crate) fn call_id(call: &Value, response_id: &str, n: usize) -> String {
    match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("call_{response_id}_{n}"),
    }
}

/// A `functionCall` part as an OpenAI tool call.
pub(crate) fn tool_call(call: &Value, id: String) -> Value {
    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
    let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// The answer parts of a candidate: thought summaries carry none.
pub(crate) fn parts(candidate: &Value) -> impl Iterator<Item = &Value> {
    let parts = candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array);
    parts.into_iter().flatten().filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
}

/// Translates a `GenerateContentResponse`. `model` names the answer when
/// Gemini does not (`modelVersion`). `Err` says why it is not one.
pub fn to_chat_completion(body: &[u8], model: &str, created: u64) -> Result<Value, String> {
    let response: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let candidates = match response.get("candidates") {
        Some(Value::Array(c)) => c.as_slice(),
        None if response.get("promptFeedback").is_some() || response.get("usageMetadata").is_some() => &[],
        _ => return Err("the answer is not a Gemini GenerateContentResponse".into()),
    };
    let id = response_id(&response, created);
    let id = id.as_str();
    let mut choices = Vec::new();
    let mut n = 0;
    for (i, candidate) in candidates.iter().enumerate() {
        let mut text: Option<String> = None;
        let mut calls = Vec::new();
        for part in parts(candidate) {
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.get_or_insert_with(String::new).push_str(t);
            } else if let Some(call) = part.get("functionCall") {
                calls.push(tool_call(call, call_id(call, id, n)));
                n += 1;
            }
        }
        let mut msg = Map::new();
        msg.insert("role".into(), json!("assistant"));
        let content = match text {
            Some(t) => Value::String(t),
            None if !calls.is_empty() => Value::Null,
            None => json!(""),
        };
        msg.insert("content".into(), content);
        let finish = candidate_finish(candidate.get("finishReason").and_then(Value::as_str), calls.len());
        if !calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(calls));
        }
        let index = candidate.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        choices.push(json!({"index": index, "message": Value::Object(msg), "logprobs": null, "finish_reason": finish}));
    }
    if choices.is_empty() {
        // The prompt itself was blocked (`promptFeedback.blockReason`).
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": null,
            "finish_reason": "content_filter"}));
    }
    Ok(json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": response.get("modelVersion").and_then(Value::as_str).unwrap_or(model),
        "choices": choices,
        "usage": usage(response.get("usageMetadata")),
    }))
}

/// The `error.status` of a Gemini error body (`RESOURCE_EXHAUSTED`,
/// `INVALID_ARGUMENT`, ...), used as the OpenAI error's `code`.
pub fn error_status(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.get("status")?.as_str().map(str::to_string)
}
