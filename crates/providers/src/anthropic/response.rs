//! Anthropic Message → OpenAI `chat.completion`, so an answer is stored,
//! priced and replayed the same whichever provider produced it.

use serde_json::{json, Map, Value};

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and reasons yet to come.
        _ => "stop",
    }
}

/// OpenAI's usage for Anthropic's: prompt tokens include those written to
/// and read from Anthropic's prompt cache (OpenAI counts cached tokens in
/// `prompt_tokens`), and the read ones are reported as `cached_tokens`.
/// OpenAI has no field for the written ones: the translators hand that count
/// over beside the answer ([`to_chat_completion_and_cache_writes`],
/// [`super::StreamTranslator::cache_write_tokens`]). Sums saturate: the
/// counts are the provider's.
pub(crate) fn usage(input: u64, output: u64, cache_write: u64, cache_read: u64) -> Value {
    let prompt = input.saturating_add(cache_write).saturating_add(cache_read);
    let total = prompt.saturating_add(output);
    let mut u = json!({"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": total});
    if cache_read > 0 {
        if let Some(o) = u.as_object_mut() {
            o.insert("prompt_tokens_details".into(), json!({"cached_tokens": cache_read}));
        }
    }
    u
}

pub(crate) fn count(usage: Option<&Value>, field: &str) -> Option<u64> {
    usage?.get(field)?.as_u64()
}

/// Translates a Message body. `Err` says why it is not one.
pub fn to_chat_completion(body: &[u8], created: u64) -> Result<Value, String> {
    to_chat_completion_and_cache_writes(body, created).map(|(completion, _)| completion)
}

/// [`to_chat_completion`], and the prompt tokens the message wrote to
/// Anthropic's prompt cache (`cache_creation_input_tokens`, 0 when absent or
/// null): part of the completion's `prompt_tokens` but priced apart, and
/// OpenAI's usage has no field to carry them.
pub fn to_chat_completion_and_cache_writes(body: &[u8], created: u64) -> Result<(Value, u64), String> {
    let message: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    if message.get("type").and_then(Value::as_str) != Some("message") {
        return Err("the answer is not an Anthropic message".into());
    }
    let Some(blocks) = message.get("content").and_then(Value::as_array) else {
        return Err("the message has no content array".into());
    };
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = block.get("text").and_then(Value::as_str).unwrap_or_default();
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => {
                let (Some(id), Some(name)) =
                    (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str))
                else {
                    return Err("a tool_use block has no id or name".into());
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            // Thinking and blocks of types yet to come carry no answer text.
            _ => {}
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
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = message.get("stop_reason").and_then(Value::as_str).map(finish_reason);
    let u = message.get("usage");
    let cache_write = count(u, "cache_creation_input_tokens").unwrap_or(0);
    let completion = json!({
        "id": message.get("id").and_then(Value::as_str).unwrap_or_default(),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model").and_then(Value::as_str).unwrap_or_default(),
        "choices": [{"index": 0, "message": Value::Object(msg), "logprobs": null, "finish_reason": finish}],
        "usage": usage(
            count(u, "input_tokens").unwrap_or(0),
            count(u, "output_tokens").unwrap_or(0),
            cache_write,
            count(u, "cache_read_input_tokens").unwrap_or(0),
        ),
    });
    Ok((completion, cache_write))
}

/// The `error.type` of an Anthropic error body (`overloaded_error`,
/// `invalid_request_error`, ...), used as the OpenAI error's `code`.
pub fn error_type(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    v.get("error")?.get("type")?.as_str().map(str::to_string)
}
