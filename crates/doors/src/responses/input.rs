//! `instructions` and `input` → chat `messages`.
//!
//! A string is one user message. A list is read item by item: messages keep
//! their role; `function_call` items become the `tool_calls` of an assistant
//! message (consecutive calls, and calls right after the assistant's text,
//! share one message, as one chat turn holds them) and `function_call_output`
//! items `tool` messages. Reasoning items carry OpenAI models' hidden state,
//! which chat has no place for: they are skipped. Anything that needs stored
//! state or a built-in tool is refused, naming the item.

use crate::invalid;
use deja_api::ApiError;
use serde_json::{json, Map, Value};

pub(super) fn messages(instructions: Option<&str>, input: &Value) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    if let Some(text) = instructions {
        out.push(json!({"role": "system", "content": text}));
    }
    let items = match input {
        Value::String(text) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(out);
        }
        Value::Array(items) => items,
        _ => return Err(invalid("`input` must be a string or an array of items", "input")),
    };
    let before = out.len();
    for (i, item) in items.iter().enumerate() {
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if item.get("role").is_some() => "message",
            None => return Err(invalid(format!("input[{i}] needs a string `type`"), &format!("input[{i}].type"))),
        };
        match kind {
            "message" => out.push(message(i, item)?),
            "function_call" => add_call(&mut out, call(i, item)?),
            "function_call_output" => out.push(output(i, item)?),
            "reasoning" => {}
            "item_reference" => {
                return Err(invalid(
                    format!(
                        "input[{i}].type `item_reference` is not supported: Deja keeps no items on the server; \
                         send the item itself"
                    ),
                    &format!("input[{i}].type"),
                ))
            }
            other => {
                return Err(invalid(
                    format!(
                        "input[{i}].type `{other}` is not supported: only messages, `function_call` and \
                         `function_call_output` items are served"
                    ),
                    &format!("input[{i}].type"),
                ))
            }
        }
    }
    if out.len() == before {
        return Err(invalid("`input` must hold at least one message or function call item", "input"));
    }
    Ok(out)
}

/// A call joins the assistant message before it, if that is the last one.
fn add_call(out: &mut Vec<Value>, call: Value) {
    if let Some(last) = out.last_mut().and_then(Value::as_object_mut) {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                Some(calls) => calls.push(call),
                None => {
                    last.insert("tool_calls".into(), json!([call]));
                }
            }
            return;
        }
    }
    out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

fn string<'a>(i: usize, item: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    item.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("input[{i}].{field} must be a string"), &format!("input[{i}].{field}")))
}

fn call(i: usize, item: &Value) -> Result<Value, ApiError> {
    let id = string(i, item, "call_id")?;
    let name = string(i, item, "name")?;
    let arguments = string(i, item, "arguments")?;
    Ok(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
}

/// A tool's result: a string, or text parts (chat's tool messages carry text only).
fn output(i: usize, item: &Value) -> Result<Value, ApiError> {
    let id = string(i, item, "call_id")?;
    let content = match item.get("output") {
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(parts)) => {
            let texts = parts.iter().enumerate().map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text") => match p.get("text").and_then(Value::as_str) {
                    Some(t) => Ok(json!({"type": "text", "text": t})),
                    None => Err(at_error(format!("input[{i}].output[{j}].text"), "a text part needs a string `text`")),
                },
                _ => Err(at_error(format!("input[{i}].output[{j}].type"), "a function call's output holds text only")),
            });
            Value::Array(texts.collect::<Result<_, _>>()?)
        }
        _ => {
            return Err(invalid(format!("input[{i}].output must be a string or parts"), &format!("input[{i}].output")))
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

fn message(i: usize, item: &Value) -> Result<Value, ApiError> {
    let role = item.get("role").and_then(Value::as_str);
    let Some(role) = role.filter(|r| matches!(*r, "user" | "assistant" | "system" | "developer")) else {
        return Err(invalid(
            format!("input[{i}].role must be `user`, `assistant`, `system` or `developer`"),
            &format!("input[{i}].role"),
        ));
    };
    let parts = match item.get("content") {
        Some(Value::String(s)) => return Ok(json!({"role": role, "content": s})),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                format!("input[{i}].content must be a string or an array of parts"),
                &format!("input[{i}].content"),
            ))
        }
    };
    if role == "assistant" {
        return assistant(i, parts);
    }
    let parts = parts.iter().enumerate().map(|(j, p)| part(i, j, p, role)).collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"role": role, "content": parts}))
}

