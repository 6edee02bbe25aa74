//! A Responses request → the chat request it means.
//!
//! Every top-level field is translated, accepted as one that cannot change
//! the answer, or refused with a 400 naming it. The chat door forwards fields
//! it does not know because its upstreams speak chat; a Responses field has
//! no chat meaning, so one this door does not know is refused rather than
//! dropped. A field set to null counts as absent, as OpenAI treats it.

use super::{input, tools, Echo};
use crate::{invalid, Translated};
use deja_api::ApiError;
use serde_json::{json, Map, Value};

/// A Responses request → the chat request it means.
pub fn translate(body: &[u8]) -> Result<Translated<Echo>, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid request body: {e}"), None))?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::invalid_request("the request body must be a JSON object", None));
    };
    let mut chat = Map::new();
    let mut echo = defaults();
    let mut model = None;
    let mut input = None;
    let mut instructions = None;
    let mut stream = false;
    let mut tools = Vec::new();
    let mut tool_choice = None;
    let mut parallel = None;
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        let echoed = |echo: &mut Map<String, Value>| echo.insert(key.clone(), value.clone());
        match key.as_str() {
            "model" => model = Some(string(key, value)?),
            "input" => input = Some(value),
            "instructions" => {
                instructions = Some(string(key, value)?);
                echoed(&mut echo);
            }
            "stream" => stream = boolean(key, value)?,
            "temperature" | "top_p" => {
                if !value.is_number() {
                    return Err(invalid(format!("`{key}` must be a number"), key));
                }
                chat.insert(key.clone(), value.clone());
                echoed(&mut echo);
            }
            // `max_tokens`, not `max_completion_tokens`: every OpenAI-compatible
            // provider knows it, where several ignore the newer name.
            "max_output_tokens" => match value.as_u64() {
                Some(n) if n > 0 => {
                    chat.insert("max_tokens".into(), json!(n));
                    echoed(&mut echo);
                }
                _ => return Err(invalid("`max_output_tokens` must be a positive integer", key)),
            },
            "metadata" => {
                if !value.is_object() {
                    return Err(invalid("`metadata` must be an object", key));
                }
                chat.insert(key.clone(), value.clone());
                echoed(&mut echo);
            }
            "user" | "service_tier" => {
                string(key, value)?;
                chat.insert(key.clone(), value.clone());
                echoed(&mut echo);
            }
            "parallel_tool_calls" => {
                parallel = Some(boolean(key, value)?);
                echoed(&mut echo);
            }
            "tools" => {
                tools = tools::translate(value)?;
                echoed(&mut echo);
            }
            "tool_choice" => {
                tool_choice = Some(tools::choice(value)?);
                echoed(&mut echo);
            }
            "text" => {
                text(value, &mut chat)?;
                echoed(&mut echo);
            }
            "reasoning" => {
                reasoning(value, &mut chat)?;
                echoed(&mut echo);
            }
            "include" => include(value)?,
            "truncation" => match value.as_str() {
                Some("disabled") => {}
                Some("auto") => {
                    return Err(invalid(
                        "`truncation: \"auto\"` is not supported: Deja never drops earlier turns to fit a context \
                         window; send `disabled` or leave it out",
                        key,
                    ))
                }
                _ => return Err(invalid("`truncation` must be `auto` or `disabled`", key)),
            },
            "top_logprobs" => match value.as_u64() {
                Some(0) => {}
                _ => return Err(invalid("`top_logprobs` is not supported: log probabilities are not served", key)),
            },
            "background" => {
                if boolean(key, value)? {
                    return Err(invalid(
                        "`background: true` needs a response stored on the server to poll; Deja keeps none",
                        key,
                    ));
                }
            }
            // Nothing is stored whatever the value; the response says `store: false`.
            "store" => {
                boolean(key, value)?;
            }
            // Hints that cannot change the answer: caching and abuse-tracking
            // keys meant for OpenAI, a cap on built-in tool calls (which are
            // refused), and stream obfuscation Deja does not add.
            "safety_identifier"
            | "prompt_cache_key"
            | "prompt_cache_retention"
            | "max_tool_calls"
            | "stream_options" => {}
            "previous_response_id" | "conversation" => {
                return Err(invalid(
                    format!(
                        "`{key}` is not supported: Deja keeps no responses or conversations on the server; send \
                         the earlier turns in `input`"
                    ),
                    key,
                ))
            }
            "prompt" => {
                return Err(invalid(
                    "`prompt` (a stored prompt template) is not supported: Deja keeps no prompts; send the \
                     prompt in `instructions` and `input`",
                    key,
                ))
            }
            _ => return Err(invalid(format!("`{key}` is not supported by Deja's /v1/responses"), key)),
        }
    }
    let Some(model) = model.filter(|m| !m.trim().is_empty()) else {
        return Err(invalid("`model` is required", "model"));
    };
    let Some(input) = input else {
        return Err(invalid("`input` is required: Deja keeps no earlier responses to continue from", "input"));
    };
    chat.insert("model".into(), json!(model));
    chat.insert("messages".into(), Value::Array(input::messages(instructions, input)?));
    // Chat refuses `tool_choice` and `parallel_tool_calls` without tools; with
    // none, `auto`/`none` and `parallel_tool_calls` mean nothing and are not
    // sent, but a call the client requires cannot be made: refused, as chat would.
    if tools.is_empty() && tool_choice.as_ref().is_some_and(|c| c != "auto" && c != "none") {
        return Err(invalid("`tool_choice` requires a tool call, but no `tools` are given", "tool_choice"));
    }
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            chat.insert("tool_choice".into(), choice);
        }
        if let Some(parallel) = parallel {
            chat.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    if stream {
        chat.insert("stream".into(), json!(true));
        // The usage chunk is what `response.completed` reports.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Translated { chat: Value::Object(chat), stream, echo: Echo { model: model.to_string(), fields: echo } })
}

/// What a response echoes for request fields left out, as OpenAI fills them.
fn defaults() -> Map<String, Value> {
    let fields = json!({
        "instructions": null,
        "max_output_tokens": null,
        "max_tool_calls": null,
        "metadata": {},
        "parallel_tool_calls": true,
        "reasoning": {"effort": null, "summary": null},
        "service_tier": null,
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": null,
        "truncation": "disabled",
        "user": null,
    });
    match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str, ApiError> {
    value.as_str().ok_or_else(|| invalid(format!("`{key}` must be a string"), key))
}

fn boolean(key: &str, value: &Value) -> Result<bool, ApiError> {
    value.as_bool().ok_or_else(|| invalid(format!("`{key}` must be a boolean"), key))
}

/// `text.format` → `response_format`; `text.verbosity` → chat's `verbosity`.
fn text(value: &Value, chat: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(fields) = value.as_object() else { return Err(invalid("`text` must be an object", "text")) };
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "format" => {
                if let Some(format) = format(value)? {
                    chat.insert("response_format".into(), format);
                }
            }
            "verbosity" => {
                string("text.verbosity", value)?;
                chat.insert("verbosity".into(), value.clone());
            }
            _ => return Err(invalid(format!("`text.{key}` is not supported"), &format!("text.{key}"))),
        }
    }
    Ok(())
}

