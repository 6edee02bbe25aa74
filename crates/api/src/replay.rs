//! Replays a stored `chat.completion` as the SSE stream OpenAI would have sent:
//! a role chunk, content, tool calls (or a legacy function call), the finish
//! reason, the usage chunk when asked for, then `[DONE]`.

use crate::chat::ChatCompletion;
use crate::sse;
use bytes::Bytes;
use serde_json::{json, Value};

/// Content is sent in pieces of about this many characters, so clients that
/// render incrementally behave as they do on a live stream.
const PIECE_CHARS: usize = 64;

pub fn completion_to_sse(c: &ChatCompletion, include_usage: bool) -> Vec<Bytes> {
    let fp = c.extra.get("system_fingerprint").cloned().unwrap_or(Value::Null);
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": fp,
            "choices": choices,
        });
        let usage = match usage {
            Some(u) => Some(u),
            None if include_usage => Some(Value::Null),
            None => None,
        };
        if let (Some(u), Some(fields)) = (usage, v.as_object_mut()) {
            fields.insert("usage".to_string(), u);
        }
        sse::frame(&v.to_string())
    };
    let mut out = Vec::new();
    for choice in &c.choices {
        let msg = &choice.message;
        let role = msg.get("role").cloned().unwrap_or_else(|| json!("assistant"));
        let delta = |d: Value| json!([{"index": choice.index, "delta": d, "logprobs": null, "finish_reason": null}]);
        // OpenAI opens text answers with `content: ""` and tool calls with `null`.
        let opening = if msg.get("content").is_some_and(Value::is_string) { json!("") } else { Value::Null };
        out.push(chunk(delta(json!({"role": role, "content": opening})), None));
        if let Some(text) = msg.get("content").and_then(Value::as_str) {
            for piece in split_chars(text, PIECE_CHARS) {
                out.push(chunk(delta(json!({"content": piece})), None));
            }
        }
        if let Some(refusal) = msg.get("refusal").and_then(Value::as_str) {
            out.push(chunk(delta(json!({"refusal": refusal})), None));
        }
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            let indexed: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let mut call = call.clone();
                    if let Some(fields) = call.as_object_mut() {
                        fields.insert("index".to_string(), json!(i));
                    }
                    call
                })
                .collect();
            out.push(chunk(delta(json!({"tool_calls": indexed})), None));
        }
        if let Some(call) = msg.get("function_call").filter(|f| !f.is_null()) {
            out.push(chunk(delta(json!({"function_call": call})), None));
        }
        let finish =
            json!([{"index": choice.index, "delta": {}, "logprobs": null, "finish_reason": choice.finish_reason}]);
        out.push(chunk(finish, None));
    }
    if include_usage {
        let usage = serde_json::to_value(c.usage.clone().unwrap_or_default()).unwrap_or(Value::Null);
        out.push(chunk(json!([]), Some(usage)));
    }
    out.push(sse::done_frame());
    out
}

/// Splits `text` into pieces of `max` characters (at least one), the last
/// one shorter.
fn split_chars(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    // `char_indices` yields boundaries, so the split always succeeds.
    while let Some((piece, tail)) = rest.char_indices().nth(max).and_then(|(i, _)| rest.split_at_checked(i)) {
        pieces.push(piece);
        rest = tail;
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::split_chars;

    #[test]
    fn pieces_hold_whole_characters() {
        assert_eq!(split_chars("", 3), Vec::<&str>::new());
        assert_eq!(split_chars("abc", 3), vec!["abc"]);
        assert_eq!(split_chars("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(split_chars("héllo wörld", 4), vec!["héll", "o wö", "rld"]);
    }
}
