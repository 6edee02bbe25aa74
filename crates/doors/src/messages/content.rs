//! Messages content → chat messages: the system prompt, the turns and
//! their blocks, and the tool definitions.
//!
//! A turn whose content is one text block becomes a string, as chat
//! clients send it, so the same question asked through either door has the
//! same exact key. A 400 names the block's path (`messages[1].content[0]`).

use crate::invalid;
use deja_api::ApiError;
use serde_json::{json, Value};

/// The system prompt (a string or text blocks; `cache_control` is a
/// prompt-cache hint and left out) → one leading system message.
pub(super) fn system(value: &Value) -> Result<Option<Value>, ApiError> {
    let texts = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| text_of(b, &format!("system[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(invalid("`system` must be a string or an array of text blocks", "system")),
    };
    let texts: Vec<String> = texts.into_iter().filter(|t| !t.is_empty()).collect();
    Ok(joined(texts).map(|content| json!({"role": "system", "content": content})))
}

/// The turns, in order. A user turn's `tool_result` blocks become `tool`
/// messages, sent before the rest of the turn: chat wants them right after
/// the assistant's calls, as Anthropic wants them first in the turn.
pub(super) fn messages(list: &[Value]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, message) in list.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str);
        let content = message.get("content").filter(|c| !c.is_null());
        let path = format!("messages[{i}]");
        let Some(content) = content else {
            return Err(invalid(format!("`{path}.content` is required"), &format!("{path}.content")));
        };
        match (role, content) {
            (Some(role @ ("user" | "assistant")), Value::String(s)) => {
                out.push(json!({"role": role, "content": s}));
            }
            (Some("user" | "assistant"), Value::Array(blocks)) if blocks.is_empty() => {
                return Err(invalid(format!("`{path}.content` must not be empty"), &format!("{path}.content")));
            }
            (Some("user"), Value::Array(blocks)) => user(blocks, &path, &mut out)?,
            (Some("assistant"), Value::Array(blocks)) => out.push(assistant(blocks, &path)?),
            (Some("user" | "assistant"), _) => {
                return Err(invalid(
                    format!("`{path}.content` must be a string or an array of content blocks"),
                    &format!("{path}.content"),
                ))
            }
            _ => {
                return Err(invalid(
                    format!("`{path}.role` must be `user` or `assistant` (the system prompt goes in `system`)"),
                    &format!("{path}.role"),
                ))
            }
        }
    }
    Ok(out)
}

