//! OpenAI chat request → Gemini `GenerateContentRequest`.
//!
//! Every field is either translated or refused with a 400 naming it; none is
//! dropped unless it cannot change the answer (`stream` and
//! `stream_options`: the URL says whether Gemini streams, and a Gemini
//! stream always reports usage; `user` and `metadata`: labels). A parameter
//! set to its no-op value (`logprobs: false`, an empty `logit_bias`,
//! `response_format` text, ...) is accepted, since SDKs send those.

use deja_api::ApiError;
use serde_json::{json, Map, Value};

fn refuse(param: &str, why: impl std::fmt::Display) -> ApiError {
    crate::openai_request::refuse("a Gemini model", param, why)
}

/// The schema keywords Gemini's `Schema` (an OpenAPI subset) understands.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "propertyOrdering",
];

/// Translates the OpenAI request `body`. The model and whether to stream
/// are not in a Gemini body: see [`super::path`].
pub fn to_generate_request(body: &Value) -> Result<Value, ApiError> {
    let Some(fields) = body.as_object() else { return Err(refuse("body", "it is not a JSON object")) };
    let mut out = Map::new();
    let mut config = Map::new();
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        let mut set = |name: &str, v: Value| {
            config.insert(name.into(), v);
        };
        match key.as_str() {
            "model" | "messages" | "stream" | "stream_options" | "metadata" | "user" => {}
            "temperature" => match value.as_f64() {
                Some(t) if (0.0..=2.0).contains(&t) => set("temperature", value.clone()),
                _ => return Err(refuse(key, "Gemini accepts a temperature between 0 and 2")),
            },
            "top_p" => set("topP", value.clone()),
            // Not an OpenAI field, but one Anthropic's clients send through the Messages door.
            "top_k" => set("topK", json!(positive(key, value)?)),
            "max_tokens" => max_tokens = Some(positive(key, value)?),
            "max_completion_tokens" => max_completion_tokens = Some(positive(key, value)?),
            "stop" => {
                let stops = match value {
                    Value::String(s) => vec![json!(s)],
                    Value::Array(a) if a.iter().all(Value::is_string) => a.clone(),
                    _ => return Err(refuse(key, "expected a string or an array of strings")),
                };
                if stops.len() > 5 {
                    return Err(refuse(key, "Gemini accepts at most 5 stop sequences"));
                }
                if !stops.is_empty() {
                    set("stopSequences", Value::Array(stops));
                }
            }
            "n" => set("candidateCount", json!(positive(key, value)?)),
            "seed" => match value.as_i64() {
                Some(seed) => set("seed", json!(seed)),
                None => return Err(refuse(key, "expected an integer")),
            },
            "presence_penalty" | "frequency_penalty" => match value.as_f64() {
                Some(0.0) => {}
                Some(_) => {
                    set(if key == "presence_penalty" { "presencePenalty" } else { "frequencyPenalty" }, value.clone())
                }
                None => return Err(refuse(key, "expected a number")),
            },
            "response_format" => response_format(value, &mut config)?,
            "tools" => {
                let declarations = tools(value)?;
                if !declarations.is_empty() {
                    out.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
                }
            }
            "tool_choice" => {
                out.insert("toolConfig".into(), json!({"functionCallingConfig": choice(value)?}));
            }
            "parallel_tool_calls" if value.as_bool() == Some(true) => {}
            "parallel_tool_calls" => return Err(refuse(key, "Gemini cannot be kept to one function call per turn")),
            "logprobs" if value.as_bool() == Some(false) => {}
            "logit_bias" if value.as_object().is_some_and(Map::is_empty) => {}
            "modalities" if value == &json!(["text"]) => {}
            "logprobs" | "top_logprobs" => {
                return Err(refuse(key, "Deja does not translate Gemini's log probabilities"))
            }
            "logit_bias" => return Err(refuse(key, "Gemini has no logit bias")),
            "modalities" | "audio" => return Err(refuse(key, "Deja sends Gemini text requests only")),
            _ => return Err(refuse(key, "Gemini's generateContent has no such parameter")),
        }
    }
    if let Some(max) = max_completion_tokens.or(max_tokens) {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (system, contents) = conversation(messages)?;
    if contents.is_empty() {
        return Err(refuse("messages", "Gemini needs at least one user or assistant message"));
    }
    if !system.is_empty() {
        let parts: Vec<Value> = system.into_iter().map(|t| json!({"text": t})).collect();
        out.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    out.insert("contents".into(), Value::Array(contents));
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

fn positive(key: &str, value: &Value) -> Result<u64, ApiError> {
    value.as_u64().filter(|n| *n > 0).ok_or_else(|| refuse(key, "expected a positive integer"))
}

/// `text` passes; `json_object` asks for JSON; `json_schema` also sends the
/// schema when Gemini's schema subset can express it.
fn response_format(value: &Value, config: &mut Map<String, Value>) -> Result<(), ApiError> {
    let key = "response_format";
    match value.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            let Some(schema) = value.get("json_schema").and_then(|s| s.get("schema")) else {
                return Err(refuse(key, "a json_schema format needs a `schema`"));
            };
            let schema = simple_schema(schema)
                .map_err(|why| refuse(key, format!("Gemini's response schema cannot express it: {why}")))?;
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseSchema".into(), schema);
        }
        _ => return Err(refuse(key, "expected a type of text, json_object or json_schema")),
    }
    Ok(())
}

