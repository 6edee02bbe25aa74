//! Assembles a streamed answer (`chat.completion.chunk` events) into the
//! `chat.completion` it stands for, so a streamed miss can be cached and
//! replayed later either way.

use crate::chat::{ChatCompletion, Choice, Usage};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Default)]
struct ToolCallAcc {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u64, ToolCallAcc>,
    finish_reason: Option<String>,
}

#[derive(Default)]
pub struct StreamAssembler {
    id: Option<String>,
    created: u64,
    model: Option<String>,
    system_fingerprint: Option<Value>,
    choices: BTreeMap<u32, ChoiceAcc>,
    usage: Option<Usage>,
}

impl StreamAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one parsed chunk in. Returns false if it is not a chunk at all.
    pub fn push(&mut self, chunk: &Value) -> bool {
        let Some(obj) = chunk.as_object() else { return false };
        if self.id.is_none() {
            self.id = obj.get("id").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(c) = obj.get("created").and_then(Value::as_u64) {
            self.created = c;
        }
        if self.model.is_none() {
            self.model = obj.get("model").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(fp) = obj.get("system_fingerprint").filter(|v| !v.is_null()) {
            self.system_fingerprint = Some(fp.clone());
        }
        if let Some(u) = obj.get("usage").filter(|v| !v.is_null()) {
            self.usage = serde_json::from_value(u.clone()).ok();
        }
        let Some(choices) = obj.get("choices").and_then(Value::as_array) else {
            return obj.contains_key("usage");
        };
        for c in choices {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
            let acc = self.choices.entry(index).or_default();
            if let Some(fr) = c.get("finish_reason").and_then(Value::as_str) {
                acc.finish_reason = Some(fr.to_string());
            }
            let Some(delta) = c.get("delta") else { continue };
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                acc.role = Some(r.to_string());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                acc.content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = delta.get("refusal").and_then(Value::as_str) {
                acc.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for tc in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let ti = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                let t = acc.tool_calls.entry(ti).or_default();
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    t.id = Some(id.to_string());
                }
                if let Some(k) = tc.get("type").and_then(Value::as_str) {
                    t.kind = Some(k.to_string());
                }
                if let Some(f) = tc.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        t.name.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        t.arguments.push_str(a);
                    }
                }
            }
        }
        true
    }

    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The assembled completion; `None` if no choice was seen.
    pub fn finish(self) -> Option<ChatCompletion> {
        if self.choices.is_empty() {
            return None;
        }
        let choices = self
            .choices
            .into_iter()
            .map(|(index, acc)| {
                let mut message = Map::new();
                message.insert("role".into(), json!(acc.role.unwrap_or_else(|| "assistant".into())));
                message.insert("content".into(), acc.content.map_or(Value::Null, Value::String));
                if let Some(r) = acc.refusal {
                    message.insert("refusal".into(), Value::String(r));
                }
                if !acc.tool_calls.is_empty() {
                    let calls: Vec<Value> = acc
                        .tool_calls
                        .into_values()
                        .map(|t| {
                            json!({
                                "id": t.id,
                                "type": t.kind.unwrap_or_else(|| "function".into()),
                                "function": {"name": t.name, "arguments": t.arguments},
                            })
                        })
                        .collect();
                    message.insert("tool_calls".into(), Value::Array(calls));
                }
                Choice { index, message: Value::Object(message), finish_reason: acc.finish_reason, logprobs: None }
            })
            .collect();
        let mut extra = Map::new();
        if let Some(fp) = self.system_fingerprint {
            extra.insert("system_fingerprint".into(), fp);
        }
        Some(ChatCompletion {
            id: self.id.unwrap_or_else(|| "chatcmpl-deja".into()),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.unwrap_or_default(),
            choices,
            usage: self.usage,
            extra,
        })
    }
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