fn user(blocks: &[Value], path: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{path}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": text_of(block, &path)?})),
            Some("image") => parts.push(image(block, &path)?),
            Some("tool_result") => out.push(tool_result(block, &path)?),
            other => return Err(unsupported(other, &path, "text, image and tool_result")),
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
                only.get("text").cloned().unwrap_or_default()
            }
            _ => Value::Array(parts),
        };
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// Text blocks become the content, `tool_use` blocks the `tool_calls`
/// (their input JSON-encoded, as chat carries arguments).
fn assistant(blocks: &[Value], path: &str) -> Result<Value, ApiError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let path = format!("{path}.content[{j}]");
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(text_of(block, &path)?),
            Some("tool_use") => {
                let field = |f: &str| block.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
                let (Some(id), Some(name)) = (field("id"), field("name")) else {
                    return Err(invalid(format!("`{path}`: a tool_use block needs an `id` and a `name`"), &path));
                };
                let input = match block.get("input") {
                    None | Some(Value::Null) => json!({}),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(_) => {
                        return Err(invalid(format!("`{path}.input` must be an object"), &format!("{path}.input")))
                    }
                };
                calls.push(
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}),
                );
            }
            other => return Err(unsupported(other, &path, "text and tool_use")),
        }
    }
    let content = match joined(texts) {
        Some(c) => c,
        None if calls.is_empty() => json!(""),
        None => Value::Null,
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// `{source: {type: base64, media_type, data}}` → a data URL;
/// `{source: {type: url, url}}` → that URL.
fn image(block: &Value, path: &str) -> Result<Value, ApiError> {
    let source = block.get("source");
    let field = |f: &str| source.and_then(|s| s.get(f)).and_then(Value::as_str);
    let url = match field("type") {
        Some("base64") => match (field("media_type"), field("data")) {
            (Some(media), Some(data)) => format!("data:{media};base64,{data}"),
            _ => {
                let p = format!("{path}.source");
                return Err(invalid(format!("`{p}`: a base64 image needs `media_type` and `data`"), &p));
            }
        },
        Some("url") => match field("url") {
            Some(url) => url.to_string(),
            None => return Err(invalid(format!("`{path}.source.url` is required"), &format!("{path}.source.url"))),
        },
        other => {
            let p = format!("{path}.source.type");
            let what = other.map_or("no type".to_string(), |t| format!("`{t}`"));
            return Err(invalid(format!("`{p}`: image sources of {what} are not supported; use base64 or url"), &p));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` block → a `tool` message. Its content is a string or
/// text blocks; `is_error` is said in the text, chat having no flag for it.
fn tool_result(block: &Value, path: &str) -> Result<Value, ApiError> {
    let Some(id) = block.get("tool_use_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        let p = format!("{path}.tool_use_id");
        return Err(invalid(format!("`{p}` is required"), &p));
    };
    let mut texts = match block.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let p = format!("{path}.content[{k}]");
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => text_of(b, &p),
                    other => Err(unsupported(other, &p, "text in a tool_result")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            let p = format!("{path}.content");
            return Err(invalid(format!("`{p}` must be a string or an array of text blocks"), &p));
        }
    };
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        match texts.first_mut() {
            Some(first) => *first = format!("Error: {first}"),
            None => texts.push("Error".to_string()),
        }
    }
    let content = joined(texts).unwrap_or_else(|| json!(""));
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// Custom tools → chat function tools. Server tools (a `type` such as
/// `web_search_20250305` or `bash_20250124`) run on Anthropic's side and
/// have no chat equivalent.
pub(super) fn tools(value: &Value) -> Result<Vec<Value>, ApiError> {
    let Some(list) = value.as_array() else { return Err(invalid("`tools` must be an array", "tools")) };
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let path = format!("tools[{i}]");
            match tool.get("type") {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) if t == "custom" => {}
                Some(t) => {
                    let p = format!("{path}.type");
                    return Err(invalid(
                        format!(
                            "`{p}` is {t}: server tools run on Anthropic's side and Deja cannot translate them; \
                             only custom tools ({{name, description, input_schema}}) are supported"
                        ),
                        &p,
                    ));
                }
            }
            let Some(name) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
                return Err(invalid(format!("`{path}.name` is required"), &format!("{path}.name")));
            };
            let Some(schema) = tool.get("input_schema").filter(|s| s.is_object()) else {
                let p = format!("{path}.input_schema");
                return Err(invalid(format!("`{p}` must be a JSON schema object"), &p));
            };
            let mut function = json!({"name": name});
            if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
                function["description"] = d.clone();
            }
            function["parameters"] = schema.clone();
            if tool.get("strict").and_then(Value::as_bool) == Some(true) {
                function["strict"] = json!(true);
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

/// A text block's `text` (its `cache_control` and `citations` do not change the answer).
fn text_of(block: &Value, path: &str) -> Result<String, ApiError> {
    if block.get("type").and_then(Value::as_str) != Some("text") {
        return Err(unsupported(block.get("type").and_then(Value::as_str), path, "text"));
    }
    match block.get("text").and_then(Value::as_str) {
        Some(t) => Ok(t.to_string()),
        None => Err(invalid(format!("`{path}.text` must be a string"), &format!("{path}.text"))),
    }
}

/// One text → a string, several → text parts, none → `None`.
fn joined(mut texts: Vec<String>) -> Option<Value> {
    match texts.len() {
        0 => None,
        1 => texts.pop().map(Value::String),
        _ => Some(Value::Array(texts.into_iter().map(|t| json!({"type": "text", "text": t})).collect())),
    }
}

fn unsupported(kind: Option<&str>, path: &str, accepted: &str) -> ApiError {
    let what = kind.map_or("a block with no `type`".to_string(), |k| format!("a `{k}` block"));
    invalid(
        format!(
            "`{path}` is {what}, which Deja's Messages door cannot translate to chat; it accepts {accepted} blocks"
        ),
        path,
    )
}