/// `schema` in Gemini's OpenAPI subset, or why it cannot be. A closed
/// object (`additionalProperties: false`) is what Gemini generates anyway,
/// so that keyword is dropped; `$schema` is a label.
fn simple_schema(schema: &Value) -> Result<Value, String> {
    let Some(fields) = schema.as_object() else { return Err("a schema must be an object".into()) };
    let mut out = Map::new();
    for (k, v) in fields {
        match k.as_str() {
            "$schema" => {}
            "additionalProperties" if v.as_bool() == Some(false) => {}
            "type" if !v.is_string() => return Err("`type` must be a single type".into()),
            "properties" => {
                let Some(props) = v.as_object() else { return Err("`properties` must be an object".into()) };
                let mut translated = Map::new();
                for (name, p) in props {
                    translated.insert(name.clone(), simple_schema(p)?);
                }
                out.insert(k.clone(), Value::Object(translated));
            }
            "items" => {
                out.insert(k.clone(), simple_schema(v)?);
            }
            _ if SCHEMA_KEYS.contains(&k.as_str()) => {
                out.insert(k.clone(), v.clone());
            }
            _ => return Err(format!("it uses `{k}`")),
        }
    }
    Ok(Value::Object(out))
}

/// `tools[].function` → `functionDeclarations[]`; a function without
/// parameters is declared without any (Gemini refuses an empty object schema).
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
            let mut out = Map::new();
            out.insert("name".into(), json!(name));
            if let Some(d) = function.get("description").filter(|d| d.is_string()) {
                out.insert("description".into(), d.clone());
            }
            let params = function
                .get("parameters")
                .filter(|p| p.get("properties").and_then(Value::as_object).is_some_and(|props| !props.is_empty()));
            if let Some(params) = params {
                let schema = simple_schema(params).map_err(|why| {
                    refuse("tools", format!("the parameters of `{name}` are beyond Gemini's schema subset: {why}"))
                })?;
                out.insert("parameters".into(), schema);
            }
            Ok(Value::Object(out))
        })
        .collect()
}

/// `auto` / `none` / `required` / a named function → `functionCallingConfig`.
fn choice(value: &Value) -> Result<Value, ApiError> {
    match value {
        Value::String(s) if s == "auto" => Ok(json!({"mode": "AUTO"})),
        Value::String(s) if s == "none" => Ok(json!({"mode": "NONE"})),
        Value::String(s) if s == "required" => Ok(json!({"mode": "ANY"})),
        _ => match value.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(name) => Ok(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
            None => Err(refuse("tool_choice", "expected auto, none, required or a named function")),
        },
    }
}

/// The system instruction's texts (system and developer messages, in
/// order) and the `contents`: user turns (tool results included) and model
/// turns, consecutive turns of one role merged.
fn conversation(messages: &[Value]) -> Result<(Vec<String>, Vec<Value>), ApiError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = message.get("content").unwrap_or(&Value::Null);
        let (role, parts) = match role {
            "system" | "developer" => {
                system.push(text_only(content, i)?);
                continue;
            }
            "user" => ("user", user_parts(content, i)?),
            "assistant" => ("model", model_parts(message, i)?),
            "tool" => ("user", vec![function_response(message, messages, i)?]),
            other => {
                return Err(refuse(
                    "messages",
                    format!("messages[{i}] has the role `{other}`, which has no Gemini equivalent"),
                ))
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, acc)) if *last == role => acc.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents = turns.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    Ok((system, contents))
}