/// `{type: text}` (chat's default: nothing to send), `{type: json_object}`,
/// or the flat `{type: json_schema, name, schema, description, strict}` that
/// chat nests under `json_schema`.
fn format(value: &Value) -> Result<Option<Value>, ApiError> {
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let Some(name) = value.get("name").and_then(Value::as_str) else {
                return Err(invalid("a `json_schema` format needs a string `name`", "text.format.name"));
            };
            let Some(schema) = value.get("schema").filter(|s| s.is_object()) else {
                return Err(invalid("a `json_schema` format needs a `schema` object", "text.format.schema"));
            };
            let mut inner = Map::new();
            inner.insert("name".into(), json!(name));
            inner.insert("schema".into(), schema.clone());
            for key in ["description", "strict"] {
                if let Some(v) = value.get(key).filter(|v| !v.is_null()) {
                    inner.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": inner})))
        }
        _ => Err(invalid("`text.format.type` must be `text`, `json_object` or `json_schema`", "text.format.type")),
    }
}

/// `reasoning.effort` → chat's `reasoning_effort`, which reaches the model as
/// is (a provider that cannot honour it refuses it by name). A summary asks
/// for reasoning items, which chat never returns: accepted, none are sent.
fn reasoning(value: &Value, chat: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(fields) = value.as_object() else { return Err(invalid("`reasoning` must be an object", "reasoning")) };
    for (key, value) in fields {
        match key.as_str() {
            _ if value.is_null() => {}
            "effort" => {
                string("reasoning.effort", value)?;
                chat.insert("reasoning_effort".into(), value.clone());
            }
            "summary" | "generate_summary" => {}
            _ => return Err(invalid(format!("`reasoning.{key}` is not supported"), &format!("reasoning.{key}"))),
        }
    }
    Ok(())
}

/// Extra output data. Log probabilities would change what is answered and
/// are refused; the rest name items Deja never returns (reasoning, built-in
/// tool calls) or echo the input, and are accepted.
fn include(value: &Value) -> Result<(), ApiError> {
    let Some(list) = value.as_array() else { return Err(invalid("`include` must be an array", "include")) };
    for item in list {
        match item.as_str() {
            Some("message.output_text.logprobs") => {
                return Err(invalid(
                    "`include` of `message.output_text.logprobs` is not supported: log probabilities are not served",
                    "include",
                ))
            }
            Some(_) => {}
            None => return Err(invalid("`include` must be an array of strings", "include")),
        }
    }
    Ok(())
}
