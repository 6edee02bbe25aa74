//! A whole `chat.completion` → the `response` object, and the output items
//! the stream builds too.

use super::{response, status, usage, Echo, Ids, Shape};
use serde_json::{json, Value};

/// A whole chat completion → the Responses object. The answer's text (and
/// refusal) becomes one `message` item, each tool call a `function_call` item
/// after it, as OpenAI orders them.
pub fn answer(echo: &Echo, chat: &Value) -> Value {
    let ids = Ids::from_chat(chat.get("id").and_then(Value::as_str));
    let created = chat.get("created").unwrap_or(&Value::Null);
    let model = chat.get("model").and_then(Value::as_str);
    let Some(choice) = chat.get("choices").and_then(|c| c.get(0)) else {
        let error = json!({"code": "server_error", "message": "the upstream answer held no choices"});
        let shape = Shape { status: "failed", incomplete: None, output: Vec::new(), usage: Value::Null, error };
        return response(echo, &ids, created, model, shape);
    };
    let message = choice.get("message").unwrap_or(&Value::Null);
    let (status, incomplete) = status(choice.get("finish_reason").and_then(Value::as_str));
    let item_status = item_status(status);
    let mut output = Vec::new();
    let text = text_of(message.get("content"));
    let refusal = message.get("refusal").and_then(Value::as_str);
    let calls: &[Value] = message.get("tool_calls").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let mut content = Vec::new();
    if !text.is_empty() || (refusal.is_none() && calls.is_empty()) {
        content.push(text_part(&text));
    }
    if let Some(r) = refusal {
        content.push(refusal_part(r));
    }
    if !content.is_empty() {
        output.push(message_item(&ids.message(0), item_status, content));
    }
    for (n, call) in calls.iter().enumerate() {
        let function = call.get("function").unwrap_or(&Value::Null);
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let call_id = Some(field(call, "id")).filter(|id| !id.is_empty()).unwrap_or_else(|| ids.call(n));
        let call =
            Call { id: ids.call(n), call_id, name: field(function, "name"), arguments: field(function, "arguments") };
        output.push(call.item(item_status));
    }
    let shape = Shape { status, incomplete, output, usage: usage(chat.get("usage")), error: Value::Null };
    response(echo, &ids, created, model, shape)
}

/// An item's status once the answer has ended.
pub(super) fn item_status(response_status: &str) -> &'static str {
    if response_status == "completed" {
        "completed"
    } else {
        "incomplete"
    }
}

/// A message's text: a string, or the text of its text parts.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

pub(super) fn refusal_part(refusal: &str) -> Value {
    json!({"type": "refusal", "refusal": refusal})
}

pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// A `function_call` output item.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub id: String,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

impl Call {
    pub fn item(&self, status: &str) -> Value {
        json!({
            "type": "function_call",
            "id": self.id,
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "status": status,
        })
    }
}