/// A system message's text: a string or text parts.
fn text_only(content: &Value, i: usize) -> Result<String, ApiError> {
    crate::openai_request::system_text("a Gemini model", content, i)
}

fn user_parts(content: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts.iter().map(|p| user_part(p, i)).collect(),
        _ => Err(refuse("messages", format!("messages[{i}]: expected a string or content parts"))),
    }
}

/// The MIME type of an image URL, from its file extension.
fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "jpg" | "jpeg" => Some("image/jpeg"),
        "png" => Some("image/png"),
        "webp" => Some("image/webp"),
        "gif" => Some("image/gif"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        "pdf" => Some("application/pdf"),
        _ => None,
    }
}

/// A text part, or an image: a `data:` URL becomes `inlineData`, an http(s)
/// URL whose type its extension tells becomes `fileData`.
fn user_part(part: &Value, i: usize) -> Result<Value, ApiError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text").and_then(Value::as_str) {
            Some(t) => Ok(json!({"text": t})),
            None => Err(refuse("messages", format!("messages[{i}]: a text part needs a string `text`"))),
        },
        Some("image_url") => {
            let url = part.get("image_url").and_then(|u| u.get("url").or(Some(u))).and_then(Value::as_str);
            let Some(url) = url else {
                return Err(refuse("messages", format!("messages[{i}]: an image part needs a `url`")));
            };
            if let Some((mime, data)) = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
            }
            let remote = url.starts_with("https://") || url.starts_with("http://");
            match mime_from_url(url).filter(|_| remote) {
                Some(mime) => Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}})),
                None => Err(refuse(
                    "messages",
                    format!("messages[{i}]: an image must be a base64 data URL or an http(s) URL ending in a known image extension"),
                )),
            }
        }
        other => Err(refuse(
            "messages",
            format!("messages[{i}]: content parts of type `{}` cannot be translated", other.unwrap_or("?")),
        )),
    }
}

/// Text (or refusal) parts, then each tool call as a `functionCall` part.
fn model_parts(message: &Value, i: usize) -> Result<Vec<Value>, ApiError> {
    let mut parts = Vec::new();
    match message.get("content").unwrap_or(&Value::Null) {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => parts.push(json!({"text": s})),
        Value::Array(items) => {
            for p in items {
                match p.get("text").or_else(|| p.get("refusal")).and_then(Value::as_str) {
                    Some(t) if !t.is_empty() => parts.push(json!({"text": t})),
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
    for call in tool_calls(message) {
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let args = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("{}");
        let Some(name) = name else {
            return Err(refuse("messages", format!("messages[{i}]: a tool call needs a function `name`")));
        };
        let args = match serde_json::from_str::<Value>(if args.trim().is_empty() { "{}" } else { args }) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(refuse(
                    "messages",
                    format!("messages[{i}]: the arguments of tool call `{name}` are not a JSON object"),
                ))
            }
        };
        parts.push(json!({"functionCall": {"name": name, "args": args}}));
    }
    Ok(parts)
}

fn tool_calls(message: &Value) -> &[Value] {
    message.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// A `tool` message → a `functionResponse` part. Gemini names the function
/// answered, so the name is that of the tool call with this id in an
/// earlier assistant message; a reply that is a JSON object is sent as the
/// response, any other content as `{"content": ...}`.
fn function_response(message: &Value, messages: &[Value], i: usize) -> Result<Value, ApiError> {
    let Some(id) = message.get("tool_call_id").and_then(Value::as_str) else {
        return Err(refuse("messages", format!("messages[{i}]: a tool message needs a `tool_call_id`")));
    };
    let name = messages
        .iter()
        .take(i)
        .rev()
        .flat_map(tool_calls)
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|c| c.get("function")?.get("name")?.as_str());
    let Some(name) = name else {
        return Err(refuse("messages", format!("messages[{i}]: no earlier assistant message made tool call `{id}`")));
    };
    let text = match message.get("content").unwrap_or(&Value::Null) {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => text_only(other, i)?,
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}
