//! OpenAI chat request → Anthropic Messages request.
//!
//! Every field is either translated or refused with a 400 naming it; none is
//! dropped unless it cannot change the answer (`stream_options`: an Anthropic
//! stream always reports usage; `metadata`: Deja's own routing tag and
//! OpenAI's stored-completion labels). A parameter set to its no-op value
//! (`n: 1`, `logprobs: false`, a zero penalty, `response_format` text, ...)
//! is accepted, since SDKs send those.

use deja_api::ApiError;
use serde_json::{json, Map, Value};

fn refuse(param: &str, why: impl std::fmt::Display) -> ApiError {
    crate::openai_request::refuse("an Anthropic model", param, why)
}

/// Translates the OpenAI request `body` for the Anthropic model `model`.
/// `default_max_tokens` is used when the client set no `max_tokens`.
pub fn to_messages_request(body: &Value, model: &str, default_max_tokens: u64) -> Result<Value, ApiError> {
    let Some(fields) = body.as_object() else { return Err(refuse("body", "it is not a JSON object")) };
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut tool_choice = None;
    let mut parallel = true;
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" | "stream_options" | "metadata" => {}
            "stream" => {
                if value.as_bool() == Some(true) {
                    out.insert("stream".into(), json!(true));
                }
            }
            "user" => {
                out.insert("metadata".into(), json!({"user_id": value}));
            }
            "temperature" => match value.as_f64() {
                Some(t) if (0.0..=1.0).contains(&t) => {
                    out.insert("temperature".into(), value.clone());
                }
                _ => return Err(refuse(key, "Anthropic accepts a temperature between 0 and 1")),
            },
            "top_p" => {
                out.insert("top_p".into(), value.clone());
            }
            // Not an OpenAI field, but one Anthropic's own clients send (the Messages door passes it on).
            "top_k" => {
                out.insert("top_k".into(), json!(positive(key, value)?));
            }
            "max_tokens" => max_tokens = Some(positive(key, value)?),
            "max_completion_tokens" => max_completion_tokens = Some(positive(key, value)?),
            "stop" => {
                let stops = match value {
                    Value::String(s) => vec![json!(s)],
                    Value::Array(a) if a.iter().all(Value::is_string) => a.clone(),
                    _ => return Err(refuse(key, "expected a string or an array of strings")),
                };
                if !stops.is_empty() {
                    out.insert("stop_sequences".into(), Value::Array(stops));
                }
            }
            "tools" => {
                let tools = tools(value)?;
                if !tools.is_empty() {
                    out.insert("tools".into(), Value::Array(tools));
                }
            }
            "tool_choice" => tool_choice = Some(choice(value)?),
            "parallel_tool_calls" => parallel = value.as_bool() != Some(false),
            "response_format" if value.get("type").and_then(Value::as_str) == Some("text") => {}
            "response_format" => {
                return Err(refuse(key, "Anthropic has no JSON mode; describe the format in the prompt or use a tool"))
            }
            "n" if value.as_u64() == Some(1) => {}
            "logprobs" if value.as_bool() == Some(false) => {}
            "presence_penalty" | "frequency_penalty" if value.as_f64() == Some(0.0) => {}
            "logit_bias" if value.as_object().is_some_and(Map::is_empty) => {}
            "modalities" if value == &json!(["text"]) => {}
            "n" => return Err(refuse(key, "Anthropic returns one choice per request")),
            "logprobs" | "top_logprobs" => return Err(refuse(key, "Anthropic returns no log probabilities")),
            _ => return Err(refuse(key, "Anthropic's Messages API has no such parameter")),
        }
    }
    let max = max_completion_tokens.or(max_tokens).unwrap_or(default_max_tokens);
    out.insert("max_tokens".into(), json!(max));
    if let Some(mut choice) = tool_choice {
        if !parallel && choice.get("type").and_then(Value::as_str) != Some("none") {
            if let Some(c) = choice.as_object_mut() {
                c.insert("disable_parallel_tool_use".into(), json!(true));
            }
        }
        out.insert("tool_choice".into(), choice);
    } else if !parallel && out.contains_key("tools") {
        out.insert("tool_choice".into(), json!({"type": "auto", "disable_parallel_tool_use": true}));
    }
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (system, turns) = conversation(messages)?;
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(turns));
    Ok(Value::Object(out))
}

fn positive(key: &str, value: &Value) -> Result<u64, ApiError> {
    value.as_u64().filter(|n| *n > 0).ok_or_else(|| refuse(key, "expected a positive integer"))
}

/// `tools[].function` → `{name, description, input_schema}`.
fn tools(value: &Value) -> Result<Vec<Value>, ApiError> {
    let Some(list) = value.as_array() else { return Err(refuse("tools", "expected an array")) };
    list.iter()
        .map(|tool| {
            let function =
                tool.get("function").filter(|_| tool.get("type").and_then(Value::as_str) == Some("function"));
            let Some(function) = function else {
                return Err(refuse("tools", "only `function` tools can be translated"));
            };
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                return Err(refuse("tools", "every function needs a string `name`"));
            };
            if function.get("strict").and_then(Value::as_bool) == Some(true) {
                return Err(refuse("tools", "Anthropic does not enforce `strict` schemas"));
            }
            let schema =
                function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut out = Map::new();
            out.insert("name".into(), json!(name));
            if let Some(d) = function.get("description").filter(|d| d.is_string()) {
                out.insert("description".into(), d.clone());
            }
            out.insert("input_schema".into(), schema);
            Ok(Value::Object(out))
        })
        .collect()
}

