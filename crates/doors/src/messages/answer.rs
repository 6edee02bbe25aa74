//! A whole `chat.completion` → an Anthropic `message`.

use super::{message_id, stop_reason, usage, Echo};
use serde_json::{json, Value};

/// A whole chat completion → the Messages object. Only the first choice is
/// read: a Messages request cannot ask for more.
pub fn answer(echo: &Echo, chat: &Value) -> Value {
    let choice = chat.get("choices").and_then(Value::as_array).and_then(|c| c.first());
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    let text = message.map(|m| text(m.get("content"))).unwrap_or_default();
    let refusal = message.and_then(|m| m.get("refusal")).and_then(Value::as_str).unwrap_or_default();
    for t in [text.as_str(), refusal] {
        if !t.is_empty() {
            content.push(json!({"type": "text", "text": t}));
        }
    }
    let calls = message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let function = call.get("function");
        let field = |f: &str| function.and_then(|x| x.get(f)).and_then(Value::as_str).unwrap_or_default();
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": field("name"),
            "input": input(field("arguments")),
        }));
    }
    let finish = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    let (stop, sequence) = stop_reason(echo, finish, choice);
    json!({
        "id": message_id(chat.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": model(echo, chat),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": sequence,
        "usage": usage(chat.get("usage")).to_json(),
    })
}

/// The model that answered, as chat reports it, else the one asked for.
pub(super) fn model(echo: &Echo, chat: &Value) -> String {
    chat.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).unwrap_or(&echo.model).to_string()
}

/// A message's text: a string, or its text parts joined.
fn text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
}

/// A tool call's arguments as the `input` object. Empty arguments are `{}`;
/// arguments that are not a JSON object are passed on as the string they
/// are, for the client's tool to refuse, rather than replaced by `{}`.
fn input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!(arguments),
    }
}
