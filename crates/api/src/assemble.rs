//! Assembles a streamed answer (`chat.completion.chunk` events) into the
//! `chat.completion` it stands for, so a streamed miss can be cached and
//! replayed later either way.

use crate::chat::{ChatCompletion, Choice, Usage};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Text built from string fragments. A fragment of any other type is kept
/// as it came, so the assembled answer shows the fault and is not cached.
#[derive(Default)]
enum Text {
    #[default]
    Absent,
    Str(String),
    Odd(Value),
}

impl Text {
    fn push(&mut self, fragment: Option<&Value>) {
        match (fragment, &mut *self) {
            (None | Some(Value::Null), _) | (_, Text::Odd(_)) => {}
            (Some(Value::String(s)), Text::Str(acc)) => acc.push_str(s),
            (Some(Value::String(s)), Text::Absent) => *self = Text::Str(s.clone()),
            (Some(other), _) => *self = Text::Odd(other.clone()),
        }
    }

    fn into_value(self) -> Option<Value> {
        match self {
            Text::Absent => None,
            Text::Str(s) => Some(Value::String(s)),
            Text::Odd(v) => Some(v),
        }
    }
}

/// A value sent whole, once (an id, a type): the last one that is not null.
fn set(slot: &mut Option<Value>, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        *slot = Some(v.clone());
    }
}

#[derive(Default)]
struct ToolCallAcc {
    id: Option<Value>,
    kind: Option<Value>,
    name: Text,
    arguments: Text,
}

#[derive(Default)]
struct FunctionAcc {
    name: Text,
    arguments: Text,
}

impl FunctionAcc {
    fn push(&mut self, f: &Value) {
        self.name.push(f.get("name"));
        self.arguments.push(f.get("arguments"));
    }

    /// A name never sent is null; arguments never sent are empty.
    fn into_value(self) -> Value {
        json!({
            "name": self.name.into_value(),
            "arguments": self.arguments.into_value().unwrap_or_else(|| json!("")),
        })
    }
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: Text,
    refusal: Text,
    tool_calls: BTreeMap<u64, ToolCallAcc>,
    /// `tool_calls` that came as something other than an array.
    odd_tool_calls: Option<Value>,
    function_call: Option<FunctionAcc>,
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
            acc.content.push(delta.get("content"));
            acc.refusal.push(delta.get("refusal"));
            if let Some(f) = delta.get("function_call").filter(|f| !f.is_null()) {
                acc.function_call.get_or_insert_with(FunctionAcc::default).push(f);
            }
            match delta.get("tool_calls") {
                None | Some(Value::Null) => {}
                Some(Value::Array(calls)) => {
                    for tc in calls {
                        let ti = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let t = acc.tool_calls.entry(ti).or_default();
                        set(&mut t.id, tc.get("id"));
                        set(&mut t.kind, tc.get("type"));
                        match tc.get("function") {
                            Some(f) if f.is_object() => {
                                t.name.push(f.get("name"));
                                t.arguments.push(f.get("arguments"));
                            }
                            None | Some(Value::Null) => {}
                            // A function that is not an object spoils the call.
                            Some(other) => t.name.push(Some(other)),
                        }
                    }
                }
                Some(other) => acc.odd_tool_calls = Some(other.clone()),
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
                message.insert("content".into(), acc.content.into_value().unwrap_or(Value::Null));
                if let Some(r) = acc.refusal.into_value() {
                    message.insert("refusal".into(), r);
                }
                if let Some(f) = acc.function_call {
                    message.insert("function_call".into(), f.into_value());
                }
                if let Some(odd) = acc.odd_tool_calls {
                    message.insert("tool_calls".into(), odd);
                } else if !acc.tool_calls.is_empty() {
                    let calls: Vec<Value> = acc
                        .tool_calls
                        .into_values()
                        .map(|t| {
                            let function = FunctionAcc { name: t.name, arguments: t.arguments };
                            json!({
                                "id": t.id,
                                "type": t.kind.unwrap_or_else(|| json!("function")),
                                "function": function.into_value(),
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
