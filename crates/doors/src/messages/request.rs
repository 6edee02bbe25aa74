//! Messages request → chat request: the top-level fields.
//!
//! Every field is translated, accepted because it cannot change the answer
//! (`cache_control`, `service_tier`, `inference_geo`, `speed`,
//! `diagnostics`: capacity, region and prompt-cache hints), or refused with
//! a 400 naming it. `top_k` has no chat field: it is sent as an extra chat
//! field, which the exact key covers and the chat path forwards, so it
//! reaches the upstream or is refused there; it never answers unseen.

use super::{content, Echo};
use crate::{invalid, Translated};
use deja_api::ApiError;
use serde_json::{json, Map, Value};

/// What the body is read for: `count_tokens` takes no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Create,
    Count,
}

/// A Messages request → the chat request it means.
pub fn translate(body: &[u8]) -> Result<Translated<Echo>, ApiError> {
    let (chat, stream, echo) = read(body, Purpose::Create)?;
    Ok(Translated { chat, stream, echo })
}

/// `POST /v1/messages/count_tokens`: the prompt's size as the ladder
/// estimates it (about four characters a token), no upstream call.
pub fn count_tokens(body: &[u8]) -> Result<Value, ApiError> {
    let (_, _, echo) = read(body, Purpose::Count)?;
    Ok(json!({"input_tokens": echo.input_tokens}))
}

fn read(body: &[u8], purpose: Purpose) -> Result<(Value, bool, Echo), ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid request body: {e}"), None))?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::invalid_request("the request body must be a JSON object", None));
    };
    let mut out = Map::new();
    let mut messages = None;
    let mut system = None;
    let mut stream = false;
    let mut tools: Option<Vec<Value>> = None;
    let mut tool_choice = None;
    let mut stop_sequences = Vec::new();
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => match value.as_str().filter(|m| !m.trim().is_empty()) {
                Some(m) => {
                    out.insert("model".into(), json!(m));
                }
                None => return Err(invalid("`model` must be a non-empty string", "model")),
            },
            "messages" => match value.as_array() {
                Some(list) if !list.is_empty() => messages = Some(content::messages(list)?),
                _ => return Err(invalid("`messages` must be a non-empty array of messages", "messages")),
            },
            "system" => system = content::system(value)?,
            "max_tokens" if purpose == Purpose::Count => {}
            "max_tokens" => match value.as_u64().filter(|n| *n > 0) {
                Some(n) => {
                    out.insert("max_tokens".into(), json!(n));
                }
                None => return Err(invalid("`max_tokens` must be a positive integer", "max_tokens")),
            },
            "stop_sequences" => match value.as_array() {
                Some(list) if list.iter().all(Value::is_string) => {
                    stop_sequences = list.iter().filter_map(Value::as_str).map(str::to_string).collect();
                }
                _ => return Err(invalid("`stop_sequences` must be an array of strings", "stop_sequences")),
            },
            "temperature" | "top_p" => match value.as_f64() {
                Some(v) if (0.0..=1.0).contains(&v) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => return Err(invalid(format!("`{key}` must be a number between 0 and 1"), key)),
            },
            "top_k" => match value.as_u64() {
                Some(_) => {
                    out.insert("top_k".into(), value.clone());
                }
                None => return Err(invalid("`top_k` must be a non-negative integer", "top_k")),
            },
            "metadata" => metadata(value, &mut out)?,
            "stream" => match value.as_bool() {
                Some(b) => stream = b,
                None => return Err(invalid("`stream` must be a boolean", "stream")),
            },
            "tools" => tools = Some(content::tools(value)?),
            "tool_choice" => tool_choice = Some(value),
            "thinking" => match value.get("type").and_then(Value::as_str) {
                Some("disabled") => {}
                _ => {
                    return Err(invalid(
                        "`thinking` is not supported: Deja's Messages door answers through chat completions, \
                         which carry no thinking blocks; leave it out or set {\"type\": \"disabled\"}",
                        "thinking",
                    ))
                }
            },
            "cache_control" | "service_tier" | "inference_geo" | "speed" | "diagnostics" => {}
            "container" | "context_management" | "mcp_servers" | "output_config" | "output_format" => {
                return Err(invalid(
                    format!("`{key}` is not supported by Deja's Messages door: it has no chat completion equivalent"),
                    key,
                ))
            }
            _ => return Err(invalid(format!("`{key}` is not a Messages API field Deja knows"), key)),
        }
    }
    if !out.contains_key("model") {
        return Err(invalid("`model` is required", "model"));
    }
    let Some(mut messages) = messages else { return Err(invalid("`messages` is required", "messages")) };
    if purpose == Purpose::Create && !out.contains_key("max_tokens") {
        return Err(invalid("`max_tokens` is required", "max_tokens"));
    }
    if let Some(system) = system {
        messages.insert(0, system);
    }
    let tools = tools.filter(|t| !t.is_empty());
    if let Some(choice) = tool_choice {
        choose(choice, tools.is_some(), &mut out)?;
    }
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    if !stop_sequences.is_empty() {
        out.insert("stop".into(), json!(stop_sequences));
    }
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let echo = Echo {
        model: out.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
        stop_sequences,
        input_tokens: estimate(&messages, out.get("tools")),
    };
    out.insert("messages".into(), Value::Array(messages));
    Ok((Value::Object(out), stream, echo))
}