/// `auto` / `none` / `required` / `{"type": "function", "function": {"name"}}`.
fn choice(value: &Value) -> Result<Value, ApiError> {
    match value {
        Value::String(s) if s == "auto" => Ok(json!({"type": "auto"})),
        Value::String(s) if s == "none" => Ok(json!({"type": "none"})),
        Value::String(s) if s == "required" => Ok(json!({"type": "any"})),
        _ => match value.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Ok(json!({"type": "tool", "name": name})),
            None => Err(refuse("tool_choice", "expected auto, none, required or a named function")),
        },
    }
}

/// The `system` prompt (every system and developer message, in order) and
/// the user/assistant turns, consecutive turns of one role merged.
fn conversation(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), ApiError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = message.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(text_only(content, i)?);
                continue;
            }
            "user" => ("user", user_blocks(content, i)?),
            "assistant" => ("assistant", assistant_blocks(message, i)?),
            "tool" => ("user", vec![tool_result(message, i)?]),
            other => {
                return Err(refuse(
                    "messages",
                    format!("messages[{i}] has the role `{other}`, which has no Anthropic equivalent"),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, acc)) if last == role => acc.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(Value::String),
        _ => Some(Value::Array(system.into_iter().map(|t| json!({"type": "text", "text": t})).collect())),
    };
    let turns = turns
        .into_iter()
        .map(|(role, blocks)| {
            // A turn of one text block is sent as a plain string, as Anthropic's examples do.
            let content = match blocks.as_slice() {
                [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
                    only.get("text").cloned().unwrap_or_default()
                }
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, turns))
}

/// A system message's text: a string or text parts.
fn text_only(content: &Value, i: usize) -> Result<String, ApiError> {
    crate::openai_request::system_text("an Anthropic model", content, i)
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn user_blocks(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![text_block(s)]),
        Value::Array(parts) => parts.iter().map(|p| user_part(p, i)).collect(),
        _ => Err(refuse("messages", format!("messages[{i}]: expected a string or content parts"))),
    }
}

/// A text part, or an image: a `data:` URL becomes a base64 source, any other URL a url source.
fn user_part(part: &Value, i: usize) -> Result<Value, ApiError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text").and_then(Value::as_str) {
            Some(t) => Ok(text_block(t)),
            None => Err(refuse("messages", format!("messages[{i}]: a text part needs a string `text`"))),
        },
        Some("image_url") => {
            let url = part.get("image_url").and_then(|u| u.get("url").or(Some(u))).and_then(Value::as_str);
            let Some(url) = url else {
                return Err(refuse("messages", format!("messages[{i}]: an image part needs a `url`")));
            };
            match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((media_type, data)) => {
                    Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
                }
                None if url.starts_with("data:") => {
                    Err(refuse("messages", format!("messages[{i}]: only base64 data URLs can be sent")))
                }
                None => Ok(json!({"type": "image", "source": {"type": "url", "url": url}})),
            }
        }
        other => Err(refuse(
            "messages",
            format!("messages[{i}]: content parts of type `{}` cannot be translated", other.unwrap_or("?")),
        )),
    }
}

/// Text (or refusal) parts, then each tool call as a `tool_use` block.
fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let mut blocks = Vec::new();
    match message.get("content").unwrap_or(&Value::Null) {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => blocks.push(text_block(s)),
        Value::Array(parts) => {
            for p in parts {
                let text = p.get("text").or_else(|| p.get("refusal")).and_then(Value::as_str);
                match text {
                    Some(t) if !t.is_empty() => blocks.push(text_block(t)),
                    Some(_) => {}
                    None => return Err(refuse("messages", format!("messages[{i}]: an assistant part must be text"))),
                }
            }
        }
        _ => return Err(refuse("messages", format!("messages[{i}]: expected text content"))),
    }
    if message.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(refuse("messages", format!("messages[{i}]: legacy `function_call` cannot be translated")));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for call in calls {
        let id = call.get("id").and_then(Value::as_str);
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let args = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("{}");
        let (Some(id), Some(name)) = (id, name) else {
            return Err(refuse("messages", format!("messages[{i}]: a tool call needs an `id` and a function `name`")));
        };
        let input = match serde_json::from_str::<Value>(if args.trim().is_empty() { "{}" } else { args }) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(refuse(
                    "messages",
                    format!("messages[{i}]: the arguments of tool call `{id}` are not a JSON object"),
                ))
            }
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

/// A `tool` message → a `tool_result` block (sent in a user turn).
fn tool_result(message: &Value, i: usize) -> Result<Value, ApiError> {
    let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
        return Err(refuse("messages", format!("messages[{i}]: a tool message needs a `tool_call_id`")));
    };
    let content = match message.get("content").unwrap_or(&Value::Null) {
        Value::String(s) => json!(s),
        Value::Null => json!(""),
        other => Value::Array(user_blocks(other, i)?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}