/// An earlier answer: its text parts joined into `content`, its refusal into `refusal`.
fn assistant(i: usize, parts: &[Value]) -> Result<Value, ApiError> {
    let mut text: Option<String> = None;
    let mut refusal: Option<String> = None;
    for (j, p) in parts.iter().enumerate() {
        let (slot, field) = match p.get("type").and_then(Value::as_str) {
            Some("output_text" | "input_text") => (&mut text, "text"),
            Some("refusal") => (&mut refusal, "refusal"),
            _ => return Err(part_error(i, j, "type", "an assistant message holds `output_text` and `refusal` parts")),
        };
        let Some(piece) = p.get(field).and_then(Value::as_str) else {
            return Err(part_error(i, j, field, &format!("the part needs a string `{field}`")));
        };
        slot.get_or_insert_with(String::new).push_str(piece);
    }
    let mut out = Map::new();
    out.insert("role".into(), json!("assistant"));
    // Chat wants content beside no refusal; a call that follows joins this message.
    let content = match (text, &refusal) {
        (Some(t), _) => Value::String(t),
        (None, Some(_)) => Value::Null,
        (None, None) => json!(""),
    };
    out.insert("content".into(), content);
    if let Some(r) = refusal {
        out.insert("refusal".into(), json!(r));
    }
    Ok(Value::Object(out))
}

/// One part of a user, system or developer message → chat's part.
fn part(i: usize, j: usize, p: &Value, role: &str) -> Result<Value, ApiError> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
    let text_only = matches!(role, "system" | "developer");
    match kind {
        "input_text" => match p.get("text").and_then(Value::as_str) {
            Some(t) => Ok(json!({"type": "text", "text": t})),
            None => Err(part_error(i, j, "text", "an `input_text` part needs a string `text`")),
        },
        _ if text_only => Err(part_error(i, j, "type", &format!("a {role} message holds `input_text` parts only"))),
        "input_image" => {
            if p.get("file_id").is_some_and(|f| !f.is_null()) {
                return Err(part_error(
                    i,
                    j,
                    "file_id",
                    "images by `file_id` live in OpenAI's file store; send `image_url` (a URL or a data: URL)",
                ));
            }
            let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                return Err(part_error(i, j, "image_url", "an `input_image` part needs an `image_url`"));
            };
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(detail) = p.get("detail").filter(|d| !d.is_null()) {
                image.insert("detail".into(), detail.clone());
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" => {
            for field in ["file_id", "file_url"] {
                if p.get(field).is_some_and(|f| !f.is_null()) {
                    return Err(part_error(i, j, field, "files are sent inline only: use `file_data`"));
                }
            }
            let Some(data) = p.get("file_data").and_then(Value::as_str) else {
                return Err(part_error(i, j, "file_data", "an `input_file` part needs `file_data`"));
            };
            let mut file = Map::new();
            file.insert("file_data".into(), json!(data));
            if let Some(name) = p.get("filename").filter(|n| !n.is_null()) {
                file.insert("filename".into(), name.clone());
            }
            Ok(json!({"type": "file", "file": file}))
        }
        "input_audio" => match p.get("input_audio").filter(|a| a.is_object()) {
            Some(audio) => Ok(json!({"type": "input_audio", "input_audio": audio})),
            None => Err(part_error(i, j, "input_audio", "an `input_audio` part needs an `input_audio` object")),
        },
        _ => Err(part_error(i, j, "type", "parts are `input_text`, `input_image`, `input_file` or `input_audio`")),
    }
}

fn part_error(i: usize, j: usize, field: &str, why: &str) -> ApiError {
    at_error(format!("input[{i}].content[{j}].{field}"), why)
}

fn at_error(at: String, why: &str) -> ApiError {
    invalid(format!("{at}: {why}"), &at)
}