/// `user_id` becomes chat's `user`; `task` is Deja's routing tag and goes
/// where chat keeps it. Anthropic accepts no other key, nor does Deja.
fn metadata(value: &Value, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(fields) = value.as_object() else { return Err(invalid("`metadata` must be an object", "metadata")) };
    for (key, v) in fields {
        let path = format!("metadata.{key}");
        match (key.as_str(), v) {
            (_, Value::Null) => {}
            ("user_id", Value::String(s)) => {
                out.insert("user".into(), json!(s));
            }
            ("task", Value::String(s)) => {
                out.insert("metadata".into(), json!({"task": s}));
            }
            ("user_id" | "task", _) => return Err(invalid(format!("`{path}` must be a string"), &path)),
            _ => return Err(invalid(format!("`{path}` is not a metadata field: use `user_id`"), &path)),
        }
    }
    Ok(())
}

/// `tool_choice` → chat's. Without tools, `auto` and `none` mean nothing
/// and are left out (chat refuses a choice without tools); `any` and
/// `tool` cannot be honoured.
fn choose(choice: &Value, has_tools: bool, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let kind = choice.get("type").and_then(Value::as_str);
    let chat = match kind {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => match choice.get("name").and_then(Value::as_str) {
            Some(name) => json!({"type": "function", "function": {"name": name}}),
            None => return Err(invalid("`tool_choice.name` must name a tool", "tool_choice.name")),
        },
        _ => {
            return Err(invalid("`tool_choice.type` must be one of `auto`, `any`, `tool`, `none`", "tool_choice.type"))
        }
    };
    if !has_tools {
        return match kind {
            Some("auto" | "none") => Ok(()),
            _ => Err(invalid("`tool_choice` asks for a tool but the request has no `tools`", "tool_choice")),
        };
    }
    let serial = choice.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true);
    if serial && kind != Some("none") {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    out.insert("tool_choice".into(), chat);
    Ok(())
}

/// The prompt's size in tokens, estimated as the ladder does: message text
/// (8 characters a message for its framing), tool call arguments and the
/// tool definitions.
fn estimate(messages: &[Value], tools: Option<&Value>) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| {
            let text = deja_api::chat::message_text(m).map_or(0, |t| t.len());
            let calls = m.get("tool_calls").map_or(0, |c| c.to_string().len());
            text + calls + 8
        })
        .sum();
    let tools = tools.map_or(0, |t| t.to_string().len());
    deja_router::estimate_tokens(chars + tools).max(1)
}
